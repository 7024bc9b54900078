using System.Globalization;
using EtlFunnel.Cli.Hosting;
using EtlFunnel.Cli.Rendering;
using EtlFunnel.Execution.Models;
using EtlFunnel.Orchestration.Config;
using EtlFunnel.Orchestration.Discovery;
using EtlFunnel.Orchestration.Machines;
using EtlFunnel.Orchestration.Planning;
using EtlFunnel.Runtime.Hooks;
using EtlFunnel.Scripting;
using Spectre.Console;

namespace EtlFunnel.Cli.Commands;

/// <summary>
/// The orchestration mode of <c>etlfunnel hooks test</c>: plans with the folder's flow and pipeline hooks on the given
/// machine and stats (or live discovery), prints the plan as <c>plan</c> does, then runs the folder's <c>*.test.csx</c>
/// cases in the hook worker and reports each one.
/// </summary>
internal sealed class HookTestRun
{
    private readonly CliContext _context;

    public HookTestRun(CliContext context) => _context = context;

    public async Task<int> ExecuteAsync(HooksTestSettings settings, CancellationToken cancellationToken)
    {
        PlanInputs? inputs = null;
        IReadOnlyList<FlowEntity>? statsFlows = null;
        MachineInfo machine;
        try
        {
            if (settings.Config is not null)
            {
                (inputs, var inputsExit) = await Planning.LoadInputsAsync(_context, settings.Config, settings.Machine, cancellationToken).ConfigureAwait(false);
                if (inputs is null)
                {
                    return inputsExit;
                }

                machine = inputs.Machine;
            }
            else
            {
                machine = settings.Machine is null
                    ? MachineProfiles.Detect(_context.Environment)
                    : await MachineProfiles.LoadAsync(settings.Machine, cancellationToken).ConfigureAwait(false);
                if (settings.Stats is not null)
                {
                    statsFlows = await StatsProfile.LoadAsync(settings.Stats, cancellationToken).ConfigureAwait(false);
                }
            }
        }
        catch (ConfigException ex)
        {
            await _context.Err.WriteLineAsync(ex.Message).ConfigureAwait(false);
            return ExitCodes.Usage;
        }

        var directory = settings.Hooks ?? inputs?.Config.HooksDirectory ?? HooksFolder.DefaultDirectory;
        var hookSettings = (inputs is null ? HookSettings.Default : new HookSettings(inputs.Config.HooksIsolation, inputs.Config.HooksEnvironment))
            with { WaitForDebugger = settings.DebuggerWait };
        var (hooks, hooksExit) = await Planning.LoadHooksAsync(_context, directory, cancellationToken, hookSettings).ConfigureAwait(false);
        if (hooks is null)
        {
            return hooksExit;
        }

        await using (hooks.ConfigureAwait(false))
        {
            var planned = await PlanAsync(inputs, statsFlows, machine, hooks, cancellationToken).ConfigureAwait(false);
            var tested = await RunCasesAsync(hooks, directory, cancellationToken).ConfigureAwait(false);
            return planned == ExitCodes.Usage ? planned : planned != ExitCodes.Ok || tested != ExitCodes.Ok ? ExitCodes.Failure : ExitCodes.Ok;
        }
    }

    /// <summary>Plans and prints the plan; a hook that throws (or returns an invalid plan) is an error naming its file and line.</summary>
    private async Task<int> PlanAsync(PlanInputs? inputs, IReadOnlyList<FlowEntity>? statsFlows, MachineInfo machine, ILoadedHooks hooks, CancellationToken cancellationToken)
    {
        if (inputs is null && statsFlows is null)
        {
            _context.Console.WriteLine("No --stats or --config: nothing to plan; running the test cases only.");
            return ExitCodes.Ok;
        }

        try
        {
            var plan = inputs is not null
                ? await Planning.PlanAsync(_context, inputs, hooks.Hooks, cancellationToken).ConfigureAwait(false)
                : await new Planner(hooks.Hooks) { HookLog = new HookLogAdapter(Planning.HookLogTo(_context.Log)) }.PlanAsync(statsFlows!, machine, null, cancellationToken).ConfigureAwait(false);
            PlanTable.Write(_context.Console, plan);
            return ExitCodes.Ok;
        }
        catch (Exception ex) when (Planning.Describe(ex) is { } lines)
        {
            foreach (var line in lines)
            {
                await _context.Err.WriteLineAsync(line).ConfigureAwait(false);
            }

            await _context.Err.WriteLineAsync(ex is PlanValidationException
                ? $"The hooks did not plan {(statsFlows is null ? "the config's tables" : "the stats")} on this machine ({lines.Count} error{(lines.Count == 1 ? "" : "s")}); fix the hook at the line above."
                : "Planning failed (see above).").ConfigureAwait(false);
            return ex is ConfigException ? ExitCodes.Usage : ExitCodes.Failure;
        }
    }

    private async Task<int> RunCasesAsync(ILoadedHooks hooks, string directory, CancellationToken cancellationToken)
    {
        if (hooks.Host is not { } host)
        {
            return ExitCodes.Ok; // no hooks folder: no cases either
        }

        IReadOnlyList<HookTestResult> results;
        try
        {
            results = await host.RunTestsAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (HookInvocationException ex)
        {
            await _context.Err.WriteLineAsync($"error: {ex.Message}").ConfigureAwait(false);
            return ExitCodes.Failure;
        }

        if (results.Count == 0)
        {
            _context.Console.WriteLine($"No test cases (*.test.csx) in {directory}.");
            return ExitCodes.Ok;
        }

        foreach (var result in results)
        {
            var took = string.Create(CultureInfo.InvariantCulture, $"{result.Duration.TotalMilliseconds:0} ms");
            if (result.Passed)
            {
                _context.Console.WriteLine($"PASS {result.TestFile} {result.Case} ({took})");
            }
            else
            {
                _context.Console.WriteLine($"FAIL {result.TestFile} {result.Case} ({took})");
                await _context.Err.WriteLineAsync(result.ToString()).ConfigureAwait(false);
            }
        }

        var failed = results.Count(r => !r.Passed);
        _context.Console.WriteLine($"Test cases: {results.Count - failed} passed, {failed} failed ({results.Select(r => r.TestFile).Distinct().Count()} file(s) in {directory}).");
        return failed == 0 ? ExitCodes.Ok : ExitCodes.Failure;
    }
}
