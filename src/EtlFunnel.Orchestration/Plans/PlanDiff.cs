using System.Collections.Immutable;
using System.Text.Json;

namespace EtlFunnel.Orchestration.Plans;

/// <summary>What changed for one replica between two plans.</summary>
public enum ReplicaChangeKind
{
    /// <summary>Only in the new plan.</summary>
    Appeared,

    /// <summary>Only in the old plan.</summary>
    Vanished,

    /// <summary>In both, with different props.</summary>
    PropsChanged,

    /// <summary>In both, reading a different partition (or table/index).</summary>
    PartitionChanged,
}

/// <summary>One replica's change; <see cref="Replica"/> is <c>flow replica</c> or <c>flow replica/pipeline replica</c>.</summary>
public sealed record ReplicaChange(ReplicaChangeKind Kind, string Replica, bool IsPipeline, string? Before, string? After);

/// <summary>The changes of one configured flow.</summary>
public sealed record FlowDiff(string Flow, ImmutableArray<ReplicaChange> Changes);

/// <summary>The difference between two plans, per configured flow.</summary>
public sealed record PlanDiffResult(ImmutableArray<FlowDiff> Flows)
{
    /// <summary>True when no replica appeared, vanished or changed.</summary>
    public bool IsEmpty => Flows.All(f => f.Changes.IsEmpty);
}

/// <summary>Compares plans replica by replica.</summary>
public static class PlanDiff
{
    /// <summary>Which replicas appeared, vanished or changed props/partition from <paramref name="before"/> to <paramref name="after"/>, per flow.</summary>
    public static PlanDiffResult Compare(ExecutionPlan before, ExecutionPlan after)
    {
        ArgumentNullException.ThrowIfNull(before);
        ArgumentNullException.ThrowIfNull(after);
        var flows = before.Flows.Select(f => f.Parent).Concat(after.Flows.Select(f => f.Parent)).Distinct(StringComparer.Ordinal);
        var result = ImmutableArray.CreateBuilder<FlowDiff>();
        foreach (var flow in flows)
        {
            var changes = ImmutableArray.CreateBuilder<ReplicaChange>();
            var old = Index(before, flow);
            var @new = Index(after, flow);
            foreach (var (id, entry) in old)
            {
                if (!@new.TryGetValue(id, out var now))
                {
                    changes.Add(new ReplicaChange(ReplicaChangeKind.Vanished, id, entry.IsPipeline, entry.Describe, null));
                    continue;
                }

                if (!JsonElement.DeepEquals(entry.Props, now.Props))
                {
                    changes.Add(new ReplicaChange(ReplicaChangeKind.PropsChanged, id, entry.IsPipeline, entry.Props.GetRawText(), now.Props.GetRawText()));
                }

                if (entry.Describe != now.Describe)
                {
                    changes.Add(new ReplicaChange(ReplicaChangeKind.PartitionChanged, id, entry.IsPipeline, entry.Describe, now.Describe));
                }
            }

            foreach (var (id, entry) in @new.Where(n => !old.ContainsKey(n.Key)))
            {
                changes.Add(new ReplicaChange(ReplicaChangeKind.Appeared, id, entry.IsPipeline, null, entry.Describe));
            }

            result.Add(new FlowDiff(flow, changes.ToImmutable()));
        }

        return new PlanDiffResult(result.ToImmutable());
    }

    private static Dictionary<string, (bool IsPipeline, JsonElement Props, string Describe)> Index(ExecutionPlan plan, string flow)
    {
        var index = new Dictionary<string, (bool, JsonElement, string)>(StringComparer.Ordinal);
        foreach (var f in plan.Flows.Where(f => f.Parent == flow))
        {
            index[f.Name] = (false, f.Props, $"replica {f.ReplicaId} of {f.TotalReplicas}");
            foreach (var p in f.Pipelines)
            {
                index[$"{f.Name}/{p.Name}"] = (true, p.Props, $"{p.Table} -> {p.Index} [{p.Partition.Start}, {p.Partition.End})");
            }
        }

        return index;
    }
}
