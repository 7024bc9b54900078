using Microsoft.Extensions.Logging;

namespace EtlFunnel.Service;

/// <summary>What a CDC stream is handed: the flow, the state (hence the plan) it starts on, and where to report its progress.</summary>
/// <param name="Flow">The configured CDC flow.</param>
/// <param name="AtStart">The snapshot taken at the start; <c>AtStart.Plan.Model</c> is the plan the stream runs on until it is restarted.</param>
/// <param name="Report">Called by the stream with its phase, lanes and lag (any thread).</param>
internal sealed record CdcStreamContext(string Flow, ServiceSnapshot AtStart, Action<StreamProgress> Report)
{
    /// <summary>The plan active when the stream started.</summary>
    public PlanSnapshot Plan => AtStart.Plan!;
}

/// <summary>
/// Runs each CDC flow as one long-lived stream instead of scheduling it: started once a plan exists, restarted (stopped cleanly,
/// then started from its checkpoint) when a new plan changes what it streams with (its <em>shape</em>: lane count and tables),
/// started again with backoff after a failure (shown on the status page, never stopping the service), and stopped, draining and
/// acknowledging, when the service stops. Each stream session is recorded as a run when it ends.
/// </summary>
internal sealed class CdcStreamSupervisor
{
    private readonly IReadOnlyList<string> _flows;
    private readonly Func<CdcStreamContext, CancellationToken, Task<FlowRunResult>> _run;
    private readonly Func<object?, string, string?> _shape;
    private readonly ServiceState _state;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private TaskCompletionSource _planChanged = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _planVersion;

    /// <summary>
    /// Supervises <paramref name="flows"/>. <paramref name="shape"/> says, from a plan's model, what a flow's stream runs with
    /// (null when the plan has no replica of it); <paramref name="run"/> streams until its token is cancelled or it fails.
    /// </summary>
    public CdcStreamSupervisor(
        IReadOnlyList<string> flows,
        Func<CdcStreamContext, CancellationToken, Task<FlowRunResult>> run,
        Func<object?, string, string?> shape,
        ServiceState state,
        TimeProvider time,
        ILoggerFactory log)
    {
        _flows = flows ?? throw new ArgumentNullException(nameof(flows));
        _run = run ?? throw new ArgumentNullException(nameof(run));
        _shape = shape ?? throw new ArgumentNullException(nameof(shape));
        _state = state ?? throw new ArgumentNullException(nameof(state));
        _time = time ?? throw new ArgumentNullException(nameof(time));
        _log = (log ?? throw new ArgumentNullException(nameof(log))).CreateLogger<CdcStreamSupervisor>();
    }

    /// <summary>The wait before starting a stream again after <paramref name="failures"/> failures in a row: 1 s, 2 s, 4 s, ... up to 1 min.</summary>
    public static TimeSpan Backoff(int failures) => PlanReloader.Backoff(failures);

    /// <summary>Runs every flow's stream until <paramref name="stop"/>, then waits for them to drain and acknowledge.</summary>
    public async Task RunAsync(CancellationToken stop)
    {
        if (_flows.Count == 0)
        {
            return;
        }

        _state.Changed += OnChanged;
        try
        {
            await Task.WhenAll(_flows.Select(f => Task.Run(() => SuperviseAsync(f, stop), CancellationToken.None))).ConfigureAwait(false);
        }
        finally
        {
            _state.Changed -= OnChanged;
        }
    }

    private Task PlanChanged => Volatile.Read(ref _planChanged).Task;

