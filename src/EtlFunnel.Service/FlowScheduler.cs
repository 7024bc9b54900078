using Microsoft.Extensions.Logging;

namespace EtlFunnel.Service;

/// <summary>A configured flow and how often it runs.</summary>
internal sealed record FlowSchedule(string Flow, TimeSpan Interval);

/// <summary>What a run is handed: the flow, and the state (hence the plan) captured when it started.</summary>
/// <param name="Flow">The configured flow to run.</param>
/// <param name="AtStart">The snapshot taken at the start; <c>AtStart.Plan.Model</c> is the plan this run must execute even if a reload replaces it meanwhile.</param>
internal sealed record FlowRunContext(string Flow, ServiceSnapshot AtStart)
{
    /// <summary>The plan active when the run started (runs only start once a plan exists).</summary>
    public PlanSnapshot Plan => AtStart.Plan!;
}

/// <summary>
/// Runs each flow on its interval. A run never overlaps the previous run of the same flow: a tick that
/// finds it still going, or no valid plan yet, is skipped, logged and counted. Stopping ends the schedule, signals the runs in
/// flight (their token) to drain and checkpoint, and waits for them.
/// </summary>
internal sealed class FlowScheduler : IAsyncDisposable
{
    private readonly Func<FlowRunContext, CancellationToken, Task<FlowRunResult>> _run;
    private readonly ServiceState _state;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly bool _runOnStart;
    private readonly Dictionary<string, FlowSlot> _flows;
    private readonly CancellationTokenSource _drain = new();
    private readonly object _gate = new();
    private readonly HashSet<Task> _inFlight = [];
    private bool _started;
    private bool _stopping;
    private bool _disposed;

    /// <summary>Schedules <paramref name="flows"/>; each run calls <paramref name="run"/> with the context captured at its start.</summary>
    public FlowScheduler(
        IReadOnlyList<FlowSchedule> flows,
        Func<FlowRunContext, CancellationToken, Task<FlowRunResult>> run,
        ServiceState state,
        TimeProvider time,
        ILoggerFactory log,
        bool runOnStart = true)
    {
        ArgumentNullException.ThrowIfNull(flows);
        _run = run ?? throw new ArgumentNullException(nameof(run));
        _state = state ?? throw new ArgumentNullException(nameof(state));
        _time = time ?? throw new ArgumentNullException(nameof(time));
        _log = (log ?? throw new ArgumentNullException(nameof(log))).CreateLogger<FlowScheduler>();
        _runOnStart = runOnStart;
        _flows = new Dictionary<string, FlowSlot>(StringComparer.Ordinal);
        foreach (var f in flows)
        {
            if (f.Interval <= TimeSpan.Zero)
            {
                throw new ArgumentException($"Flow '{f.Flow}': the interval must be longer than zero.", nameof(flows));
            }

            if (!_flows.TryAdd(f.Flow, new FlowSlot(f)))
            {
                throw new ArgumentException($"Flow '{f.Flow}' is scheduled twice.", nameof(flows));
            }
        }
    }

    /// <summary>Schedules <paramref name="flows"/>; each run calls <paramref name="run"/> with the flow name (the delegate reads the plan once, at its start).</summary>
    public FlowScheduler(
        IReadOnlyList<FlowSchedule> flows,
        Func<string, CancellationToken, Task<FlowRunResult>> run,
        ServiceState state,
        TimeProvider time,
        ILoggerFactory log,
        bool runOnStart = true)
        : this(flows, (ctx, ct) => run(ctx.Flow, ct), state, time, log, runOnStart)
    {
        ArgumentNullException.ThrowIfNull(run);
    }

    /// <summary>The number of runs in flight right now.</summary>
    public int RunningCount
    {
        get
        {
            lock (_gate)
            {
                return _inFlight.Count;
            }
        }
    }

