using EtlFunnel.Scripting;
using Serilog;
using Spectre.Console;

namespace EtlFunnel.Cli.Hosting;

/// <summary>A set of loaded hooks and what loading them reported.</summary>
internal interface ILoadedHooks : IAsyncDisposable
{
    IOrchestrationHooks Hooks { get; }

    IReadOnlyList<HookDiagnostic> Diagnostics { get; }
}

/// <summary>Loads the hooks of a folder (the real <see cref="HookHost"/> unless a test supplies hand-written hooks).</summary>
internal delegate Task<ILoadedHooks> HookLoader(string directory, CancellationToken cancellationToken);

/// <summary>What one run of the command needs from the outside world; tests pass their own writers, environment and hooks.</summary>
internal sealed class CliContext
{
    public required TextWriter Out { get; init; }

    public required TextWriter Err { get; init; }

    /// <summary>Spectre output on <see cref="Out"/> (tables, summaries).</summary>
    public required IAnsiConsole Console { get; init; }

    public required ILogger Log { get; init; }

    public required HookLoader LoadHooks { get; init; }

    public required Func<string, string?> Environment { get; init; }
}

/// <summary>The real hook host behind <see cref="ILoadedHooks"/>.</summary>
internal sealed class HostedHooks : ILoadedHooks
{
    private readonly HookHost _host;

    private HostedHooks(HookHost host) => _host = host;

    public IOrchestrationHooks Hooks => _host;

    public IReadOnlyList<HookDiagnostic> Diagnostics => _host.Diagnostics;

    public static async Task<ILoadedHooks> LoadAsync(string directory, CancellationToken cancellationToken) =>
        new HostedHooks(await HookHost.LoadAsync(new HookHostOptions { HooksDirectory = directory }, cancellationToken).ConfigureAwait(false));

    public ValueTask DisposeAsync() => _host.DisposeAsync();
}

/// <summary>No hooks folder: one replica per entity at both levels.</summary>
internal sealed class NoHooks : ILoadedHooks, IOrchestrationHooks
{
    public IOrchestrationHooks Hooks => this;

    public IReadOnlyList<HookDiagnostic> Diagnostics => [];

    public IReadOnlyList<IOrchestrationHook> FlowHooks => [];

    public IReadOnlyList<IOrchestrationHook> PipelineHooks => [];

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
