using EtlFunnel.Scripting;

namespace EtlFunnel.Runtime.Hooks;

/// <summary>A set of loaded hooks and what loading them reported.</summary>
internal interface ILoadedHooks : IAsyncDisposable
{
    IOrchestrationHooks Hooks { get; }

    IReadOnlyList<HookDiagnostic> Diagnostics { get; }

    /// <summary>The hook worker's isolation layers as detected (empty for hand-written hooks).</summary>
    IReadOnlyList<IsolationLayer> IsolationLayers => [];

    /// <summary>The folder's data-plane transformers for the sync engine (empty for hand-written hooks and no folder).</summary>
    IReadOnlyList<EtlFunnel.Sync.Transforming.IBatchTransformer> Transformers => [];

    /// <summary>The folder's batch-level hooks (write rule, termination, checkpoint, backlog) for the sync engine.</summary>
    IReadOnlyList<EtlFunnel.Sync.Batching.IPipelineHook> PipelineHooks => [];

    /// <summary>The real hook host behind these hooks (null for hand-written hooks and no folder).</summary>
    HookHost? Host => null;
}

/// <summary>How the real hook host is to load the hooks: from the config's <c>hooks:</c> mapping, or for <c>hooks check</c>.</summary>
internal sealed record HookSettings(HookIsolation Isolation, IReadOnlyList<string> Environment, bool CompileOnly = false)
{
    /// <summary>Where the lines hooks log with <c>param.Log</c> go (the command's or the service's log).</summary>
    public Action<HookLogEntry>? Log { get; init; }

    /// <summary><c>hooks test --wait-for-debugger</c>: how long the worker waits for a debugger (it then runs as a plain process, with a 1 h budget).</summary>
    public TimeSpan? WaitForDebugger { get; init; }

    public static HookSettings Default { get; } = new(HookIsolation.Sandbox, []);
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

    public IReadOnlyList<IsolationLayer> IsolationLayers => _host.IsolationLayers;

    public IReadOnlyList<EtlFunnel.Sync.Transforming.IBatchTransformer> Transformers => BatchTransformers.From(_host);

    public IReadOnlyList<EtlFunnel.Sync.Batching.IPipelineHook> PipelineHooks => EtlFunnel.Runtime.Hooks.PipelineHooks.From(_host);

    public HookHost? Host => _host;

    public static Task<ILoadedHooks> LoadAsync(string directory, CancellationToken cancellationToken) => LoadAsync(directory, HookSettings.Default, cancellationToken);

    public static async Task<ILoadedHooks> LoadAsync(string directory, HookSettings settings, CancellationToken cancellationToken) =>
        new HostedHooks(await HookHost.LoadAsync(Options(directory, settings), cancellationToken).ConfigureAwait(false));

    public static HookHostOptions Options(string directory, HookSettings settings) => new()
    {
        HooksDirectory = directory,
        Isolation = settings.Isolation,
        WorkerEnvironment = settings.Environment,
        CompileOnly = settings.CompileOnly,
        HookLog = settings.Log,
        WaitForDebugger = settings.WaitForDebugger,
        // Stepping through a hook takes longer than its budget: a debugged call is not killed for it.
        TimeBudget = settings.WaitForDebugger is null ? new HookHostOptions().TimeBudget : TimeSpan.FromHours(1),
    };

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