    /// <summary>Starts the timers (and, with runOnStart, a first run of every flow now).</summary>
    public void Start()
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_stopping, this);
            if (_started)
            {
                throw new InvalidOperationException("The scheduler is already started.");
            }

            _started = true;
            foreach (var slot in _flows.Values)
            {
                _log.LogInformation("Scheduling flow {Flow} every {Interval}", slot.Schedule.Flow, Interval.Format(slot.Schedule.Interval));
                slot.Timer = _time.CreateTimer(static s => ((Tick)s!).Fire(), new Tick(this, slot), slot.Schedule.Interval, slot.Schedule.Interval);
            }
        }

        if (_runOnStart)
        {
            foreach (var slot in _flows.Values)
            {
                OnTick(slot);
            }
        }
    }

    /// <summary>Starts, runs until <paramref name="stoppingToken"/> is cancelled (SIGTERM / Ctrl-C), then drains.</summary>
    public async Task RunAsync(CancellationToken stoppingToken)
    {
        Start();
        try
        {
            await Task.Delay(Timeout.InfiniteTimeSpan, _time, stoppingToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }

        await StopAsync(CancellationToken.None).ConfigureAwait(false);
    }

    /// <summary>
    /// Stops scheduling, cancels the token handed to runs in flight (meaning: finish the batch in hand,
    /// save the checkpoint, return) and waits for them. <paramref name="cancellationToken"/> only
    /// abandons the wait.
    /// </summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        Task[] pending;
        lock (_gate)
        {
            if (!_stopping)
            {
                _stopping = true;
                foreach (var slot in _flows.Values)
                {
                    slot.Timer?.Dispose();
                }
            }

            pending = [.. _inFlight];
        }

        if (pending.Length > 0)
        {
            _log.LogInformation("Stopping: draining {Count} run(s) in flight", pending.Length);
        }

        await _drain.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(pending).WaitAsync(cancellationToken).ConfigureAwait(false);
        _log.LogInformation("Scheduler stopped");
    }

    /// <summary>Stops and drains (see <see cref="StopAsync"/>).</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        await StopAsync(CancellationToken.None).ConfigureAwait(false);
        _disposed = true;
        _drain.Dispose();
    }

    private void OnTick(FlowSlot slot)
    {
        string? skipped = null;
        lock (_gate)
        {
            if (_stopping)
            {
                return;
            }

            var atStart = _state.Snapshot;
            if (slot.Running)
            {
                skipped = $"the previous run (started {slot.RunStarted:u}) is still going";
            }
            else if (atStart.Plan is null)
            {
                skipped = "no valid plan yet (see the hook diagnostics)";
            }
            else
            {
                slot.Running = true;
                slot.RunStarted = _time.GetUtcNow();

                // Captured under the lock at the instant the run starts: a reload after this point only
                // affects the next run.
                var context = new FlowRunContext(slot.Schedule.Flow, atStart);
                var task = Task.Run(() => RunOnceAsync(slot, context));
                _inFlight.Add(task);
                _ = task.ContinueWith(
                    t =>
                    {
                        lock (_gate)
                        {
                            _inFlight.Remove(t);
                        }
                    },
                    CancellationToken.None,
                    TaskContinuationOptions.ExecuteSynchronously,
                    TaskScheduler.Default);
            }
        }

        // Outside the lock: the state raises Changed, whose handlers must not run under ours.
        if (skipped is not null)
        {
            _log.LogWarning("Flow {Flow}: tick skipped, {Reason:l}", slot.Schedule.Flow, skipped);
            _state.RecordSkippedTick(slot.Schedule.Flow);
        }
    }

    private async Task RunOnceAsync(FlowSlot slot, FlowRunContext context)
    {
        var flow = context.Flow;
        var started = slot.RunStarted;
        var planVersion = context.Plan!.Version;
        _log.LogInformation("Flow {Flow}: run started on plan version {PlanVersion}", flow, planVersion);
        FlowRunResult result;
        try
        {
            result = await _run(context, _drain.Token).ConfigureAwait(false)
                ?? FlowRunResult.Failed("the run delegate returned no result");
        }
        catch (OperationCanceledException) when (_drain.IsCancellationRequested)
        {
            result = new FlowRunResult(RunOutcome.Cancelled, 0, 0, 0, 0, "stopped while the service was shutting down");
        }
#pragma warning disable CA1031 // A failing run must not take the service down; it is recorded and reported.
        catch (Exception e)
#pragma warning restore CA1031
        {
            result = FlowRunResult.Failed($"{e.GetType().Name}: {e.Message}");
        }

        var finished = _time.GetUtcNow();

        // Free the slot before publishing the record, so whoever reacts to the record can already
        // start the next run.
        lock (_gate)
        {
            slot.Running = false;
        }

        // A run that re-planned first ran the new plan: record that version, not the one it was scheduled on.
        var record = _state.RecordRun(flow, started, finished, result, result.PlanVersion ?? planVersion);
        if (record.Outcome == RunOutcome.Failed)
        {
            _log.LogError("Flow {Flow}: run failed after {Duration}: {Error}", flow, finished - started, record.Error);
        }
        else
        {
            _log.LogInformation(
                "Flow {Flow}: run {Outcome} in {Duration}: {Rows} rows, {Docs} docs, {DeadLetters} dead letters, {Retries} retries",
                flow, record.Outcome, finished - started, record.Rows, record.DocsIndexed, record.DeadLetters, record.Retries);
        }
    }

    private sealed class FlowSlot(FlowSchedule schedule)
    {
        public FlowSchedule Schedule { get; } = schedule;

        public ITimer? Timer { get; set; }

        public bool Running { get; set; }

        public DateTimeOffset RunStarted { get; set; }
    }

    private sealed class Tick(FlowScheduler owner, FlowSlot slot)
    {
        public void Fire() => owner.OnTick(slot);
    }
}
