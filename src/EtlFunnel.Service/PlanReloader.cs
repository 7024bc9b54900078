using Microsoft.Extensions.Logging;

namespace EtlFunnel.Service;

/// <summary>What one re-plan produced: a new plan, or the diagnostics that kept the last good one active.</summary>
internal sealed record ReloadResult(
    bool Succeeded,
    string? PlanJson,
    object? Model,
    IReadOnlyList<string> DiffLines,
    IReadOnlyList<string> Diagnostics)
{
    /// <summary>A new plan (<paramref name="planJson"/> as <c>plan --format json</c> prints it) and its diff against the previous one.</summary>
    public static ReloadResult Ok(string planJson, object? model, IReadOnlyList<string> diffLines) =>
        new(true, planJson, model, diffLines, []);

    /// <summary>A broken hook or an invalid plan, with <c>file(line,col): error EFxxxx: ...</c> diagnostics.</summary>
    public static ReloadResult Broken(IReadOnlyList<string> diagnostics) =>
        new(false, null, null, [], diagnostics);

    /// <summary>Discovery could not connect to a source: retried with backoff, reported as "source unreachable", never as broken hooks.</summary>
    public static ReloadResult SourceUnreachable(string reason) =>
        new(false, null, null, [], [reason]) { Unreachable = true };

    /// <summary>True for <see cref="SourceUnreachable"/>.</summary>
    public bool Unreachable { get; init; }
}

/// <summary>
/// Turns hook-change notifications into re-plans applied to the <see cref="ServiceState"/>. Re-plans
/// never run concurrently; notifications arriving during one are coalesced into a single follow-up,
/// so a burst of saves costs at most two re-plans and the last one sees the final files.
/// </summary>
internal sealed class PlanReloader
{
    private readonly Func<CancellationToken, Task<ReloadResult>> _replan;
    private readonly ServiceState _state;
    private readonly ILogger _log;
    private readonly SemaphoreSlim _one = new(1, 1);
    private readonly object _gate = new();
    private Task _loop = Task.CompletedTask;
    private bool _pending;
    private bool _looping;
    private int _unreachableStreak;
    private string? _lastBroken;
    private int _brokenRepeats;

    /// <summary>Uses <paramref name="replan"/> (recompile/reload hooks, discover, plan, diff) for every reload.</summary>
    public PlanReloader(Func<CancellationToken, Task<ReloadResult>> replan, ServiceState state, ILoggerFactory log)
    {
        _replan = replan ?? throw new ArgumentNullException(nameof(replan));
        _state = state ?? throw new ArgumentNullException(nameof(state));
        _log = (log ?? throw new ArgumentNullException(nameof(log))).CreateLogger<PlanReloader>();
    }

