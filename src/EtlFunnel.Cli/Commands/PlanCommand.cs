using System.ComponentModel;
using EtlFunnel.Cli.Hosting;
using EtlFunnel.Cli.Rendering;
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

internal sealed class PlanSettings : PlanInputSettings
{
    [CommandOption("-f|--format <FORMAT>")]
    [Description("table (default) or json.")]
    [DefaultValue(PlanFormat.Table)]
    public PlanFormat Format { get; init; } = PlanFormat.Table;
}

/// <summary><c>etlfunnel plan</c>: config → discovery → hooks → validated plan, printed.</summary>
internal sealed class PlanCommand : AsyncCommand<PlanSettings>
{
    private readonly CliContext _context;

    public PlanCommand(CliContext context) => _context = context;

    public override async Task<int> ExecuteAsync(CommandContext context, PlanSettings settings, CancellationToken cancellationToken)
    {
        var (work, exitCode) = await Planning.PlanFromCommandLineAsync(_context, settings.Config!, settings.Hooks, settings.Machine, cancellationToken).ConfigureAwait(false);
        if (work is null)
        {
            return exitCode;
        }

        if (settings.Format == PlanFormat.Json)
        {
            await _context.Out.WriteLineAsync(PlanJson.Serialize(work.Plan)).ConfigureAwait(false);
        }
        else
        {
            PlanTable.Write(_context.Console, work.Plan);
        }

        await _context.Out.FlushAsync(cancellationToken).ConfigureAwait(false);
        return ExitCodes.Ok;
    }
}
