using System.ComponentModel;
using System.Diagnostics;
using EtlFunnel.Cli.Hosting;
using EtlFunnel.Cli.Rendering;
using EtlFunnel.Orchestration.Config;
using EtlFunnel.Orchestration.Discovery;
using EtlFunnel.Orchestration.Machines;
using EtlFunnel.Orchestration.Planning;
using EtlFunnel.Orchestration.Plans;
using Spectre.Console;
using Spectre.Console.Cli;

namespace EtlFunnel.Cli.Commands;

/// <summary>How the plan is printed.</summary>
internal enum PlanFormat
{
    /// <summary>A readable table.</summary>
    Table,

    /// <summary>The plan JSON (docs/planning.md).</summary>
    Json,
}

internal sealed class PlanSettings : CommonSettings
{
    [CommandOption("-c|--config <FILE>")]
    [Description("The flows config (YAML), e.g. samples/quickstart/flows.yaml.")]
    public string? Config { get; init; }

    [CommandOption("--hooks <DIR>")]
    [Description("The hooks folder; overrides 'hooks:' in the config (default ./hooks).")]
    public string? Hooks { get; init; }

    [CommandOption("-m|--machine <PROFILE>")]
    [Description("A machine profile (YAML: region, cores, memory) that replaces this machine, e.g. samples/regions/eu.yaml.")]
    public string? Machine { get; init; }

    [CommandOption("-f|--format <FORMAT>")]
    [Description("table (default) or json.")]
    [DefaultValue(PlanFormat.Table)]
    public PlanFormat Format { get; init; } = PlanFormat.Table;

    public override ValidationResult Validate() =>
        string.IsNullOrWhiteSpace(Config) ? ValidationResult.Error("--config <FILE> is required, e.g. --config samples/quickstart/flows.yaml") : ValidationResult.Success();
}

/// <summary><c>etlfunnel plan</c>: config → discovery → hooks → validated plan, printed.</summary>
internal sealed class PlanCommand : AsyncCommand<PlanSettings>
{
    private const int MaxErrorsShown = 50;
    private readonly CliContext _context;

    public PlanCommand(CliContext context) => _context = context;

    public override async Task<int> ExecuteAsync(CommandContext context, PlanSettings settings, CancellationToken cancellationToken)
    {
        var log = _context.Log;
        EtlConfig config;
        Execution.Models.MachineInfo machine;
        try
        {
            config = await ConfigLoader.LoadAsync(settings.Config!, _context.Environment, cancellationToken).ConfigureAwait(false);
            machine = settings.Machine is null
                ? MachineProfiles.Detect(_context.Environment)
                : await MachineProfiles.LoadAsync(settings.Machine, cancellationToken).ConfigureAwait(false);
        }
        catch (ConfigException ex)
        {
            await _context.Err.WriteLineAsync(ex.Message).ConfigureAwait(false);
            return ExitCodes.Usage;
        }

        log.Information("Planning for {Machine}: {Cores} cores, {Memory:0.#} GiB{Profile}", machine.Region ?? machine.HostName, machine.LogicalCores,
            machine.TotalMemoryBytes / (double)(1L << 30), settings.Machine is null ? " (this machine)" : $" (profile {settings.Machine})");

        var (hooks, exitCode) = await HooksFolder.LoadAsync(_context, settings.Hooks ?? config.HooksDirectory, cancellationToken).ConfigureAwait(false);
        if (hooks is null)
        {
            return exitCode;
        }

        await using (hooks.ConfigureAwait(false))
        {
            ExecutionPlan plan;
            try
            {
                var started = Stopwatch.GetTimestamp();
                await using var workload = await WorkloadDiscovery.DiscoverAsync(config, cancellationToken).ConfigureAwait(false);
                var discovered = Stopwatch.GetElapsedTime(started);
                foreach (var warning in workload.Warnings)
                {
                    log.Warning("{Warning}", warning);
                }

                plan = await new Planner(hooks.Hooks).PlanAsync(workload, machine, config.Limits, cancellationToken).ConfigureAwait(false);
                log.Information("Discovered {Tables} tables in {Discovery:0} ms; planned {FlowReplicas} flow replicas and {PipelineReplicas} pipeline replicas in {Total:0} ms",
                    workload.Flows.Sum(f => f.Pipelines.Length), discovered.TotalMilliseconds, plan.Flows.Length, plan.Flows.Sum(f => f.Pipelines.Length),
                    Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            }
            catch (ConfigException ex)
            {
                await _context.Err.WriteLineAsync(ex.Message).ConfigureAwait(false);
                return ExitCodes.Usage;
            }
            catch (DiscoveryException ex)
            {
                await _context.Err.WriteLineAsync($"error: {ex.Message}").ConfigureAwait(false);
                return ExitCodes.Failure;
            }
            catch (PlanValidationException ex)
            {
                foreach (var error in ex.Errors.Take(MaxErrorsShown))
                {
                    await _context.Err.WriteLineAsync(error.ToString()).ConfigureAwait(false);
                }

                if (ex.Errors.Length > MaxErrorsShown)
                {
                    await _context.Err.WriteLineAsync($"... and {ex.Errors.Length - MaxErrorsShown} more errors").ConfigureAwait(false);
                }

                await _context.Err.WriteLineAsync($"The plan was refused ({ex.Errors.Length} error{(ex.Errors.Length == 1 ? "" : "s")}); nothing runs until the hooks return a valid plan.").ConfigureAwait(false);
                return ExitCodes.Failure;
            }

            if (settings.Format == PlanFormat.Json)
            {
                await _context.Out.WriteLineAsync(PlanJson.Serialize(plan)).ConfigureAwait(false);
            }
            else
            {
                PlanTable.Write(_context.Console, plan);
            }

            await _context.Out.FlushAsync(cancellationToken).ConfigureAwait(false);
            return ExitCodes.Ok;
        }
    }
}
