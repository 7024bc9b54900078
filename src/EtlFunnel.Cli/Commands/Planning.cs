using System.Diagnostics;
using EtlFunnel.Cli.Hosting;
using EtlFunnel.Execution.Models;
using EtlFunnel.Orchestration.Config;
using EtlFunnel.Orchestration.Discovery;
using EtlFunnel.Orchestration.Machines;
using EtlFunnel.Orchestration.Planning;
using EtlFunnel.Orchestration.Plans;
using EtlFunnel.Runtime.Hooks;
using Microsoft.Extensions.Logging;
using EtlFunnel.Scripting;

namespace EtlFunnel.Cli.Commands;

/// <summary>A config and the machine it is planned for.</summary>
internal sealed record PlanInputs(EtlConfig Config, MachineInfo Machine)
{
    /// <summary>The cluster's members the hooks see (<c>run --cluster</c>), empty on one machine.</summary>
    public IReadOnlyList<MachineInfo> ClusterMachines { get; init; } = [];
}

/// <summary>The plan with the config it came from (the run joins the plan to the config for connection strings).</summary>
/// <param name="Config">The loaded flows.yaml.</param>
/// <param name="Machine">The machine the plan is for.</param>
/// <param name="Plan">The validated plan.</param>
/// <param name="Hooks">The hooks the plan was made with, still loaded when the caller asked to keep them (<c>run</c> with
/// transformers: they run in the same worker during the sync); the caller disposes them then. Null otherwise.</param>
internal sealed record PlannedWork(EtlConfig Config, MachineInfo Machine, ExecutionPlan Plan, ILoadedHooks? Hooks = null);

/// <summary>
/// The one code path from config + hooks + machine to an <see cref="ExecutionPlan"/>, shared by <c>plan</c>, <c>run</c>
/// and <c>watch</c>: errors are printed the same way everywhere.
/// </summary>
internal static class Planning
{
    private const int MaxErrorsShown = 50;

    /// <summary>
    /// Loads the config (unless the caller already did: <paramref name="loadedConfig"/>) and the machine (detected or from a
    /// profile); prints the error and returns the exit code on failure.
    /// </summary>
    public static async Task<(PlanInputs? Inputs, int ExitCode)> LoadInputsAsync(CliContext context, string configPath, string? machinePath, CancellationToken cancellationToken, EtlConfig? loadedConfig = null)
    {
        try
        {
            var config = loadedConfig ?? await ConfigLoader.LoadAsync(configPath, context.Environment, cancellationToken).ConfigureAwait(false);
            config = ApplyDestinationOverride(context, config);
            var machine = machinePath is null
                ? MachineProfiles.Detect(context.Environment)
                : await MachineProfiles.LoadAsync(machinePath, cancellationToken).ConfigureAwait(false);
            context.Log.Information("Planning for {Machine}: {Cores} cores, {Memory:0.#} GiB{Profile}", machine.Region ?? machine.HostName, machine.LogicalCores,
                machine.TotalMemoryBytes / (double)(1L << 30), machinePath is null ? " (this machine)" : $" (profile {machinePath})");
            StartupTrace.Mark("config and machine loaded");
            return (new PlanInputs(config, machine), ExitCodes.Ok);
        }
        catch (ConfigException ex)
        {
            await context.Err.WriteLineAsync(ex.Message).ConfigureAwait(false);
            return (null, ExitCodes.Usage);
        }
    }

    /// <summary>Applies <c>ETLFUNNEL_ELASTICSEARCH_URL</c> before discovery, so hooks and the plan see the destination the run writes to; logs that it overrides.</summary>
    private static EtlConfig ApplyDestinationOverride(CliContext context, EtlConfig config)
    {
        var (overridden, notices, warnings) = DestinationOverride.Apply(config, context.Environment);
        foreach (var warning in warnings)
        {
            context.Log.Warning("{Warning}", warning);
        }

        foreach (var notice in notices)
        {
            context.Log.Information("{Notice}", notice);
        }

        return overridden;
    }

    /// <summary>
    /// Discovers the flows' tables and runs the hooks; throws <see cref="ConfigException"/>, <see cref="DiscoveryException"/>
    /// or <see cref="PlanValidationException"/> (see <see cref="PrintFailureAsync"/>).
    /// </summary>
    public static Task<ExecutionPlan> PlanAsync(CliContext context, PlanInputs inputs, IOrchestrationHooks hooks, CancellationToken cancellationToken)
        => PlanDiscoveredAsync(context, inputs, hooks, StartDiscovery(inputs, cancellationToken), cancellationToken);

