using EtlFunnel.Sync.Postgres;

namespace EtlFunnel.Sync;

/// <summary>
/// What a replica run elsewhere (a cluster worker) needs to read in the run's one snapshot: the exported snapshot id and the
/// block count of every leaf relation as the coordinator saw it, so every replica cuts the same partition boundaries.
/// </summary>
internal sealed record SnapshotHandoff(string SnapshotId, IReadOnlyDictionary<string, long> Blocks)
{
    /// <summary>What a replica says when the snapshot cannot be imported any more.</summary>
    public static string GoneMessage(string snapshotId, string source) =>
        $"snapshot {snapshotId} no longer exists in {source}: the run's coordinator stopped (the 'etlfunnel run --cluster' process that exported it " +
        "ended, or this worker's flows.yaml reads another PostgreSQL server than the planner's); the replica does not read under a new snapshot. Run again.";
}

/// <summary>
/// The snapshot coordinators of a run whose replicas run in other processes (<c>run --cluster</c>): one per source database,
/// opened exactly as <see cref="SyncEngine"/> opens its own (ACCESS SHARE on every table of the job, then
/// <c>pg_export_snapshot()</c>), with each table's layout read in it. The sessions stay open, idle in their transaction,
/// until this is disposed: while they are, any process connected to the same server can import the snapshot, and no
/// TRUNCATE / VACUUM FULL / CLUSTER can commit on the tables.
/// </summary>
internal sealed class ExportedSnapshots : IAsyncDisposable
{
    private readonly Dictionary<string, SourceSnapshot> _snapshots;
    private readonly Dictionary<string, Dictionary<string, long>> _blocks;

    private ExportedSnapshots(Dictionary<string, SourceSnapshot> snapshots, Dictionary<string, Dictionary<string, long>> blocks)
    {
        _snapshots = snapshots;
        _blocks = blocks;
    }

    /// <summary>Exports one snapshot per source database of <paramref name="job"/> and reads the layout of every table in it.</summary>
    public static async Task<ExportedSnapshots> OpenAsync(SyncJob job, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(job);
        var snapshots = new Dictionary<string, SourceSnapshot>(StringComparer.Ordinal);
        var blocks = new Dictionary<string, Dictionary<string, long>>(StringComparer.Ordinal);
        try
        {
            foreach (var flow in job.Flows)
            {
                var key = SourceSnapshot.SourceKey(flow.SourceConnectionString);
                if (!snapshots.TryGetValue(key, out var snapshot))
                {
                    snapshot = await SourceSnapshot.OpenAsync(flow.SourceConnectionString, SyncEngine.TablesOf(job, key), job.Options.LockTimeout, ct).ConfigureAwait(false);
                    snapshots[key] = snapshot;
                    blocks[key] = new Dictionary<string, long>(StringComparer.Ordinal);
                }

                foreach (var pipeline in flow.Pipelines)
                {
                    var layout = await snapshot.DescribeAsync(pipeline.Schema, pipeline.Table, pipeline.KeyColumns, ct).ConfigureAwait(false);
                    foreach (var leaf in layout.Leaves)
                    {
                        blocks[key][leaf.QualifiedName] = leaf.Blocks;
                    }
                }
            }

            return new ExportedSnapshots(snapshots, blocks);
        }
        catch
        {
            foreach (var snapshot in snapshots.Values)
            {
                await snapshot.DisposeAsync().ConfigureAwait(false);
            }

            throw;
        }
    }

    /// <summary>The exported snapshot ids, by source database (<c>host:port/db</c>).</summary>
    public IReadOnlyDictionary<string, string> SnapshotIds => _snapshots.ToDictionary(s => s.Key, s => s.Value.SnapshotId, StringComparer.Ordinal);

    /// <summary>What a replica of <paramref name="flow"/> imports.</summary>
    public SnapshotHandoff For(SyncFlow flow)
    {
        ArgumentNullException.ThrowIfNull(flow);
        var key = SourceSnapshot.SourceKey(flow.SourceConnectionString);
        return new SnapshotHandoff(_snapshots[key].SnapshotId, _blocks[key]);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var snapshot in _snapshots.Values)
        {
            await snapshot.DisposeAsync().ConfigureAwait(false);
        }
    }
}
