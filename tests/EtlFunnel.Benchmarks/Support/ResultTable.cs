using System.Globalization;
using System.Text;

namespace EtlFunnel.Benchmarks.Support;

/// <summary>One line of the results table. <see cref="Met"/> is null for informational lines without a target.</summary>
internal sealed record ResultRow(string Measure, string Ours, string Baseline, string Ratio, string Target, bool? Met);

/// <summary>Collects result rows and renders them as one markdown table.</summary>
internal sealed class ResultTable
{
    private readonly List<ResultRow> _rows = [];

    public IReadOnlyList<ResultRow> Rows => _rows;

    public void Add(ResultRow row)
    {
        _rows.Add(row);
        Log.Info($"result: {row.Measure} | {row.Ours} | {row.Baseline} | {row.Ratio} | {row.Target} | {Mark(row.Met)}");
    }

    public string ToMarkdown()
    {
        var sb = new StringBuilder();
        sb.AppendLine("| measure | ours | baseline | ratio | target | met |");
        sb.AppendLine("|---|---:|---:|---:|---|:-:|");
        foreach (var r in _rows)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"| {Escape(r.Measure)} | {Escape(r.Ours)} | {Escape(r.Baseline)} | {Escape(r.Ratio)} | {Escape(r.Target)} | {Mark(r.Met)} |");
        }

        return sb.ToString();
    }

    private static string Mark(bool? met) => met switch
    {
        true => "yes",
        false => "**no**",
        null => "—",
    };

    private static string Escape(string s) => s.Replace("|", "\\|", StringComparison.Ordinal);
}

/// <summary>Number formatting shared by the measures (invariant culture, fixed precision).</summary>
internal static class Fmt
{
    public static string Ms(double ms) => ms >= 100 ? $"{ms.ToString("F0", CultureInfo.InvariantCulture)} ms" : $"{ms.ToString("F1", CultureInfo.InvariantCulture)} ms";

    public static string Sec(double s) => $"{s.ToString("F2", CultureInfo.InvariantCulture)} s";

    public static string X(double ratio) => $"{ratio.ToString("F2", CultureInfo.InvariantCulture)}×";

    public static string Ns(double ns) => ns switch
    {
        >= 10_000_000 => Ms(ns / 1e6),
        >= 10_000 => $"{(ns / 1000).ToString("F1", CultureInfo.InvariantCulture)} µs",
        _ => $"{ns.ToString("F0", CultureInfo.InvariantCulture)} ns",
    };

    public static string Mb(double bytes) => $"{(bytes / (1024.0 * 1024.0)).ToString("F1", CultureInfo.InvariantCulture)} MB";

    public static string Rate(double rowsPerSecond) => $"{(rowsPerSecond / 1000).ToString("F0", CultureInfo.InvariantCulture)}k rows/s";

    public static string N(long n) => n.ToString("N0", CultureInfo.InvariantCulture);

    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0)
        {
            return double.NaN;
        }

        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }
}

/// <summary>Progress goes to stderr so stdout carries only the table.</summary>
internal static class Log
{
    private static readonly long Start = System.Diagnostics.Stopwatch.GetTimestamp();

    public static void Info(string message)
        => Console.Error.WriteLine($"[{System.Diagnostics.Stopwatch.GetElapsedTime(Start).TotalSeconds.ToString("F1", CultureInfo.InvariantCulture),7}s] {message}");
}
