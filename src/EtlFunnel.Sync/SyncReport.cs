namespace EtlFunnel.Sync;

/// <summary>How a run (or one replica) ended.</summary>
public enum SyncOutcome
{
    /// <summary>Every row became a document.</summary>
    Succeeded,

    /// <summary>Finished, but some documents were rejected and dead-lettered.</summary>
    CompletedWithRejections,

    /// <summary>Stopped on request; checkpoints are saved and a rerun resumes.</summary>
    Cancelled,

    /// <summary>An error stopped it; checkpoints are saved and a rerun resumes.</summary>
    Failed,

    /// <summary>
    /// A batch-level hook stopped it (a termination rule, a checkpoint hook or a backlog hook; see <see cref="ReplicaReport.StoppedBy"/>);
    /// not a failure: checkpoints are saved and a rerun resumes. Ranks between <see cref="CompletedWithRejections"/> and <see cref="Cancelled"/>.
    /// </summary>
    Stopped,
}

/// <summary>Helpers for <see cref="SyncOutcome"/>.</summary>
public static class SyncOutcomes
{
    /// <summary>The worse of two outcomes: Succeeded &lt; CompletedWithRejections &lt; Stopped &lt; Cancelled &lt; Failed.</summary>
    public static SyncOutcome Worst(SyncOutcome a, SyncOutcome b) => Rank(a) >= Rank(b) ? a : b;

    /// <summary>The worst outcome of <paramref name="outcomes"/>; <see cref="SyncOutcome.Succeeded"/> for none.</summary>
    public static SyncOutcome Worst(IEnumerable<SyncOutcome> outcomes) => (outcomes ?? []).Aggregate(SyncOutcome.Succeeded, Worst);

    private static int Rank(SyncOutcome o) => o switch
    {
        SyncOutcome.Succeeded => 0,
        SyncOutcome.CompletedWithRejections => 1,
        SyncOutcome.Stopped => 2,
        SyncOutcome.Cancelled => 3,
        _ => 4,
    };
}

/// <summary>What one pipeline replica did in this run.</summary>
public sealed record ReplicaReport
{
    /// <summary>Flow replica name.</summary>
    public required string Flow { get; init; }

    /// <summary>Pipeline replica name.</summary>
    public required string Replica { get; init; }

    /// <summary>Schema-qualified source table.</summary>
    public required string Table { get; init; }

    /// <summary>Destination index.</summary>
    public required string Index { get; init; }

    /// <summary>How the replica ended.</summary>
    public required SyncOutcome Outcome { get; init; }

    /// <summary>Rows read from PostgreSQL and confirmed (including rows carried over from an interrupted run).</summary>
    public long RowsRead { get; init; }

    /// <summary>Documents confirmed by the destination.</summary>
    public long DocsIndexed { get; init; }

    /// <summary>Documents permanently rejected and written to the dead-letter file.</summary>
    public long DeadLettered { get; init; }

    /// <summary>Retried bulk requests plus source reconnects.</summary>
    public long Retries { get; init; }

    /// <summary>True when this replica continued an interrupted run from its checkpoint.</summary>
    public bool Resumed { get; init; }

    /// <summary>Wall time of this replica in this run.</summary>
    public TimeSpan Duration { get; init; }

    /// <summary>The error that stopped the replica, if any.</summary>
    public string? Error { get; init; }

    /// <summary>For <see cref="SyncOutcome.Stopped"/>: which hook stopped the replica and why, e.g. <c>hooks/limits.csx: Termination MaxRecords 1000 reached (1024 rows read)</c>.</summary>
    public string? StoppedBy { get; init; }
}

/// <summary>The result of <see cref="SyncEngine.RunAsync"/>.</summary>
public sealed record SyncReport
{
    /// <summary>Overall outcome: the worst outcome of any replica.</summary>
    public required SyncOutcome Outcome { get; init; }

    /// <summary>One entry per pipeline replica.</summary>
    public required IReadOnlyList<ReplicaReport> Replicas { get; init; }

    /// <summary>Total rows read.</summary>
    public long RowsRead => Replicas.Sum(r => r.RowsRead);

    /// <summary>Total documents indexed.</summary>
    public long DocsIndexed => Replicas.Sum(r => r.DocsIndexed);

    /// <summary>Total documents dead-lettered.</summary>
    public long DeadLettered => Replicas.Sum(r => r.DeadLettered);

    /// <summary>Total retries.</summary>
    public long Retries => Replicas.Sum(r => r.Retries);

    /// <summary>Wall time of the run.</summary>
    public TimeSpan Duration { get; init; }

    /// <summary>The dead-letter file, when anything was dead-lettered in this run.</summary>
    public string? DeadLetterFile { get; init; }

    /// <summary>True when the run succeeded without rejections (the CLI exits 0 only then).</summary>
    public bool IsSuccess => Outcome == SyncOutcome.Succeeded;

    /// <summary>A one-line human summary, including what to do next.</summary>
    public string Summary => Outcome switch
    {
        SyncOutcome.Succeeded => $"Synced {DocsIndexed} documents from {Replicas.Count} replicas.",
        SyncOutcome.CompletedWithRejections => $"Synced {DocsIndexed} documents; {DeadLettered} were rejected and written to {DeadLetterFile}.",
        SyncOutcome.Cancelled => $"Cancelled after {DocsIndexed} documents; checkpoints are saved, run again to resume.",
        SyncOutcome.Stopped => $"Stopped by hooks after {DocsIndexed} documents ({Replicas.Count(r => r.Outcome == SyncOutcome.Stopped)} replicas stopped); checkpoints are saved, run again to resume.",
        _ => $"Failed after {DocsIndexed} documents ({Replicas.Count(r => r.Outcome == SyncOutcome.Failed)} replicas failed); checkpoints are saved, run again to resume.",
    };
}

/// <summary>A progress update for one replica, raised after every confirmed batch and when the replica ends.</summary>
public sealed record SyncProgress
{
    /// <summary>Flow replica name.</summary>
    public required string Flow { get; init; }

    /// <summary>Pipeline replica name.</summary>
    public required string Replica { get; init; }

    /// <summary>Rows read so far (confirmed chunks plus the current one).</summary>
    public long RowsRead { get; init; }

    /// <summary>Documents confirmed so far.</summary>
    public long DocsIndexed { get; init; }

    /// <summary>The part of <see cref="RowsRead"/> an interrupted run of this job had read (from the checkpoint); the rest was read in this run.</summary>
    public long RowsResumed { get; init; }

    /// <summary>Heap blocks of the replica's range already done (for an ETA).</summary>
    public long BlocksDone { get; init; }

    /// <summary>Heap blocks in the replica's range as counted at the start of the run.</summary>
    public long BlocksTotal { get; init; }

    /// <summary>Set when the replica has ended.</summary>
    public SyncOutcome? Outcome { get; init; }
}
