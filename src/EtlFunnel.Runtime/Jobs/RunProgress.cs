using System.Collections.Concurrent;
using EtlFunnel.Orchestration.Plans;
using EtlFunnel.Sync;

namespace EtlFunnel.Runtime.Jobs;

/// <summary>One configured flow's progress, summed over its replicas.</summary>
internal sealed record FlowProgress(string Flow, long Rows, long Docs, long EstimatedRows, int ReplicasDone, int Replicas)
{
    /// <summary>The part of <see cref="Rows"/> read by an interrupted run of this job (from its checkpoints).</summary>
    public long Resumed { get; init; }

    /// <summary>Replicas that have reported at least once; the others are still queued.</summary>
    public int ReplicasStarted { get; init; }
}

/// <summary>
/// Collects the engine's per-replica progress (raised from worker threads) and sums it per configured flow on demand,
/// so thousands of replicas cost one dictionary entry each and the display reads a handful of flow totals.
/// </summary>
internal sealed class RunProgress : IProgress<SyncProgress>
{
    private readonly ConcurrentDictionary<(string Flow, string Replica), SyncProgress> _latest = new();
    private readonly Dictionary<string, string> _parentOf;
    private readonly Dictionary<string, (long Estimated, int Replicas)> _flows;

    public RunProgress(ExecutionPlan plan, SyncJob job)
    {
        var included = job.Flows.Select(f => f.Name).ToHashSet(StringComparer.Ordinal);
        var replicas = plan.Flows.Where(f => included.Contains(f.Name)).ToList();
        _parentOf = replicas.ToDictionary(f => f.Name, f => f.Parent, StringComparer.Ordinal);
        _flows = replicas.GroupBy(f => f.Parent, StringComparer.Ordinal).ToDictionary(
            g => g.Key,
            g => (g.SelectMany(f => f.Pipelines).Sum(SyncJobBuilder.EstimatedRows), g.Sum(f => f.Pipelines.Length)),
            StringComparer.Ordinal);
    }

    /// <summary>The configured flows in plan order.</summary>
    public IReadOnlyCollection<string> Flows => _flows.Keys;

    public void Report(SyncProgress value) =>
        _latest.AddOrUpdate((value.Flow, value.Replica), value, (_, old) => old.Outcome is not null ? old : value);

    /// <summary>The current totals per configured flow.</summary>
    public IReadOnlyList<FlowProgress> Snapshot()
    {
        var sums = _flows.Keys.ToDictionary(k => k, _ => (Rows: 0L, Docs: 0L, Done: 0, Resumed: 0L, Started: 0), StringComparer.Ordinal);
        foreach (var ((flow, _), p) in _latest)
        {
            if (_parentOf.TryGetValue(flow, out var parent))
            {
                var s = sums[parent];
                sums[parent] = (s.Rows + p.RowsRead, s.Docs + p.DocsIndexed, s.Done + (p.Outcome is null ? 0 : 1), s.Resumed + p.RowsResumed, s.Started + 1);
            }
        }

        return [.. _flows.Select(f => new FlowProgress(f.Key, sums[f.Key].Rows, sums[f.Key].Docs, f.Value.Estimated, sums[f.Key].Done, f.Value.Replicas)
        {
            Resumed = sums[f.Key].Resumed,
            ReplicasStarted = sums[f.Key].Started,
        })];
    }
}
