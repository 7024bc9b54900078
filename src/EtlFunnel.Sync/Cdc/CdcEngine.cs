using Microsoft.Extensions.Logging;

namespace EtlFunnel.Sync.Cdc;

/// <summary>
/// Change data capture: per flow a pgoutput slot and publication; a snapshot read (like a full run) inside the slot's exported
/// snapshot, then the WAL streamed from the slot's consistent point, applied in parallel lanes with external versions (commit LSN),
/// acknowledged only up to what every lane confirmed. See docs/cdc.md.
/// </summary>
public sealed class CdcEngine
{
    private readonly ILogger _log;

    /// <summary>Creates an engine that logs to <paramref name="logger"/> (Microsoft.Extensions.Logging; default: nowhere).</summary>
    public CdcEngine(ILogger? logger = null) => _log = logger ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;

    /// <summary>
    /// Runs every flow of <paramref name="job"/> as CDC until <paramref name="cancellationToken"/> fires (drains, acknowledges,
    /// reports Cancelled) or, with <see cref="CdcRunOptions.UntilCaughtUp"/>, until everything committed before streaming began is applied.
    /// Flow replicas with the same slot are one flow: their pipelines together are the snapshot, and their replica count the lanes.
    /// Throws <see cref="SyncConfigurationException"/> for what must be fixed first (wal_level, privileges, replica identity, slot state).
    /// </summary>
    public async Task<CdcReport> RunAsync(SyncJob job, CdcRunOptions? options = null, IProgress<SyncProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(job);
        options ??= new CdcRunOptions();
        var groups = job.Flows.GroupBy(f => f.Cdc ?? CdcFlowSettings.ForFlow(f.Name), f => f).ToList();
        foreach (var group in groups)
        {
            if (group.Select(f => Postgres.SourceSnapshot.SourceKey(f.SourceConnectionString)).Distinct(StringComparer.Ordinal).Count() > 1)
            {
                throw new SyncConfigurationException($"Slot '{group.Key.Slot}' is named by flows on different source databases; a slot belongs to one database. Give each flow its own `slot:`.");
            }
        }

        var reports = await Task.WhenAll(groups.Select(g =>
            new CdcFlowRunner([.. g], g.Key, options, job.Options, _log, progress).RunAsync(cancellationToken))).ConfigureAwait(false);
        if (reports.Length == 1)
        {
            return reports[0];
        }

        return new CdcReport
        {
            Outcome = reports.Max(r => r.Outcome),
            ChangesApplied = reports.Sum(r => r.ChangesApplied),
            VersionConflicts = reports.Sum(r => r.VersionConflicts),
            DeadLettered = reports.Sum(r => r.DeadLettered),
            ConfirmedLsn = string.Join(", ", reports.Select(r => r.ConfirmedLsn)),
            Duration = reports.Max(r => r.Duration),
            Error = string.Join("; ", reports.Where(r => r.Error is not null).Select(r => r.Error)),
        };
    }

    /// <summary>
    /// The apply lanes a CDC flow made of <paramref name="flows"/> (the replicas of one configured flow) streams with: as many as
    /// its table with the most pipeline replicas, summed over the flow replicas; at least 1.
    /// </summary>
    public static int LaneCount(IEnumerable<SyncFlow> flows)
    {
        ArgumentNullException.ThrowIfNull(flows);
        return Math.Max(1, flows.SelectMany(f => f.Pipelines).GroupBy(p => (p.Schema, p.Table)).Select(g => g.Count()).DefaultIfEmpty(1).Max());
    }

    /// <summary>The logical replication slots of the server <paramref name="connectionString"/> points at, with their lag, and the server's max_slot_wal_keep_size.</summary>
    public static async Task<(IReadOnlyList<CdcSlotStatus> Slots, string MaxSlotWalKeepSize)> ListSlotsAsync(string connectionString, CancellationToken cancellationToken = default)
    {
        await using var conn = new Npgsql.NpgsqlConnection(connectionString);
        await conn.OpenAsync(cancellationToken).ConfigureAwait(false);
        var slots = await CdcSource.ListSlotsAsync(conn, null, cancellationToken).ConfigureAwait(false);
        var keep = await CdcSource.ScalarAsync<string>(conn, "SHOW max_slot_wal_keep_size", cancellationToken).ConfigureAwait(false);
        return ([.. slots.Select(s => new CdcSlotStatus(s.Name, s.Database, s.Active, s.RestartLsn, s.ConfirmedLsn, s.LagBytes, s.WalStatus))], keep);
    }

    /// <summary>Drops a flow's replication slot (it must not be streaming) and, when <paramref name="publication"/> is given, its publication. Returns false when the slot did not exist.</summary>
    public static async Task<bool> DropSlotAsync(string connectionString, string slot, string? publication, CancellationToken cancellationToken = default)
    {
        await using var conn = new Npgsql.NpgsqlConnection(connectionString);
        await conn.OpenAsync(cancellationToken).ConfigureAwait(false);
        var dropped = await CdcSource.DropSlotAsync(conn, slot, cancellationToken).ConfigureAwait(false);
        if (publication is not null)
        {
            await CdcSource.ExecuteAsync(conn, $"DROP PUBLICATION IF EXISTS {Postgres.Sql.Ident(publication)}", cancellationToken).ConfigureAwait(false);
        }

        return dropped;
    }
}
