using EtlFunnel.Scripting;

namespace EtlFunnel.Runtime.Hooks;

/// <summary>A set of loaded hooks and what loading them reported.</summary>
internal interface ILoadedHooks : IAsyncDisposable
{
    IOrchestrationHooks Hooks { get; }

    IReadOnlyList<HookDiagnostic> Diagnostics { get; }
}

/// <summary>Loads the hooks of a folder (the real <see cref="HookHost"/> unless a test supplies hand-written hooks).</summary>
internal delegate Task<ILoadedHooks> HookLoader(string directory, CancellationToken cancellationToken);

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
