namespace EtlFunnel.Sync.State;

/// <summary>Progress of one pipeline replica, saved after every confirmed chunk.</summary>
internal sealed record ReplicaState
{
    /// <summary>The run this progress belongs to; a different run id means "start over" (keeping the watermark).</summary>
    public string RunId { get; set; } = "";

    public bool Completed { get; set; }

    /// <summary>Index of the leaf relation being read (partitioned tables have several).</summary>
    public int Segment { get; set; }

    /// <summary>First heap block of the leaf not yet confirmed; -1 once the open-ended tail of the leaf is done.</summary>
    public long NextBlock { get; set; }

    /// <summary>Files destination: the byte length of the replica's file when the checkpoint was taken.</summary>
    public long FileOffset { get; set; }

    public long RowsRead { get; set; }

    public long DocsIndexed { get; set; }

    public long DeadLettered { get; set; }

    /// <summary>Rows re-read after a resume because they may have been written or moved after the run's first snapshot.</summary>
    public long ReReadAfterResume { get; set; }

    /// <summary>The typed watermark of the last completed run (see <see cref="Runtime.Watermark"/>).</summary>
    public Runtime.Watermark? WatermarkValue { get; set; }

    /// <summary>The typed watermark this run reads above (before the safety margin), null for a full read.</summary>
    public Runtime.Watermark? RunFrom { get; set; }

    /// <summary>The typed watermark this run commits when it completes (null: the column has no value yet).</summary>
    public Runtime.Watermark? RunTo { get; set; }

    /// <summary>Legacy: the session-formatted text watermark earlier versions wrote; read once (under UTC/ISO) by the next incremental run, then replaced by <see cref="WatermarkValue"/>.</summary>
    public string? Watermark { get; set; }

    /// <summary>Legacy: an earlier version's text lower bound of an interrupted run.</summary>
    public string? RunFromWatermark { get; set; }

    /// <summary>Legacy: an earlier version's text watermark of an interrupted run.</summary>
    public string? RunToWatermark { get; set; }

    public DateTimeOffset UpdatedAt { get; set; }
}

/// <summary>The run as a whole: its id, the job fingerprint and the block count of every leaf relation at the start of the run.</summary>
internal sealed record RunManifest
{
    public string RunId { get; set; } = "";

    public string Fingerprint { get; set; } = "";

    public bool Completed { get; set; }

    /// <summary>Block counts by <c>source|relation</c>, fixed for the run so resumed replicas keep the same partition boundaries.</summary>
    public Dictionary<string, long> Blocks { get; set; } = new(StringComparer.Ordinal);

    public DateTimeOffset StartedAt { get; set; }

    /// <summary>
    /// By source: what the run's first snapshot could see, so that a resumed run (new snapshot) can tell which row versions
    /// may have been written after it and must be read again where the first snapshot already read.
    /// </summary>
    public Dictionary<string, FirstSnapshot> FirstSnapshots { get; set; } = new(StringComparer.Ordinal);

    /// <summary>The run's first snapshot by source, as <c>pg_current_snapshot()</c> text (for the operator; the xmin above is what counts).</summary>
    public Dictionary<string, string> Snapshots { get; set; } = new(StringComparer.Ordinal);

    /// <summary>relfilenode by <c>source|relation</c> at the start of the run: a different one on resume means the heap was rewritten.</summary>
    public Dictionary<string, long> FileNodes { get; set; } = new(StringComparer.Ordinal);
}

/// <summary>
/// The visibility horizon of a run's first snapshot, in 64-bit transaction ids. A transaction id x was certainly committed
/// before it (or aborted, and then its rows are invisible anyway) when x &lt; <see cref="Xmin"/>, or when x &lt;
/// <see cref="UncertainFrom"/> and x is not in <see cref="Running"/>; every other id may have committed after it.
/// </summary>
internal sealed record FirstSnapshot
{
    public long Xmin { get; set; }

    /// <summary>The snapshot's xmax, or lower: the smallest in-progress top-level id that had ended by the time the lock table was read.</summary>
    public long UncertainFrom { get; set; }

    /// <summary>In-progress ids at the snapshot: its xip list plus every (sub)transaction id holding its lock just after it.</summary>
    public List<long> Running { get; set; } = [];
}
