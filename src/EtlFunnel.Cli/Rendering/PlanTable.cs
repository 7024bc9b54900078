using System.Globalization;
using System.Text.Json;
using EtlFunnel.Orchestration.Plans;
using Spectre.Console;

namespace EtlFunnel.Cli.Rendering;

/// <summary>Prints a plan as one Spectre table: flow replica, pipeline replica, table → index, partition, rows, key props.</summary>
internal static class PlanTable
{
    public static void Write(IAnsiConsole console, ExecutionPlan plan)
    {
        var m = plan.Machine;
        console.MarkupLine(Markup.Escape(string.Create(CultureInfo.InvariantCulture,
            $"Plan for {m.Region ?? "(no region)"} / {m.HostName}: {m.Cores} cores, {m.MemoryBytes / (double)(1L << 30):0.#} GiB")));
        console.MarkupLine(Markup.Escape($"Flow hooks: {List(plan.Hooks.Flow)}; pipeline hooks: {List(plan.Hooks.Pipeline)}"));

        var table = new Table().Border(TableBorder.Rounded)
            .AddColumn("flow replica")
            .AddColumn("pipeline replica")
            .AddColumn("table -> index")
            .AddColumn("partition")
            .AddColumn(new TableColumn("rows").RightAligned())
            .AddColumn("props");
        foreach (var flow in plan.Flows)
        {
            var flowLabel = $"{flow.Name} ({flow.ReplicaId + 1}/{flow.TotalReplicas})";
            var flowProps = Props(flow.Props);
            if (flow.Pipelines.IsEmpty)
            {
                table.AddRow(Markup.Escape(flowLabel), "-", "-", "-", "-", Markup.Escape(flowProps));
            }

            var first = true;
            foreach (var p in flow.Pipelines)
            {
                table.AddRow(
                    first ? Markup.Escape(flowLabel) : "",
                    Markup.Escape(p.Name),
                    Markup.Escape($"{p.Table} -> {p.Index}"),
                    Markup.Escape($"[{p.Partition.Start}, {p.Partition.End})  #{p.Partition.Index + 1}/{p.Partition.Count}"),
                    (p.Stats.RowsAreExact ? "" : "~") + p.Stats.Rows.ToString("N0", CultureInfo.InvariantCulture),
                    Markup.Escape(first && flowProps.Length > 0 ? $"{Props(p.Props)}  flow: {flowProps}" : Props(p.Props)));
                first = false;
            }
        }

        console.Write(table);
        foreach (var group in plan.Flows.GroupBy(f => f.Parent))
        {
            console.MarkupLine(Markup.Escape(string.Create(CultureInfo.InvariantCulture,
                $"{group.Key}: {group.Count()} flow replica(s), {group.Sum(f => f.Pipelines.Length)} pipeline replica(s) over {group.First().Pipelines.Select(p => p.Table).Distinct().Count()} table(s) -> {group.First().Destination.Kind} {group.First().Destination.Name}")));
        }
    }

    private static string List(IReadOnlyCollection<string> items) => items.Count == 0 ? "none (one replica each)" : string.Join(", ", items);

    /// <summary>The props except replica_id/total_replicas, which the partition column already shows.</summary>
    private static string Props(JsonElement props) => props.ValueKind != JsonValueKind.Object
        ? ""
        : string.Join(" ", props.EnumerateObject()
            .Where(p => p.Name is not ("replica_id" or "total_replicas"))
            .Select(p => $"{p.Name}={(p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString() : p.Value.GetRawText())}"));
}
