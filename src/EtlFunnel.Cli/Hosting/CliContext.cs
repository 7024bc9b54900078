using EtlFunnel.Runtime.Hooks;
using Serilog;
using Spectre.Console;

namespace EtlFunnel.Cli.Hosting;

/// <summary>What one run of the command needs from the outside world; tests pass their own writers, environment and hooks.</summary>
internal sealed class CliContext
{
    public required TextWriter Out { get; init; }

    public required TextWriter Err { get; init; }

    /// <summary>Spectre output on <see cref="Out"/> (tables, summaries).</summary>
    public required IAnsiConsole Console { get; init; }

    public required ILogger Log { get; init; }

    /// <summary>The same log as <see cref="Log"/> for the libraries, which log through Microsoft.Extensions.Logging (Serilog is the provider).</summary>
    public required Microsoft.Extensions.Logging.ILoggerFactory LoggerFactory { get; init; }

    public required HookLoader LoadHooks { get; init; }

    public required Func<string, string?> Environment { get; init; }

    /// <summary>Isolation and environment for the next hook load (set from the config before <see cref="LoadHooks"/>).</summary>
    public HookSettings HookSettings { get; set; } = HookSettings.Default;

    /// <summary>An interactive console for live progress, or null when stdout is redirected (then progress goes to the log).</summary>
    public IAnsiConsole? LiveConsole { get; init; }

    /// <summary>
    /// The log's sink when the log goes to the same terminal as <see cref="LiveConsole"/> (stderr not redirected), so a live
    /// display can route log lines above its bars; null otherwise.
    /// </summary>
    public TextWriterSink? TerminalLog { get; init; }
}
