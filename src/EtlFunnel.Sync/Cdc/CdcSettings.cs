using System.Text;

namespace EtlFunnel.Sync.Cdc;

/// <summary>What a CDC flow does when a source table is truncated.</summary>
public enum CdcTruncatePolicy
{
    /// <summary>Stop the flow with an error before anything after the TRUNCATE is applied (the default; nothing is lost, the slot keeps the change).</summary>
    Stop,

    /// <summary>Delete every document of the table's index (versioned deletes at the TRUNCATE's commit LSN).</summary>
    DeleteAll,
}

/// <summary>The change data capture settings of one flow: its replication slot, publication and TRUNCATE policy.</summary>
/// <param name="Slot">The logical replication slot (pgoutput) of the flow in its source database.</param>
/// <param name="Publication">The publication that lists the flow's tables.</param>
public sealed record CdcFlowSettings(string Slot, string Publication)
{
    /// <summary>What a TRUNCATE of a synced table does.</summary>
    public CdcTruncatePolicy Truncate { get; init; } = CdcTruncatePolicy.Stop;

    /// <summary>Where the flow is configured (e.g. <c>flows.yaml(12,3)</c>), named in error messages; null when built in code.</summary>
    public string? ConfiguredAt { get; init; }

    /// <summary>The default slot and publication name of a flow: <c>etlfunnel_&lt;flow&gt;</c>, lower-case, other characters as <c>_</c>, at most 63 bytes.</summary>
    public static string DefaultName(string flow)
    {
        var sb = new StringBuilder("etlfunnel_");
        foreach (var ch in flow.ToLowerInvariant())
        {
            sb.Append(ch is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '_' ? ch : '_');
        }

        return sb.Length > 63 ? sb.ToString(0, 63) : sb.ToString();
    }

    /// <summary>Settings with the default names for <paramref name="flow"/>.</summary>
    public static CdcFlowSettings ForFlow(string flow) => new(DefaultName(flow), DefaultName(flow));
}

/// <summary>How <see cref="CdcEngine"/> runs.</summary>
public sealed record CdcRunOptions
{
    /// <summary>Stop (exit normally) once every change committed before streaming started is applied and acknowledged: for CI and batch use.</summary>
    public bool UntilCaughtUp { get; init; }

    /// <summary>How often a heartbeat (<c>pg_logical_emit_message</c>) is written, so a quiet database's slot still advances and WAL is released.</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Longest time a lane waits to fill a batch before sending what it has (the commit-to-visible latency floor).</summary>
    public TimeSpan MaxBatchDelay { get; init; } = TimeSpan.FromMilliseconds(20);

    /// <summary>Largest number of changes a lane sends in one bulk request or file write.</summary>
    public int MaxBatchSize { get; init; } = 5000;

    /// <summary>Most changes queued per lane before reading the WAL waits (back-pressure).</summary>
    public int LaneCapacity { get; init; } = 20_000;

    /// <summary>
    /// Called about every <see cref="StatusInterval"/> while the flow runs (and once when its snapshot starts) with its phase, lane count,
    /// applied position and lag: what the watch service shows on its status page and <c>/metrics</c>. Called from a background task.
    /// </summary>
    public Action<CdcStreamStatus>? OnStatus { get; init; }

    /// <summary>How often <see cref="OnStatus"/> is called while streaming (each call asks the source for <c>pg_current_wal_lsn()</c>).</summary>
    public TimeSpan StatusInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Test seam: awaited after every lane batch the destination confirmed (crash tests slow the stream down with it).</summary>
    internal Func<ValueTask>? AfterLaneBatch { get; init; }
}

/// <summary>What a CDC run did.</summary>
public sealed record CdcReport
{
    /// <summary>How the run ended: Succeeded (caught up), Cancelled (stopped on request, acknowledged what was applied), Failed.</summary>
    public required SyncOutcome Outcome { get; init; }

    /// <summary>The snapshot phase's report, when this run took a snapshot.</summary>
    public SyncReport? Snapshot { get; init; }

    /// <summary>Row changes (index and delete actions) confirmed by the destination, including version conflicts.</summary>
    public long ChangesApplied { get; init; }

    /// <summary>Writes Elasticsearch answered 409 because the document already held that version or a newer one (replays, overlaps).</summary>
    public long VersionConflicts { get; init; }

    /// <summary>Changes the destination rejected permanently (written to the dead-letter file).</summary>
    public long DeadLettered { get; init; }

    /// <summary>The WAL position acknowledged to the slot and saved in the state store, as PostgreSQL prints an LSN.</summary>
    public string? ConfirmedLsn { get; init; }

    /// <summary>Wall time.</summary>
    public TimeSpan Duration { get; init; }

    /// <summary>Why the run failed, if it did.</summary>
    public string? Error { get; init; }
}

/// <summary>A logical replication slot as <c>etlfunnel slots list</c> shows it.</summary>
/// <param name="Slot">Slot name.</param>
/// <param name="Database">Its database.</param>
/// <param name="Active">True while a session streams from it.</param>
/// <param name="RestartLsn">Oldest WAL the slot keeps.</param>
/// <param name="ConfirmedLsn">The position the consumer acknowledged.</param>
/// <param name="LagBytes">WAL between the server's current position and the acknowledged one.</param>
/// <param name="WalStatus">reserved, extended, unreserved or lost (invalidated).</param>
public sealed record CdcSlotStatus(string Slot, string? Database, bool Active, string? RestartLsn, string? ConfirmedLsn, long? LagBytes, string? WalStatus);

/// <summary>Where a CDC flow is: taking its snapshot, or streaming.</summary>
public enum CdcPhase
{
    /// <summary>Reading the snapshot (the slot holds every change since its consistent point meanwhile).</summary>
    Snapshot,

    /// <summary>Streaming the WAL through the apply lanes.</summary>
    Streaming,
}

/// <summary>A running CDC flow's position and lag, as <see cref="CdcRunOptions.OnStatus"/> reports it.</summary>
public sealed record CdcStreamStatus
{
    /// <summary>The configured flow (all its replicas share one slot).</summary>
    public required string Flow { get; init; }

    /// <summary>The flow's replication slot.</summary>
    public required string Slot { get; init; }

    /// <summary>Snapshot or streaming.</summary>
    public required CdcPhase Phase { get; init; }

    /// <summary>Apply lanes of the stream (0 during the snapshot).</summary>
    public int Lanes { get; init; }

    /// <summary>The end of the last transaction (or heartbeat) whose changes every lane applied, as PostgreSQL prints an LSN; null before the first.</summary>
    public string? AppliedLsn { get; init; }

    /// <summary>The position acknowledged to the slot (<c>confirmed_flush_lsn</c>), at most <see cref="AppliedLsn"/>.</summary>
    public string? ConfirmedLsn { get; init; }

    /// <summary>The source server's <c>pg_current_wal_lsn()</c> when this status was taken.</summary>
    public string? CurrentWalLsn { get; init; }

    /// <summary><c>pg_current_wal_lsn()</c> minus <see cref="AppliedLsn"/>, in bytes of WAL; null before the stream knows a position.</summary>
    public long? LagBytes { get; init; }

    /// <summary>
    /// Now minus the commit time of the oldest transaction the stream received but has not yet applied in full; 0 when every
    /// received change is applied (caught up). Uses the source server's commit timestamps, so the two clocks must agree.
    /// </summary>
    public double LagSeconds { get; init; }

    /// <summary>Changes the destination confirmed in this run so far (including version conflicts).</summary>
    public long ChangesApplied { get; init; }
}
