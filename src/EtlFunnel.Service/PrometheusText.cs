using System.Globalization;
using System.Text;

namespace EtlFunnel.Service;

/// <summary>
/// Writes a snapshot in the Prometheus text exposition format 0.0.4. Hand-written rather than through
/// prometheus-net: every value already lives in the immutable snapshot, so a registry of mutable
/// collectors would only duplicate it.
/// </summary>
internal static class PrometheusText
{
    /// <summary>The Content-Type of the exposition.</summary>
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    /// <summary>All metrics of <paramref name="s"/>, one sample per line.</summary>
    public static string Write(ServiceSnapshot s)
    {
        var sb = new StringBuilder();
        PerFlow(sb, s, "etlfunnel_rows_synced_total", "counter", "Rows read from PostgreSQL and synced, per flow.", c => c.Rows);
        PerFlow(sb, s, "etlfunnel_docs_indexed_total", "counter", "Documents Elasticsearch accepted, per flow.", c => c.DocsIndexed);
        PerFlow(sb, s, "etlfunnel_retries_total", "counter", "Retried requests, per flow.", c => c.Retries);
        PerFlow(sb, s, "etlfunnel_dead_letters_total", "counter", "Documents given up on and dead-lettered, per flow.", c => c.DeadLetters);
        PerFlow(sb, s, "etlfunnel_runs_total", "counter", "Finished runs, per flow.", c => c.Runs);
        PerFlow(sb, s, "etlfunnel_failed_runs_total", "counter", "Runs that failed, per flow.", c => c.FailedRuns);
        PerFlow(sb, s, "etlfunnel_skipped_ticks_total", "counter", "Schedule ticks skipped because the flow's previous run was still going, per flow.", c => c.SkippedTicks);
        PerFlow(sb, s, "etlfunnel_docs_per_second", "gauge", "Documents indexed per second in the flow's last run.", c => c.LastDocsPerSecond);
        PerFlow(sb, s, "etlfunnel_last_run_success", "gauge", "1 if the flow's last run succeeded, 0 if it failed or was cancelled, absent before the first run.", c => c.LastRun is null ? null : c.LastRun.Outcome == RunOutcome.Succeeded ? 1 : 0);
        Single(sb, "etlfunnel_hook_reloads_total", "counter", "Hook loads and reloads attempted (successful or not).", s.Hooks.Reloads);
        Single(sb, "etlfunnel_hook_failures_total", "counter", "Hook loads and reloads that failed (the last good plan stayed active).", s.Hooks.Failures);
        Single(sb, "etlfunnel_hooks_broken", "gauge", "1 while the hooks are broken.", s.Hooks.Broken ? 1 : 0);
        Single(sb, "etlfunnel_restart_needed", "gauge", "1 while flows.yaml on disk differs from what the service loaded (restart to apply).", s.RestartNeeded is null ? 0 : 1);
        Single(sb, "etlfunnel_plan_version", "gauge", "Version of the active plan (1 = first plan; 0 = none yet).", s.Plan?.Version ?? 0);
        Single(sb, "etlfunnel_healthy", "gauge", "1 while /healthz answers 200.", s.Health.Healthy ? 1 : 0);
        return sb.ToString();
    }

    /// <summary>Escapes a label value: backslash, double quote and line feed.</summary>
    public static string EscapeLabel(string value) =>
        value.Replace("\\", "\\\\", StringComparison.Ordinal)
            .Replace("\"", "\\\"", StringComparison.Ordinal)
            .Replace("\n", "\\n", StringComparison.Ordinal);

    private static void PerFlow(StringBuilder sb, ServiceSnapshot s, string name, string type, string help, Func<FlowCounters, double?> value)
    {
        Header(sb, name, type, help);
        foreach (var (flow, counters) in s.Flows)
        {
            if (value(counters) is { } v)
            {
                sb.Append(name).Append("{flow=\"").Append(EscapeLabel(flow)).Append("\"} ").Append(Format(v)).Append('\n');
            }
        }
    }

    private static void Single(StringBuilder sb, string name, string type, string help, double value)
    {
        Header(sb, name, type, help);
        sb.Append(name).Append(' ').Append(Format(value)).Append('\n');
    }

    private static void Header(StringBuilder sb, string name, string type, string help) =>
        sb.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n')
          .Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');

    private static string Format(double v) =>
        double.IsNaN(v) ? "NaN"
        : double.IsPositiveInfinity(v) ? "+Inf"
        : double.IsNegativeInfinity(v) ? "-Inf"
        : v.ToString("R", CultureInfo.InvariantCulture);
}
