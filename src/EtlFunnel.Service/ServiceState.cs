using System.Collections.Immutable;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace EtlFunnel.Service;

/// <summary>
/// What the watch service knows: active plan, hook status, recent runs, per-flow counters, plan diffs.
/// Writers serialise on a lock and publish a new immutable <see cref="ServiceSnapshot"/>; readers take
/// <see cref="Snapshot"/> without locking, so a status request never sees half an update.
/// </summary>
internal sealed class ServiceState
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    private readonly object _gate = new();
    private readonly TimeProvider _time;
    private readonly int _runCapacity;
    private readonly int _diffCapacity;
    private ServiceSnapshot _snapshot;
    private long _nextRunId;

    /// <summary>Creates an empty state keeping the last <paramref name="runCapacity"/> runs and <paramref name="diffCapacity"/> diff lines.</summary>
    public ServiceState(TimeProvider time, int runCapacity = 50, int diffCapacity = 200)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(runCapacity, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(diffCapacity, 1);
        _time = time;
        _runCapacity = runCapacity;
        _diffCapacity = diffCapacity;
        _snapshot = new ServiceSnapshot(
            time.GetUtcNow(),
            null,
            HookStatus.Initial,
            [],
            ImmutableSortedDictionary.Create<string, FlowCounters>(StringComparer.Ordinal),
            [],
            null);
    }

    /// <summary>Raised after every change, outside the lock, with the new snapshot.</summary>
    public event Action<ServiceSnapshot>? Changed;

    /// <summary>The current state; never changes once read.</summary>
    public ServiceSnapshot Snapshot => Volatile.Read(ref _snapshot);

    /// <summary>The clock the state stamps its entries with.</summary>
    public TimeProvider Time => _time;

    /// <summary>Makes <paramref name="plan"/> (the <c>plan --format json</c> document) active and logs its diff; <paramref name="model"/> is the object runs execute.</summary>
    public PlanSnapshot SetPlan(JsonNode plan, IReadOnlyList<string> diffLines, object? model = null)
    {
        ArgumentNullException.ThrowIfNull(plan);
        return Apply(plan.ToJsonString(Indented), plan, diffLines, model);
    }

    /// <summary>Makes <paramref name="planJson"/> (as <c>plan --format json</c> prints it; served verbatim) active and logs its diff.</summary>
    public PlanSnapshot SetPlan(string planJson, IReadOnlyList<string> diffLines, object? model = null)
    {
        ArgumentNullException.ThrowIfNull(planJson);
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(planJson);
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"The plan is not valid JSON: {e.Message}", nameof(planJson), e);
        }

        return Apply(planJson, node, diffLines, model);
    }

    private PlanSnapshot Apply(string json, JsonNode? plan, IReadOnlyList<string> diffLines, object? model)
    {
        ArgumentNullException.ThrowIfNull(diffLines);
        var flowNames = ReadFlowNames(plan as JsonObject
            ?? throw new ArgumentException("The plan must be a JSON object with a 'flows' array.", nameof(plan)));
        PlanSnapshot applied = null!;
        Update(s =>
        {
            var now = _time.GetUtcNow();
            var version = (s.Plan?.Version ?? 0) + 1;
            applied = new PlanSnapshot(version, json, now, flowNames, model);
            var flows = s.Flows;
            foreach (var name in flowNames)
            {
                if (!flows.ContainsKey(name))
                {
                    flows = flows.Add(name, FlowCounters.Empty);
                }
            }

            var diff = s.PlanDiff.AddRange(diffLines.Select(l => new PlanDiffEntry(now, version, l)));
            if (diff.Count > _diffCapacity)
            {
                diff = diff.RemoveRange(0, diff.Count - _diffCapacity);
            }

            return s with { Plan = applied, Flows = flows, PlanDiff = diff };
        });
        return applied;
    }

    /// <summary>Records that a re-plan could not reach a source (a database that is down is not a broken hook).</summary>
    public void SetSourceUnreachable(string reason) => Update(s => s with
    {
        SourceUnreachable = reason,
        SourceUnreachableSince = s.SourceUnreachableSince ?? _time.GetUtcNow(),
    });

    /// <summary>Records that a re-plan reached every source again.</summary>
    public void SetSourceReachable() => Update(s => s.SourceUnreachable is null ? s : s with { SourceUnreachable = null, SourceUnreachableSince = null });

    /// <summary>Records a successful hook load or reload: clears a broken status.</summary>
    public void SetHooksOk() => Update(s => s with
    {
        Hooks = s.Hooks with
        {
            Broken = false,
            Diagnostics = [],
            BrokenSince = null,
            LastReload = _time.GetUtcNow(),
            Reloads = s.Hooks.Reloads + 1,
        },
    });

    /// <summary>Records a failed hook load or reload (compile error, policy violation, throwing hook, invalid plan) with its <c>file(line,col): error EFxxxx: ...</c> diagnostics.</summary>
    public void SetHooksBroken(IReadOnlyList<string> diagnostics)
    {
        ArgumentNullException.ThrowIfNull(diagnostics);
        var diags = diagnostics.ToImmutableArray();
        Update(s =>
        {
            var now = _time.GetUtcNow();
            return s with
            {
                Hooks = s.Hooks with
                {
                    Broken = true,
                    Diagnostics = diags,
                    BrokenSince = s.Hooks.BrokenSince ?? now,
                    LastReload = now,
                    Reloads = s.Hooks.Reloads + 1,
                    Failures = s.Hooks.Failures + 1,
                },
            };
        });
    }

    /// <summary>Records a finished run of <paramref name="flow"/>: appends it to the recent runs and adds its counts to the flow's counters.</summary>
    public RunRecord RecordRun(string flow, DateTimeOffset started, DateTimeOffset finished, FlowRunResult result, long planVersion)
    {
        ArgumentException.ThrowIfNullOrEmpty(flow);
        ArgumentNullException.ThrowIfNull(result);
        var reportJson = result.Report?.ToJsonString();
        RunRecord record = null!;
        Update(s =>
        {
            // Numbered under the lock so ids follow the order of the recent-runs list.
            record = new RunRecord(
                ++_nextRunId,
                flow,
                started,
                finished,
                result.Outcome,
                result.Rows,
                result.DocsIndexed,
                result.DeadLetters,
                result.Retries,
                result.Error,
                reportJson,
                planVersion);
            var runs = s.Runs.Insert(0, record);
            if (runs.Count > _runCapacity)
            {
                runs = runs.RemoveRange(_runCapacity, runs.Count - _runCapacity);
            }

            var c = s.Flows.GetValueOrDefault(flow) ?? FlowCounters.Empty;
            c = c with
            {
                Runs = c.Runs + 1,
                FailedRuns = c.FailedRuns + (record.Outcome == RunOutcome.Failed ? 1 : 0),
                Rows = c.Rows + record.Rows,
                DocsIndexed = c.DocsIndexed + record.DocsIndexed,
                DeadLetters = c.DeadLetters + record.DeadLetters,
                Retries = c.Retries + record.Retries,
                LastDocsPerSecond = record.DocsPerSecond,
                LastRun = record,
                LastSuccess = record.Outcome == RunOutcome.Succeeded ? record.Finished : c.LastSuccess,
            };
            return s with { Runs = runs, Flows = s.Flows.SetItem(flow, c) };
        });
        RunRecorded?.Invoke(record);
        return record;
    }

    /// <summary>Raised after every <see cref="RecordRun"/> (outside the state's lock), e.g. for the run duration histogram.</summary>
    public event Action<RunRecord>? RunRecorded;

    /// <summary>Counts a scheduler tick that found the flow's previous run still going.</summary>
    public void RecordSkippedTick(string flow) => Update(s =>
    {
        var c = s.Flows.GetValueOrDefault(flow) ?? FlowCounters.Empty;
        return s with { Flows = s.Flows.SetItem(flow, c with { SkippedTicks = c.SkippedTicks + 1 }) };
    });

    /// <summary>Says that a restart is needed (e.g. flows.yaml changed on disk), or clears it with <see langword="null"/>.</summary>
    public void SetRestartNeeded(string? reason) => Update(s => s with { RestartNeeded = reason });

    /// <summary>Changes the stream entry of CDC flow <paramref name="flow"/> (null before its first report).</summary>
    public CdcStreamState SetStream(string flow, Func<CdcStreamState?, CdcStreamState> change)
    {
        ArgumentException.ThrowIfNullOrEmpty(flow);
        ArgumentNullException.ThrowIfNull(change);
        CdcStreamState next = null!;
        Update(s =>
        {
            next = change(s.Streams.GetValueOrDefault(flow));
            return s with { Streams = s.Streams.SetItem(flow, next) };
        });
        return next;
    }

    /// <summary>Records the hook worker's isolation layers as detected at start.</summary>
    public void SetHookIsolation(IEnumerable<string> layers) => Update(s => s with { HookIsolation = [.. layers] });

    private void Update(Func<ServiceSnapshot, ServiceSnapshot> change)
    {
        ServiceSnapshot next;
        lock (_gate)
        {
            next = change(_snapshot);
            Volatile.Write(ref _snapshot, next);
        }

        Changed?.Invoke(next);
    }

    private static ImmutableArray<string> ReadFlowNames(JsonObject plan)
    {
        if (plan["flows"] is not JsonArray flows)
        {
            throw new ArgumentException("The plan has no 'flows' array.", nameof(plan));
        }

        // Flow replicas carry the configured flow in "parent"; counters and schedules are per configured flow.
        var names = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var flow in flows)
        {
            var name = StringOf(flow?["parent"]);
            if (string.IsNullOrEmpty(name))
            {
                name = StringOf(flow?["name"]);
            }

            if (string.IsNullOrEmpty(name))
            {
                throw new ArgumentException("A flow in the plan has neither 'parent' nor 'name'.", nameof(plan));
            }

            names.Add(name);
        }

        return [.. names];
    }

    private static string? StringOf(JsonNode? node) =>
        node is JsonValue v && v.TryGetValue<string>(out var text) ? text : null;
}