    private void OnChanged(ServiceSnapshot s)
    {
        var version = s.Plan?.Version ?? 0;
        if (Interlocked.Exchange(ref _planVersion, version) != version)
        {
            Interlocked.Exchange(ref _planChanged, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
        }
    }

    private async Task SuperviseAsync(string flow, CancellationToken stop)
    {
        var failures = 0;
        _state.SetStream(flow, _ => new CdcStreamState(flow, StreamPhase.Starting, _time.GetUtcNow()));
        while (!stop.IsCancellationRequested)
        {
            // Read the signal before the state, so a plan published in between is not missed.
            var changed = PlanChanged;
            var atStart = _state.Snapshot;
            if (atStart.Plan is null)
            {
                if (!await WaitAsync(changed, stop).ConfigureAwait(false))
                {
                    break;
                }

                continue;
            }

            string? shape;
            try
            {
                shape = _shape(atStart.Plan.Model, flow);
            }
#pragma warning disable CA1031 // A plan the stream cannot be built from is this flow's failure, shown and retried, not the service's.
            catch (Exception e)
#pragma warning restore CA1031
            {
                failures++;
                var error = $"{e.GetType().Name}: {e.Message}";
                var now = _time.GetUtcNow();
                _state.RecordRun(flow, now, now, FlowRunResult.Failed(error), atStart.Plan.Version);
                if (!await RetryLaterAsync(flow, failures, error, stop).ConfigureAwait(false))
                {
                    break;
                }

                continue;
            }

            if (shape is null)
            {
                _log.LogWarning("Flow {Flow}: plan version {Version} has no replica of this CDC flow; its stream waits for a plan that has", flow, atStart.Plan.Version);
                _state.SetStream(flow, s => Next(s, flow, StreamPhase.NotPlanned) with { Shape = null });
                if (!await WaitAsync(changed, stop).ConfigureAwait(false))
                {
                    break;
                }

                continue;
            }

            var (result, started, restart) = await StreamOnceAsync(flow, atStart, shape, stop).ConfigureAwait(false);
            var finished = _time.GetUtcNow();
            var record = _state.RecordRun(flow, started, finished, result, atStart.Plan.Version);
            if (stop.IsCancellationRequested)
            {
                _log.LogInformation("Flow {Flow}: CDC stream stopped ({Outcome:l}): {Changes} change(s) applied", flow, record.Outcome.ToString(), record.DocsIndexed);
                break;
            }

            if (restart is not null)
            {
                _log.LogInformation("Flow {Flow}: CDC stream stopped for the new plan ({Outcome:l}, {Changes} change(s) applied); starting it with {Shape:l}", flow, record.Outcome.ToString(), record.DocsIndexed, restart);
                continue;
            }

            // A stream without --until-caught-up only ends when stopped; ending on its own is a failure too.
            var reason = result.Outcome == RunOutcome.Failed ? result.Error ?? "the stream failed" : $"the stream ended by itself ({record.Outcome})";
            failures = finished - started > Backoff(int.MaxValue) ? 1 : failures + 1;
            if (!await RetryLaterAsync(flow, failures, reason, stop).ConfigureAwait(false))
            {
                break;
            }
        }

        _state.SetStream(flow, s => Next(s, flow, StreamPhase.Stopped) with { LagBytes = null, LagSeconds = null });
    }

    // One stream session: runs until it ends, the service stops, or a new plan changes its shape (then stops it and returns the new shape).
    private async Task<(FlowRunResult Result, DateTimeOffset Started, string? Restart)> StreamOnceAsync(string flow, ServiceSnapshot atStart, string shape, CancellationToken stop)
    {
        using var session = CancellationTokenSource.CreateLinkedTokenSource(stop);
        var started = _time.GetUtcNow();
        var reporting = 1;
        _state.SetStream(flow, s => Next(s, flow, StreamPhase.Starting) with { Shape = shape, Starts = (s?.Starts ?? 0) + 1, RetryAt = null });
        _log.LogInformation("Flow {Flow}: starting its CDC stream on plan version {Version} ({Shape:l})", flow, atStart.Plan!.Version, shape);
        var context = new CdcStreamContext(flow, atStart, progress =>
        {
            if (Volatile.Read(ref reporting) == 1)
            {
                _state.SetStream(flow, s => Progress(s, flow, progress));
            }
        });
        var run = RunGuardedAsync(context, session.Token);
        var seen = atStart.Plan.Version;
        string? restart = null;
        while (true)
        {
            var changed = PlanChanged;
            if (_state.Snapshot.Plan is { } now && now.Version != seen)
            {
                seen = now.Version;
                string? next;
                try
                {
                    next = _shape(now.Model, flow);
                }
#pragma warning disable CA1031 // Restart anyway: the next start reports the error as the stream's failure.
                catch (Exception e)
#pragma warning restore CA1031
                {
                    next = $"an unusable plan ({e.Message})";
                }

                if (!string.Equals(next, shape, StringComparison.Ordinal))
                {
                    restart = next ?? "no replica in the plan";
                    _log.LogInformation("Flow {Flow}: plan version {Version} changes its CDC stream ({Before:l} -> {After:l}); stopping it to start again from its checkpoint", flow, now.Version, shape, restart);
                    Volatile.Write(ref reporting, 0);
                    _state.SetStream(flow, s => Next(s, flow, StreamPhase.Restarting) with { Restarts = (s?.Restarts ?? 0) + 1 });
                    await session.CancelAsync().ConfigureAwait(false);
                    break;
                }

                continue;
            }

            // The session token is linked to the service's stop, so a stop ends the run as well.
            var done = await Task.WhenAny(run, changed).ConfigureAwait(false);
            if (done != changed)
            {
                break;
            }
        }

        Volatile.Write(ref reporting, 0);
        return (await run.ConfigureAwait(false), started, restart);
    }

    private async Task<FlowRunResult> RunGuardedAsync(CdcStreamContext context, CancellationToken token)
    {
        await Task.Yield();
        try
        {
            return await _run(context, token).ConfigureAwait(false) ?? FlowRunResult.Failed("the stream delegate returned no result");
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            return new FlowRunResult(RunOutcome.Cancelled, 0, 0, 0, 0, "stopped");
        }
#pragma warning disable CA1031 // A failing stream must not take the service down; it is recorded, shown and retried.
        catch (Exception e)
#pragma warning restore CA1031
        {
            return FlowRunResult.Failed($"{e.GetType().Name}: {e.Message}");
        }
    }

    private async Task<bool> RetryLaterAsync(string flow, int failures, string error, CancellationToken stop)
    {
        var delay = Backoff(failures);
        var at = _time.GetUtcNow() + delay;
        // The retry's timer exists before the state says "retrying", so whoever reacts to that can move the clock.
        var wait = Task.Delay(delay, _time, stop);
        _state.SetStream(flow, s => Next(s, flow, StreamPhase.Retrying) with { ConsecutiveFailures = failures, LastError = error, RetryAt = at, LagBytes = null, LagSeconds = null });
        _log.LogError("Flow {Flow}: CDC stream failed ({Failures} time(s) in a row): {Error:l}; starting it again in {Delay:l}", flow, failures, error, Interval.Format(delay));
        try
        {
            await wait.ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private static async Task<bool> WaitAsync(Task signal, CancellationToken stop)
    {
        try
        {
            await signal.WaitAsync(stop).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private CdcStreamState Next(CdcStreamState? s, string flow, StreamPhase phase) =>
        s is null ? new CdcStreamState(flow, phase, _time.GetUtcNow())
        : s.Phase == phase ? s
        : s with { Phase = phase, Since = _time.GetUtcNow() };

    private CdcStreamState Progress(CdcStreamState? s, string flow, StreamProgress p)
    {
        var next = Next(s, flow, p.Streaming ? StreamPhase.Streaming : StreamPhase.Snapshot) with
        {
            Lanes = p.Lanes,
            AppliedLsn = p.AppliedLsn ?? s?.AppliedLsn,
            LagBytes = p.LagBytes,
            LagSeconds = p.LagSeconds,
            ChangesApplied = p.ChangesApplied,
        };
        return p.Streaming ? next with { RetryAt = null } : next;
    }
}
