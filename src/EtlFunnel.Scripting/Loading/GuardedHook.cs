using System.Diagnostics;
using System.Reflection;
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
    private readonly Func<Assembly, bool> isHookCode;
    private readonly TimeSpan budget;
    private readonly TimeProvider time;

    public GuardedHook(
        string name,
        HookLevel level,
        HookFileVersion version,
        Func<OrchestratorProps, CancellationToken, Task<IEnumerable<OrchestratorTune>?>> call,
        Func<Assembly, bool> isHookCode,
        TimeSpan budget,
        TimeProvider time)
    {
        Name = name;
        Level = level;
        this.version = version;
        this.call = call;
        this.isHookCode = isHookCode;
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
        var guardedProps = new OrchestratorProps { Entity = props.Entity, Machine = props.Machine, Parent = props.Parent, CancellationToken = token };

        version.Enter();
        Task<List<OrchestratorTune>?> work;
        try
        {
            work = Task.Run(
                async () =>
                {
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
        catch (OperationCanceledException) when (budgetSource.IsCancellationRequested)
        {
            try
            {
                await work.WaitAsync(StopGrace, time, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception)
            {
                // Expected: the budget check threw where the hook was, which is what we report.
            }

            var (file, line) = work.IsFaulted ? Locate(work.Exception!.InnerException!) : (SourcePath, null);
            var where = line is null ? "" : $" It was stopped at {file}({line}).";
            var stopped = work.IsCompleted ? "" : " It did not stop (it is not interruptible, e.g. a plugin or a long BCL call) and was abandoned.";
            throw new HookInvocationException(Name, file, line,
                $"Hook '{Name}' ran past its time budget of {budget.TotalSeconds:0.###} s.{where}{stopped} Make it faster or raise HookHostOptions.TimeBudget.");
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

    /// <summary>The innermost frame of the hook's own code that has source info (from its PDB).</summary>
    private (string? File, int? Line) Locate(Exception exception)
    {
        foreach (var frame in new StackTrace(exception, fNeedFileInfo: true).GetFrames())
        {
            var method = frame.GetMethod();
            if (method?.DeclaringType is not { } type || !isHookCode(type.Assembly)
                || (type.FullName ?? "").Contains(Compiling.ScriptCompiler.RuntimeClassName, StringComparison.Ordinal))
            {
                continue;
            }

            if (frame.GetFileName() is { Length: > 0 } file && frame.GetFileLineNumber() > 0)
            {
                return (file, frame.GetFileLineNumber());
            }
        }

        return (SourcePath, null);
    }
}
