using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using EtlFunnel.Orchestration.Plans;
using EtlFunnel.Sync;
using Spectre.Console;

namespace EtlFunnel.Cli.Running;

/// <summary>The replicas of one table of one configured flow, summed.</summary>
internal sealed record TableTotals(
    string Flow,
    string Table,
    string Index,
    int Replicas,
    int FailedReplicas,
    long RowsRead,
    long DocsIndexed,
    long DeadLettered,
    long Retries,
    double DurationSeconds);

/// <summary>The report table and the JSON report of a run, aggregated per flow and table so thousands of replicas stay readable.</summary>
internal static class RunSummary
{
    private const int MaxTableRows = 100;
    private const int MaxErrorsShown = 20;

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
    };

    /// <summary>Per (configured flow, table, index) totals; <paramref name="parentOf"/> maps flow replica → configured flow.</summary>
    public static IReadOnlyList<TableTotals> ByTable(SyncReport report, IReadOnlyDictionary<string, string> parentOf) =>
        [.. report.Replicas
            .GroupBy(r => (Flow: parentOf.GetValueOrDefault(r.Flow, r.Flow), r.Table, r.Index))
            .Select(g => new TableTotals(
                g.Key.Flow,
                g.Key.Table,
                g.Key.Index,
                g.Count(),
                g.Count(r => r.Outcome == SyncOutcome.Failed),
                g.Sum(r => r.RowsRead),
                g.Sum(r => r.DocsIndexed),
                g.Sum(r => r.DeadLettered),
                g.Sum(r => r.Retries),
                g.Max(r => r.Duration.TotalSeconds)))
            .OrderBy(t => t.Flow, StringComparer.Ordinal)
            .ThenBy(t => t.Table, StringComparer.Ordinal),];

    /// <summary>Flow replica name → configured flow name.</summary>
    public static Dictionary<string, string> ParentOf(ExecutionPlan plan) => plan.Flows.ToDictionary(f => f.Name, f => f.Parent, StringComparer.Ordinal);

    /// <summary>Writes the per-table report table, totals and failed replicas' errors.</summary>
    public static void Write(IAnsiConsole console, SyncReport report, IReadOnlyList<TableTotals> tables)
    {
        var table = new Table().Border(TableBorder.Rounded)
            .AddColumn("flow").AddColumn("table").AddColumn("index")
            .AddColumn(new TableColumn("replicas").RightAligned()).AddColumn(new TableColumn("rows read").RightAligned())
            .AddColumn(new TableColumn("docs indexed").RightAligned()).AddColumn(new TableColumn("dead-lettered").RightAligned())
            .AddColumn(new TableColumn("retries").RightAligned()).AddColumn(new TableColumn("duration").RightAligned());
        foreach (var t in tables.Take(MaxTableRows))
        {
            table.AddRow(
                Markup.Escape(t.Flow), Markup.Escape(t.Table), Markup.Escape(t.Index),
                t.FailedReplicas == 0 ? N(t.Replicas) : $"{N(t.Replicas)} ([red]{N(t.FailedReplicas)} failed[/])",
                N(t.RowsRead), N(t.DocsIndexed), t.DeadLettered == 0 ? "0" : $"[red]{N(t.DeadLettered)}[/]", N(t.Retries),
                Seconds(t.DurationSeconds));
        }

        if (tables.Count > MaxTableRows)
        {
            table.AddRow($"[grey]... {N(tables.Count - MaxTableRows)} more tables (see the JSON report)[/]", "", "", "", "", "", "", "", "");
        }

        table.AddEmptyRow();
        table.AddRow("[bold]total[/]", N(tables.Count) + " tables", "", N(report.Replicas.Count), N(report.RowsRead), N(report.DocsIndexed),
            N(report.DeadLettered), N(report.Retries), Seconds(report.Duration.TotalSeconds));
        console.Write(table);

        var failed = report.Replicas.Where(r => r.Error is not null).ToList();
        foreach (var r in failed.Take(MaxErrorsShown))
        {
            console.MarkupLineInterpolated($"[red]{r.Flow}/{r.Replica}[/] ({r.Table}): {r.Error}");
        }

        if (failed.Count > MaxErrorsShown)
        {
            console.WriteLine($"... and {failed.Count - MaxErrorsShown} more failed replicas (see the JSON report)");
        }

        var stopped = report.Replicas.Where(r => r.StoppedBy is not null).ToList();
        foreach (var r in stopped.Take(MaxErrorsShown))
        {
            console.MarkupLineInterpolated($"[yellow]Stopped[/] {r.Flow}/{r.Replica} ({r.Table}) by {r.StoppedBy}");
        }

        if (stopped.Count > MaxErrorsShown)
        {
            console.WriteLine($"... and {stopped.Count - MaxErrorsShown} more stopped replicas (see the JSON report)");
        }

        var seconds = report.Duration.TotalSeconds;
        console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{report.Summary} {report.RowsRead:N0} rows in {seconds:0.0} s ({(seconds > 0 ? report.RowsRead / seconds : 0):N0} rows/s)."));
    }

    /// <summary>The run report as JSON: outcome, totals, per-table totals and (when <paramref name="withReplicas"/>) every replica.</summary>
    public static JsonNode ToJson(SyncReport report, IReadOnlyList<TableTotals> tables, bool withReplicas)
    {
        var document = new
        {
            report.Outcome,
            report.Summary,
            DurationSeconds = report.Duration.TotalSeconds,
            report.RowsRead,
            report.DocsIndexed,
            report.DeadLettered,
            report.Retries,
            report.DeadLetterFile,
            Tables = tables,
            Replicas = withReplicas
                ? report.Replicas.Select(r => new
                {
                    r.Flow,
                    r.Replica,
                    r.Table,
                    r.Index,
                    r.Outcome,
                    r.RowsRead,
                    r.DocsIndexed,
                    r.DeadLettered,
                    r.Retries,
                    r.Resumed,
                    DurationSeconds = r.Duration.TotalSeconds,
                    r.Error,
                    r.StoppedBy,
                }).ToList<object>()
                : null,
        };
        return JsonSerializer.SerializeToNode(document, JsonOptions)!;
    }

    /// <summary>Writes the JSON report to <paramref name="path"/> (folders created).</summary>
    public static async Task WriteJsonAsync(string path, JsonNode report, CancellationToken cancellationToken)
    {
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        await File.WriteAllTextAsync(full, report.ToJsonString(JsonOptions) + "\n", cancellationToken).ConfigureAwait(false);
    }

    private static string N(long value) => value.ToString("N0", CultureInfo.InvariantCulture);

    private static string Seconds(double seconds) => seconds.ToString("0.0", CultureInfo.InvariantCulture) + " s";
}
