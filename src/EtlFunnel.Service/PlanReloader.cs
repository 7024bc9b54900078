using Serilog;

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

    /// <summary>Uses <paramref name="replan"/> (recompile/reload hooks, discover, plan, diff) for every reload.</summary>
    public PlanReloader(Func<CancellationToken, Task<ReloadResult>> replan, ServiceState state, ILogger log)
    {
        _replan = replan ?? throw new ArgumentNullException(nameof(replan));
        _state = state ?? throw new ArgumentNullException(nameof(state));
        _log = (log ?? throw new ArgumentNullException(nameof(log))).ForContext<PlanReloader>();
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

            Apply(result);
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
            if (result.DiffLines.Count == 0)
            {
                _log.Information("Hooks loaded: plan version {Version}, no change", plan.Version);
            }
            else
            {
                _log.Information("Hooks loaded: plan version {Version}, {Count} change(s)", plan.Version, result.DiffLines.Count);
                foreach (var line in result.DiffLines)
                {
                    _log.Information("Plan diff: {Line:l}", line);
                }
            }

            return;
        }

        _state.SetHooksBroken(result.Diagnostics);
        var active = _state.Snapshot.Plan;
        _log.Error(
            "Hook reload failed with {Count} diagnostic(s); {Keeping:l}",
            result.Diagnostics.Count,
            active is null ? "no plan is active yet, flows wait for a valid one" : $"still running the last good plan (version {active.Version})");
        foreach (var d in result.Diagnostics)
        {
            _log.Error("{Diagnostic:l}", d);
        }
    }
}
