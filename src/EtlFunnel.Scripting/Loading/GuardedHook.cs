using EtlFunnel.Execution.Models;

namespace EtlFunnel.Scripting.Loading;

/// <summary>
/// Invokes a hook under the host's guard: on a thread-pool thread, with the time budget as the hook's cancellation
/// token, results materialised inside the budget, and every failure turned into a <see cref="HookInvocationException"/>
/// naming the hook's file and line.
/// </summary>
internal sealed class GuardedHook : IOrchestrationHook
{
    // How long to wait, after the budget ran out, for the hook to reach its next budget check and say where it was.
    private static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(2);

    private readonly HookFileVersion version;
    private readonly Func<OrchestratorProps, CancellationToken, Task<IEnumerable<OrchestratorTune>?>> call;
    private readonly Action<CancellationToken>? begin;
    private readonly Func<Exception, (string? File, int? Line)> locate;
    private readonly TimeSpan budget;
    private readonly TimeProvider time;

    public GuardedHook(
        string name,
        HookLevel level,
        HookFileVersion version,
        Func<OrchestratorProps, CancellationToken, Task<IEnumerable<OrchestratorTune>?>> call,
        Func<Exception, (string? File, int? Line)> locate,
        TimeSpan budget,
        TimeProvider time,
        Action<CancellationToken>? begin = null)
    {
        this.begin = begin;
        Name = name;
        Level = level;
        this.version = version;
        this.call = call;
        this.locate = locate;
        this.budget = budget;
        this.time = time;
    }

    public string Name { get; }

    public string SourcePath => version.SourcePath;

    public HookLevel Level { get; }

    internal HookFileVersion Version => version;

    public async Task<IReadOnlyList<OrchestratorTune>> InvokeAsync(OrchestratorProps props, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(props);
        cancellationToken.ThrowIfCancellationRequested();

        using var budgetSource = new CancellationTokenSource(budget, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, budgetSource.Token);
        var token = linked.Token;
        var guardedProps = new OrchestratorProps { Entity = props.Entity, Machine = props.Machine, ClusterMachines = props.ClusterMachines, Parent = props.Parent, CancellationToken = token, Log = props.Log };

        version.Enter();
        Task<List<OrchestratorTune>?> work;
        try
        {
            work = Task.Run(
                async () =>
                {
                    // Set here, not inside `call`: an async-local set in an awaited method is undone when it returns,
                    // and enumerating a lazy result below must still see the budget.
                    begin?.Invoke(token);
                    var result = await call(guardedProps, token).ConfigureAwait(false);
                    return result?.ToList(); // lazy results run hook code: enumerate inside the budget
                },
                CancellationToken.None);
        }
        catch
        {
            version.Exit();
            throw;
        }

        _ = work.ContinueWith(static (_, state) => ((HookFileVersion)state!).Exit(), version, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

        List<OrchestratorTune>? tunes;
        try
        {
            tunes = await work.WaitAsync(token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception ex) when (budgetSource.IsCancellationRequested)
        {
            // Script budget checks throw TimeoutException at the line they stopped; uninterruptible code may not stop.
            try
            {
                await work.WaitAsync(StopGrace, time, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception)
            {
                // Expected: the budget check threw where the hook was, which is what we report.
            }

            var stoppedBy = work.IsFaulted ? work.Exception!.InnerException! : ex;
            var (file, line) = Locate(stoppedBy);
            var where = line is null ? "" : $" It was stopped at {file}({line}).";
            var abandoned = work.IsCompleted ? "" : " It did not stop (it is not interruptible, e.g. a plugin or a long BCL call) and was abandoned.";
            throw new HookInvocationException(Name, file, line,
                $"Hook '{Name}' ran past its time budget of {budget.TotalSeconds:0.###} s.{where}{abandoned} Make it faster or raise HookHostOptions.TimeBudget.");
        }
        catch (Exception ex)
        {
            var (file, line) = Locate(ex);
            var at = line is null ? "" : $" at {file}({line})";
            throw new HookInvocationException(Name, file, line, $"Hook '{Name}' threw {ex.GetType().Name}{at}: {ex.Message}", ex);
        }

        if (tunes is null)
        {
            throw new HookInvocationException(Name, SourcePath, null, $"Hook '{Name}' returned null; return an empty list for 'no replicas'.");
        }

        var nullAt = tunes.IndexOf(null!);
        if (nullAt >= 0)
        {
            throw new HookInvocationException(Name, SourcePath, null, $"Hook '{Name}' returned a null OrchestratorTune at index {nullAt}.");
        }

        return tunes;
    }

    private (string? File, int? Line) Locate(Exception exception) => locate(exception);
}
