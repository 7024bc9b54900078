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

/// <summary>Where a CDC flow's long-lived stream is in the watch service.</summary>
internal enum StreamPhase
{
    /// <summary>Started, not yet reporting (checks, slot, publication).</summary>
    Starting,

    /// <summary>Taking the flow's snapshot.</summary>
    Snapshot,

    /// <summary>Streaming the WAL.</summary>
    Streaming,

    /// <summary>Stopping to start again on a new plan (the lane count or the tables changed).</summary>
    Restarting,

    /// <summary>The stream failed; it starts again after a backoff.</summary>
    Retrying,

    /// <summary>The plan has no replica of the flow (e.g. the hooks left it out); waits for one that has.</summary>
    NotPlanned,

    /// <summary>Stopped with the service.</summary>
    Stopped,
}

/// <summary>What a running CDC stream reports about itself (see the CLI's wiring of the CDC engine's status).</summary>
/// <param name="Streaming">True once the WAL is being streamed (false during the snapshot).</param>
/// <param name="Lanes">Apply lanes.</param>
/// <param name="AppliedLsn">The last position every lane applied.</param>
/// <param name="LagBytes">WAL between the source's current position and <paramref name="AppliedLsn"/>.</param>
/// <param name="LagSeconds">Age of the oldest received, not yet applied commit; 0 when caught up.</param>
/// <param name="ChangesApplied">Changes applied by this stream so far.</param>
internal sealed record StreamProgress(bool Streaming, int Lanes, string? AppliedLsn, long? LagBytes, double? LagSeconds, long ChangesApplied);

/// <summary>One CDC flow's stream as the status endpoints and <c>/metrics</c> show it.</summary>
internal sealed record CdcStreamState(string Flow, StreamPhase Phase, DateTimeOffset Since)
{
    /// <summary>What the stream was (or will be) started with, e.g. <c>2 lane(s); public.orders</c>; a change in a new plan restarts it.</summary>
    public string? Shape { get; init; }

    /// <summary>Apply lanes of the running stream (0 before it streams).</summary>
    public int Lanes { get; init; }

    /// <summary>The last position every lane applied.</summary>
    public string? AppliedLsn { get; init; }

    /// <summary>Bytes of WAL behind the source's current position; null while unknown (not streaming).</summary>
    public long? LagBytes { get; init; }

    /// <summary>Seconds the oldest unapplied commit has waited; 0 when caught up, null while unknown.</summary>
    public double? LagSeconds { get; init; }

    /// <summary>Changes applied by the current stream.</summary>
    public long ChangesApplied { get; init; }

    /// <summary>Times the stream was started (the first start included).</summary>
    public long Starts { get; init; }

    /// <summary>Restarts on a new plan (lane count or tables changed).</summary>
    public long Restarts { get; init; }

    /// <summary>Failures in a row (0 once a stream ran longer than the longest backoff).</summary>
    public int ConsecutiveFailures { get; init; }

    /// <summary>Why the stream last failed, or null.</summary>
    public string? LastError { get; init; }

    /// <summary>When a failed stream starts again.</summary>
    public DateTimeOffset? RetryAt { get; init; }
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

    /// <summary>The CDC flows' long-lived streams, by flow.</summary>
    public ImmutableSortedDictionary<string, CdcStreamState> Streams { get; init; } = ImmutableSortedDictionary.Create<string, CdcStreamState>(StringComparer.Ordinal);

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

            foreach (var stream in Streams.Values.Where(x => x.Phase == StreamPhase.Retrying))
            {
                reasons.Add($"the CDC stream of flow '{stream.Flow}' failed ({stream.ConsecutiveFailures} time(s) in a row): {stream.LastError ?? "no error message"}; it starts again at {stream.RetryAt:u}");
            }

            foreach (var (flow, counters) in Flows)
            {
                // A CDC flow's health is its stream's: a stream that failed and runs again is healthy.
                if (Streams.ContainsKey(flow))
                {
                    continue;
                }

                if (counters.LastRun is { Outcome: RunOutcome.Failed } failed)
                {
                    reasons.Add($"the last run of flow '{flow}' failed at {failed.Finished:u}: {failed.Error ?? "no error message"}");
                }
            }

            return new Health(reasons.Count == 0, reasons.ToImmutable());
        }
    }
}