    /// <summary>Re-plans now (waiting for one in progress) and applies the result; used for the first plan at start-up.</summary>
    public async Task<ReloadResult> ReloadNowAsync(CancellationToken cancellationToken)
    {
        await _one.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ReloadResult result;
            try
            {
                result = await _replan(cancellationToken).ConfigureAwait(false)
                    ?? ReloadResult.Broken(["re-plan returned no result"]);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                throw;
            }
#pragma warning disable CA1031 // A crashing re-plan must leave the service on its last good plan, not stop it.
            catch (Exception e)
#pragma warning restore CA1031
            {
                result = ReloadResult.Broken([$"re-plan failed: {e.GetType().Name}: {e.Message}"]);
            }

            Apply(result, cancellationToken);
            return result;
        }
        finally
        {
            _one.Release();
        }
    }

    /// <summary>Asks for a re-plan soon (e.g. from the hook host's Reloaded event); never blocks, never throws.</summary>
    public void Trigger(CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            _pending = true;
            if (_looping)
            {
                return;
            }

            _looping = true;
            _loop = Task.Run(() => LoopAsync(cancellationToken), CancellationToken.None);
        }
    }

    /// <summary>Completes when no re-plan is running or pending.</summary>
    public Task WhenIdleAsync()
    {
        lock (_gate)
        {
            return _loop;
        }
    }

    private async Task LoopAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            lock (_gate)
            {
                if (!_pending || cancellationToken.IsCancellationRequested)
                {
                    _looping = false;
                    return;
                }

                _pending = false;
            }

            try
            {
                await ReloadNowAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
            }
        }
    }

    /// <summary>The wait before the next re-plan after <paramref name="failures"/> unreachable ones in a row: 1 s, 2 s, 4 s, ... up to 1 min.</summary>
    public static TimeSpan Backoff(int failures) => TimeSpan.FromSeconds(Math.Min(60, Math.Pow(2, Math.Clamp(failures - 1, 0, 6))));

    private void Apply(ReloadResult result, CancellationToken cancellationToken)
    {
        if (result.Unreachable)
        {
            var delay = Backoff(Interlocked.Increment(ref _unreachableStreak));
            var reason = result.Diagnostics.Count > 0 ? result.Diagnostics[0] : "no reason given";
            // The retry's timer exists before the state says "unreachable", so whoever reacts to that can move the clock.
            _ = RetryAfterAsync(delay, cancellationToken);
            _state.SetSourceUnreachable(reason);
            var active = _state.Snapshot.Plan;
            _log.LogWarning("Source unreachable: {Reason:l}; retrying in {Delay:l}{Keeping:l}", reason, Interval.Format(delay),
                active is null ? "" : $", still running the last plan (version {active.Version})");
            return;
        }

        Interlocked.Exchange(ref _unreachableStreak, 0);
        _state.SetSourceReachable();
        Apply(result);
    }

    private async Task RetryAfterAsync(TimeSpan delay, CancellationToken cancellationToken)
    {
        try
        {
            await Task.Delay(delay, _state.Time, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        Trigger(cancellationToken);
    }

    /// <summary>One line for a plan diff: <c>+2 replica(s), -1, ~3 changed in flow(s) shop, crm</c> (lines as <c>flow X: + ...</c>).</summary>
    public static string DiffSummary(IReadOnlyList<string> lines)
    {
        var (added, removed, changed) = (0, 0, 0);
        var flows = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var line in lines)
        {
            var colon = line.IndexOf(": ", StringComparison.Ordinal);
            var rest = colon < 0 ? line : line[(colon + 2)..];
            if (colon > 0)
            {
                flows.Add(line[..colon].Replace("flow ", "", StringComparison.Ordinal));
            }

            switch (rest.Length > 0 ? rest[0] : ' ')
            {
                case '+': added++; break;
                case '-': removed++; break;
                default: changed++; break;
            }
        }

        return $"+{added} added, -{removed} removed, ~{changed} changed in {(flows.Count == 0 ? "no flow" : "flow(s) " + string.Join(", ", flows))}";
    }

    private void Apply(ReloadResult result)
    {
        if (result.Succeeded)
        {
            PlanSnapshot plan;
            try
            {
                plan = _state.SetPlan(result.PlanJson ?? "", result.DiffLines, result.Model);
            }
            catch (ArgumentException e)
            {
                Apply(ReloadResult.Broken([$"the new plan could not be published: {e.Message}"]));
                return;
            }

            _state.SetHooksOk();
            _lastBroken = null;
            if (result.DiffLines.Count == 0)
            {
                _log.LogInformation("Hooks loaded: plan version {Version}, no change", plan.Version);
            }
            else
            {
                _log.LogInformation("Hooks loaded: plan version {Version}, {Count} change(s): {Summary:l}", plan.Version, result.DiffLines.Count, DiffSummary(result.DiffLines));
                foreach (var line in result.DiffLines)
                {
                    _log.LogInformation("Plan diff: {Line:l}", line);
                }
            }

            return;
        }

        _state.SetHooksBroken(result.Diagnostics);
        var active = _state.Snapshot.Plan;
        var keeping = active is null ? "no plan is active yet, flows wait for a valid one" : $"still running the last good plan (version {active.Version})";
        var key = string.Join('\n', result.Diagnostics);
        if (key == _lastBroken)
        {
            // Every run re-plans, so a hook left broken would repeat all its diagnostics on every tick: say it once, then one line.
            _brokenRepeats++;
            _log.LogWarning("Hooks still broken ({Count} diagnostic(s), unchanged; {Repeats} re-plan(s) since they were logged); {Keeping:l}",
                result.Diagnostics.Count, _brokenRepeats, keeping);
            return;
        }

        _lastBroken = key;
        _brokenRepeats = 0;
        _log.LogError("Hook reload failed with {Count} diagnostic(s); {Keeping:l}", result.Diagnostics.Count, keeping);
        foreach (var d in result.Diagnostics)
        {
            _log.LogError("{Diagnostic:l}", d);
        }
    }
}
