using System.ComponentModel;
using EtlFunnel.Cli.Hosting;
using EtlFunnel.Runtime.Hooks;
using Spectre.Console;
using Spectre.Console.Cli;

namespace EtlFunnel.Cli.Commands;

internal sealed class HooksCheckSettings : CommonSettings
{
    [CommandOption("--hooks <DIR>")]
    [Description("The hooks folder (default ./hooks).")]
    public string? Hooks { get; init; }
}

/// <summary><c>etlfunnel hooks check</c>: compile and policy-check every hook, print every diagnostic.</summary>
internal sealed class HooksCheckCommand : AsyncCommand<HooksCheckSettings>
{
    private readonly CliContext _context;

    public HooksCheckCommand(CliContext context) => _context = context;

    public override async Task<int> ExecuteAsync(CommandContext context, HooksCheckSettings settings, CancellationToken cancellationToken)
    {
        var directory = settings.Hooks ?? HooksFolder.DefaultDirectory;
        // Compile only: no hook is loaded or run. A plain worker suffices to contain the compiler where no sandbox exists.
        var (hooks, exitCode) = await Planning.LoadHooksAsync(_context, directory, cancellationToken, new HookSettings(Scripting.HookIsolation.Process, [], CompileOnly: true)).ConfigureAwait(false);
        if (hooks is null)
        {
            return exitCode;
        }

        await using (hooks.ConfigureAwait(false))
        {
            var table = new Table().AddColumns("level", "hook", "file");
            foreach (var hook in hooks.Hooks.FlowHooks.Concat(hooks.Hooks.PipelineHooks))
            {
                table.AddRow(hook.Level.ToString().ToLowerInvariant(), Markup.Escape(hook.Name), Markup.Escape(hook.SourcePath));
            }

            _context.Console.Write(table);
            if (settings.Verbose)
            {
                foreach (var layer in hooks.IsolationLayers)
                {
                    _context.Console.WriteLine($"isolation {layer}");
                }
            }

            _context.Console.WriteLine($"{hooks.Hooks.FlowHooks.Count} flow hook(s), {hooks.Hooks.PipelineHooks.Count} pipeline hook(s) in {directory}: OK");
            return ExitCodes.Ok;
        }
    }
}
