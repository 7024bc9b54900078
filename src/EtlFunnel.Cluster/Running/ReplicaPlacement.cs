using System.Text.Json;
using EtlFunnel.Cluster.Members;

namespace EtlFunnel.Cluster.Running;

/// <summary>
/// Where a pipeline replica may run and which member gets it. Replica props (pipeline replica first, then its flow replica):
/// <c>cluster_region</c> (a member's region, case-insensitive; empty, blank or absent: any region, so a hook can write
/// <c>machine.Region ?? ""</c>) and <c>cluster_labels</c> (an object, or <c>"k=v,k2=v2"</c>: every label must match).
/// Among the members allowed, the one with the most free cores (cores − replicas running there) wins.
/// </summary>
internal sealed record ReplicaPlacement(string? Region, IReadOnlyDictionary<string, string> Labels)
{
    public const string RegionProp = "cluster_region";
    public const string LabelsProp = "cluster_labels";

    public static ReplicaPlacement Anywhere { get; } = new(null, new Dictionary<string, string>());

    public static ReplicaPlacement From(JsonElement pipelineProps, JsonElement flowProps)
    {
        // An empty region is no pin (the pipeline replica's empty value still overrides its flow replica's region).
        var region = Text(pipelineProps, RegionProp) ?? Text(flowProps, RegionProp);
        region = string.IsNullOrWhiteSpace(region) ? null : region.Trim();
        var labels = LabelsOf(pipelineProps) ?? LabelsOf(flowProps) ?? new Dictionary<string, string>();
        return new ReplicaPlacement(region, labels);
    }

    public bool Allows(Member member) =>
        (Region is null || string.Equals(member.Machine.Region, Region, StringComparison.OrdinalIgnoreCase))
        && Labels.All(l => member.Machine.Labels.TryGetValue(l.Key, out var v) && string.Equals(v, l.Value, StringComparison.Ordinal));

    /// <summary>The allowed member with the most free cores (at least one), or null: the replica waits.</summary>
    public Member? Choose(IEnumerable<Member> members, IReadOnlyDictionary<string, int> load)
    {
        Member? best = null;
        var bestFree = 0;
        foreach (var m in members.Where(Allows))
        {
            var free = m.Machine.LogicalCores - load.GetValueOrDefault(m.Silo);
            if (free > bestFree)
            {
                (best, bestFree) = (m, free);
            }
        }

        return best;
    }

    public override string ToString() =>
        Region is null && Labels.Count == 0 ? "any member" : $"region {Region ?? "any"}, labels {string.Join(",", Labels.Select(l => $"{l.Key}={l.Value}"))}";

    private static string? Text(JsonElement props, string name) =>
        props.ValueKind == JsonValueKind.Object && props.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static Dictionary<string, string>? LabelsOf(JsonElement props)
    {
        if (props.ValueKind != JsonValueKind.Object || !props.TryGetProperty(LabelsProp, out var v))
        {
            return null;
        }

        if (v.ValueKind == JsonValueKind.Object)
        {
            return v.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString() ?? "" : p.Value.GetRawText(), StringComparer.Ordinal);
        }

        if (v.ValueKind == JsonValueKind.String)
        {
            return (v.GetString() ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(pair => pair.Split('=', 2))
                .ToDictionary(kv => kv[0], kv => kv.Length > 1 ? kv[1] : "", StringComparer.Ordinal);
        }

        return null;
    }
}
