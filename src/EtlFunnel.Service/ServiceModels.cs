using System.Collections.Immutable;
using System.Text.Json.Nodes;

namespace EtlFunnel.Service;

/// <summary>How a flow run ended.</summary>
internal enum RunOutcome
{
    /// <summary>Every pipeline finished.</summary>
    Succeeded,

    /// <summary>The run threw or reported a failure.</summary>
    Failed,

    /// <summary>The service was stopping; the run drained and returned early.</summary>
    Cancelled,
}

/// <summary>What a run delegate returns: counts for metrics and the engine's report.</summary>
internal sealed record FlowRunResult(
    RunOutcome Outcome,
    long Rows,
    long DocsIndexed,
    long DeadLetters,
    long Retries,
    string? Error = null,
    JsonNode? Report = null,
    long? PlanVersion = null)
{
    /// <summary>A failed run carrying the reason.</summary>
    public static FlowRunResult Failed(string error, JsonNode? report = null) =>
        new(RunOutcome.Failed, 0, 0, 0, 0, error, report);
}

/// <summary>A finished run as the status endpoints show it.</summary>
internal sealed record RunRecord(
    long Id,
    string Flow,
    DateTimeOffset Started,
    DateTimeOffset Finished,
    RunOutcome Outcome,
    long Rows,
    long DocsIndexed,
    long DeadLetters,
    long Retries,
    string? Error,
    string? ReportJson,
    long PlanVersion)
{
    /// <summary>Documents indexed per second of wall time (0 for an instantaneous run).</summary>
    public double DocsPerSecond
    {
        get
        {
            var seconds = (Finished - Started).TotalSeconds;
            return seconds > 0 ? DocsIndexed / seconds : 0;
        }
    }
}

/// <summary>The hook host as last reported: ok, or broken with diagnostics.</summary>
internal sealed record HookStatus(
    bool Broken,
    ImmutableArray<string> Diagnostics,
    DateTimeOffset? LastReload,
    DateTimeOffset? BrokenSince,
    long Reloads,
    long Failures)
{
    /// <summary>Before the first load.</summary>
    public static HookStatus Initial { get; } = new(false, [], null, null, 0, 0);
}

/// <summary>Cumulative counters of one flow (Prometheus counters never go down).</summary>
internal sealed record FlowCounters(
    long Runs,
    long FailedRuns,
    long Rows,
    long DocsIndexed,
    long DeadLetters,
    long Retries,
    long SkippedTicks,
    double LastDocsPerSecond,
    RunRecord? LastRun)
{
    /// <summary>No run yet.</summary>
    public static FlowCounters Empty { get; } = new(0, 0, 0, 0, 0, 0, 0, 0, null);

    /// <summary>When the flow's last successful run finished, or null before one.</summary>
    public DateTimeOffset? LastSuccess { get; init; }
}

/// <summary>The active plan: its JSON as served by <c>GET /plan</c> and, opaque, the model the wiring runs.</summary>
internal sealed record PlanSnapshot(
    long Version,
    string Json,
    DateTimeOffset AppliedAt,
    ImmutableArray<string> FlowNames,
    object? Model);

/// <summary>One line of a plan diff, stamped with when it was logged and the plan version it led to.</summary>
internal sealed record PlanDiffEntry(DateTimeOffset At, long PlanVersion, string Line);

/// <summary>Healthy, or the reasons why not.</summary>
internal sealed record Health(bool Healthy, ImmutableArray<string> Reasons);

/// <summary>
/// <c>/readyz</c>: <c>ready</c>; <c>degraded</c> (still serving a plan, with reasons: broken hook edit on the last good plan,
/// a failed run, the source unreachable); or <c>not ready</c> (no valid plan yet). Only "not ready" is a 503.
/// </summary>
internal sealed record Readiness(string Status, ImmutableArray<string> Reasons)
{
    /// <summary>Ready or degraded: the service runs a plan.</summary>
    public bool Ready => Status != NotReady;

    /// <summary>The status of a service with no valid plan.</summary>
    public const string NotReady = "not ready";
}

/// <summary>An immutable view of the whole service state at one instant.</summary>
internal sealed record ServiceSnapshot(
    DateTimeOffset StartedAt,
    PlanSnapshot? Plan,
    HookStatus Hooks,
    ImmutableList<RunRecord> Runs,
    ImmutableSortedDictionary<string, FlowCounters> Flows,
    ImmutableList<PlanDiffEntry> PlanDiff,
    string? RestartNeeded)
{
    /// <summary>Why the last re-plan could not reach a flow's source (discovery failed to connect), or null.</summary>
    public string? SourceUnreachable { get; init; }

    /// <summary>Since when the source has been unreachable, or null.</summary>
    public DateTimeOffset? SourceUnreachableSince { get; init; }

    /// <summary>The hook worker's isolation layers (one line each: active or not, and how); empty without a hooks folder.</summary>
    public ImmutableArray<string> HookIsolation { get; init; } = [];

    /// <summary>What <c>/readyz</c> answers: see <see cref="Service.Readiness"/>.</summary>
    public Readiness Readiness
    {
        get
        {
            var reasons = Health.Reasons;
            if (Plan is null)
            {
                return new Readiness(Readiness.NotReady, reasons.IsEmpty ? ["no valid plan yet: the first re-plan has not succeeded"] : reasons);
            }

            return new Readiness(reasons.IsEmpty ? "ready" : "degraded", reasons);
        }
    }

    /// <summary>503-worthy when a hook is broken or the last run of any flow failed.</summary>
    public Health Health
    {
        get
        {
            var reasons = ImmutableArray.CreateBuilder<string>();
            if (Hooks.Broken)
            {
                var first = Hooks.Diagnostics.IsDefaultOrEmpty ? "no diagnostics" : Hooks.Diagnostics[0];
                var keeping = Plan is null ? "no plan is active" : $"running on the last good plan (version {Plan.Version})";
                reasons.Add($"hooks are broken ({Hooks.Diagnostics.Length} diagnostic(s), first: {first}); {keeping}");
            }

            if (SourceUnreachable is { } unreachable)
            {
                reasons.Add($"source unreachable since {SourceUnreachableSince:u}: {unreachable}; retrying with backoff{(Plan is null ? "" : $", the last plan (version {Plan.Version}) stays active")}");
            }

            foreach (var (flow, counters) in Flows)
            {
                if (counters.LastRun is { Outcome: RunOutcome.Failed } failed)
                {
                    reasons.Add($"the last run of flow '{flow}' failed at {failed.Finished:u}: {failed.Error ?? "no error message"}");
                }
            }

            return new Health(reasons.Count == 0, reasons.ToImmutable());
        }
    }
}