    /// <summary>Discovery on a pool thread, so that it (mostly JIT of Npgsql on a cold process) overlaps loading the hooks.</summary>
    private static Task<(Workload Workload, TimeSpan Took)> StartDiscovery(PlanInputs inputs, CancellationToken cancellationToken)
        => Task.Run(
            async () =>
            {
                var started = Stopwatch.GetTimestamp();
                var workload = await WorkloadDiscovery.DiscoverAsync(inputs.Config, cancellationToken).ConfigureAwait(false);
                return (workload, Stopwatch.GetElapsedTime(started));
            },
            cancellationToken);

    private static async Task<ExecutionPlan> PlanDiscoveredAsync(CliContext context, PlanInputs inputs, IOrchestrationHooks hooks, Task<(Workload Workload, TimeSpan Took)> discovery, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var (found, discovered) = await discovery.ConfigureAwait(false);
        await using var workload = found;
        StartupTrace.Mark("tables discovered");
        foreach (var warning in workload.Warnings)
        {
            context.Log.Warning("{Warning}", warning);
        }

        var plan = await new Planner(hooks) { ClusterMachines = inputs.ClusterMachines, HookLog = new HookLogAdapter(HookLogTo(context.Log)) }.PlanAsync(workload, inputs.Machine, inputs.Config.Limits, cancellationToken).ConfigureAwait(false);
        context.Log.Information("Discovered {Tables} tables in {Discovery:0} ms (while the hooks loaded); planned {FlowReplicas} flow replicas and {PipelineReplicas} pipeline replicas in {Total:0} ms",
            workload.Flows.Sum(f => f.Pipelines.Length), discovered.TotalMilliseconds, plan.Flows.Length, plan.Flows.Sum(f => f.Pipelines.Length),
            Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        return plan;
    }

    /// <summary>The planning errors <see cref="PlanAsync"/> throws, as lines (file(line,col): ... where known).</summary>
    public static IReadOnlyList<string>? Describe(Exception exception) => exception switch
    {
        ConfigException ex => [ex.Message],
        DiscoveryException ex => [$"error: {ex.Message}"],
        PlanValidationException ex => [.. ex.Errors.Select(e => e.ToString())],
        _ => null,
    };

    /// <summary>The whole path of <c>plan</c> and <c>run</c>: config, machine, hooks folder, discovery, hooks, validated plan. Errors are printed; the plan is null then.</summary>
    public static async Task<(PlannedWork? Work, int ExitCode)> PlanFromCommandLineAsync(
        CliContext context, string configPath, string? hooksDirectory, string? machinePath, CancellationToken cancellationToken, Task<IReadOnlyList<MachineInfo>?>? clusterMachines = null,
        bool keepHooksWithTransformers = false, EtlConfig? loadedConfig = null)
    {
        var (inputs, exitCode) = await LoadInputsAsync(context, configPath, machinePath, cancellationToken, loadedConfig).ConfigureAwait(false);
        if (inputs is null)
        {
            return (null, exitCode);
        }

        // Hook errors are still reported first: discovery's outcome is only looked at once the hooks loaded.
        var discovery = StartDiscovery(inputs, cancellationToken);
        var (hooks, hooksExit) = await LoadHooksAsync(context, hooksDirectory ?? inputs.Config.HooksDirectory, cancellationToken,
            new HookSettings(inputs.Config.HooksIsolation, inputs.Config.HooksEnvironment)).ConfigureAwait(false);
        if (hooks is null)
        {
            await AbandonAsync(discovery).ConfigureAwait(false);
            return (null, hooksExit);
        }

        StartupTrace.Mark("hooks loaded");

        var keep = false;
        try
        {
            // The cluster's members (run --cluster) were looked up while the tables were discovered and the hooks loaded; the
            // hooks need them from here on. Null: the lookup failed and said why.
            if (clusterMachines is not null)
            {
                if (await clusterMachines.ConfigureAwait(false) is not { } machines)
                {
                    await AbandonAsync(discovery).ConfigureAwait(false);
                    return (null, ExitCodes.Failure);
                }

                inputs = inputs with { ClusterMachines = machines };
            }

            var plan = await PlanDiscoveredAsync(context, inputs, hooks.Hooks, discovery, cancellationToken).ConfigureAwait(false);
            StartupTrace.Mark("planned");
            keep = keepHooksWithTransformers && (hooks.Transformers.Count > 0 || hooks.PipelineHooks.Count > 0);
            return (new PlannedWork(inputs.Config, inputs.Machine, plan, keep ? hooks : null), ExitCodes.Ok);
        }
        catch (Exception ex) when (ex is ConfigException or DiscoveryException or PlanValidationException)
        {
            return (null, await PrintFailureAsync(context, ex).ConfigureAwait(false));
        }
        finally
        {
            if (!keep)
            {
                await hooks.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>Loads the hooks folder (see <see cref="HooksFolder.LoadAsync"/>); the exit code says why there are no hooks.</summary>
    public static async Task<(ILoadedHooks? Hooks, int ExitCode)> LoadHooksAsync(CliContext context, string? explicitDirectory, CancellationToken cancellationToken, HookSettings? settings = null)
    {
        context.HookSettings = (settings ?? HookSettings.Default) with { Log = HookLogTo(context.Log) };
        if (context.HookSettings.WaitForDebugger is not null && context.HookSettings.Isolation == HookIsolation.None)
        {
            context.Log.Warning("--wait-for-debugger: hooks run in this process (isolation: none); attach to process {Pid}", Environment.ProcessId);
        }

        var (hooks, status) = await HooksFolder.LoadAsync(context.LoadHooks, context.Err, context.LoggerFactory.CreateLogger(typeof(HooksFolder)), explicitDirectory, cancellationToken).ConfigureAwait(false);
        return (hooks, status switch
        {
            HooksFolderStatus.Loaded => ExitCodes.Ok,
            HooksFolderStatus.Missing or HooksFolderStatus.NoIsolation => ExitCodes.Usage,
            _ => ExitCodes.Failure,
        });
    }

    /// <summary>
    /// The lines hooks log with <c>param.Log</c>, into the command's (or the service's) Serilog log: stderr, never stdout,
    /// as <c>file(line): message</c> with <c>HookFile</c> and <c>HookLine</c> as properties for the JSON format.
    /// </summary>
    public static Action<HookLogEntry> HookLogTo(Serilog.ILogger log) => entry =>
    {
        var level = entry.Level switch
        {
            "error" => Serilog.Events.LogEventLevel.Error,
            "warning" => Serilog.Events.LogEventLevel.Warning,
            _ => Serilog.Events.LogEventLevel.Information,
        };
        if (entry.File.Length == 0)
        {
            log.Write(level, "{HookMessage:l}", entry.Message); // the worker's own line (e.g. waiting for a debugger)
            return;
        }

        log.ForContext("HookFile", entry.File).ForContext("HookLine", entry.Line)
            .Write(level, "{HookLocation:l}: {HookMessage:l}", $"{entry.File}({entry.Line})", entry.Message);
    };

    /// <summary>Waits for a discovery nobody needs any more and releases its connections; its errors are moot.</summary>
    private static async Task AbandonAsync(Task<(Workload Workload, TimeSpan Took)> discovery)
    {
        try
        {
            await (await discovery.ConfigureAwait(false)).Workload.DisposeAsync().ConfigureAwait(false);
        }
#pragma warning disable CA1031 // The command already failed for another reason, which is the one to report.
        catch (Exception)
#pragma warning restore CA1031
        {
        }
    }

    private static async Task<int> PrintFailureAsync(CliContext context, Exception exception)
    {
        var lines = Describe(exception)!;
        foreach (var line in lines.Take(MaxErrorsShown))
        {
            await context.Err.WriteLineAsync(line).ConfigureAwait(false);
        }

        if (lines.Count > MaxErrorsShown)
        {
            await context.Err.WriteLineAsync($"... and {lines.Count - MaxErrorsShown} more errors").ConfigureAwait(false);
        }

        switch (exception)
        {
            case ConfigException:
                return ExitCodes.Usage;
            case PlanValidationException:
                await context.Err.WriteLineAsync($"The plan was refused ({lines.Count} error{(lines.Count == 1 ? "" : "s")}); nothing runs until the hooks return a valid plan.").ConfigureAwait(false);
                return ExitCodes.Failure;
            default:
                return ExitCodes.Failure;
        }
    }
}

/// <summary><c>param.Log</c> of hooks that run in this process (<c>isolation: none</c>): into the same log as the worker's lines.</summary>
internal sealed class HookLogAdapter(Action<HookLogEntry> log) : IHookLog
{
    public void Info(string message, string file = "", int line = 0) => log(new HookLogEntry(file, line, "info", message));

    public void Warning(string message, string file = "", int line = 0) => log(new HookLogEntry(file, line, "warning", message));

    public void Error(string message, string file = "", int line = 0) => log(new HookLogEntry(file, line, "error", message));
}
