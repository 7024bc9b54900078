namespace EtlFunnel.Scripting;

/// <summary>Options for <see cref="HookHost"/>.</summary>
public sealed record HookHostOptions
{
    /// <summary>The hooks folder (default <c>hooks</c>).</summary>
    public string HooksDirectory { get; init; } = "hooks";

    /// <summary>Time budget of one hook call (default 10 s).</summary>
    public TimeSpan TimeBudget { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Where compiled hooks are cached; <c>null</c> picks the default (documented in docs/hooks.md).</summary>
    public string? CacheDirectory { get; init; }

    /// <summary>Watch the folder and reload on change.</summary>
    public bool Watch { get; init; }

    /// <summary>Plugin assembly names trusted to use APIs the policy forbids.</summary>
    public IReadOnlyList<string> TrustedPlugins { get; init; } = [];
}

/// <summary>A compiler or policy diagnostic, printed as <c>file(line,col): error ID: message</c>.</summary>
public sealed record HookDiagnostic(string File, int Line, int Column, string Severity, string Id, string Message)
{
    /// <inheritdoc />
    public override string ToString() => $"{File}({Line},{Column}): {Severity} {Id}: {Message}";
}

/// <summary>Raised after every reload attempt.</summary>
public sealed class HookReloadedEventArgs : EventArgs
{
    /// <summary>Creates the event args.</summary>
    public HookReloadedEventArgs(IReadOnlyList<string> changedFiles, bool succeeded, IReadOnlyList<HookDiagnostic> diagnostics)
    {
        ChangedFiles = changedFiles;
        Succeeded = succeeded;
        Diagnostics = diagnostics;
    }

    /// <summary>The files whose change triggered the reload.</summary>
    public IReadOnlyList<string> ChangedFiles { get; }

    /// <summary>False when the new version did not compile or load; the last good version stays active.</summary>
    public bool Succeeded { get; }

    /// <summary>Diagnostics of the attempt (empty on success).</summary>
    public IReadOnlyList<HookDiagnostic> Diagnostics { get; }
}

/// <summary>
/// Finds, compiles, policy-checks, caches, loads and (optionally) hot-reloads the hooks of one folder.
/// <see cref="IOrchestrationHooks"/> always answers with the last good set.
/// </summary>
public sealed class HookHost : IOrchestrationHooks, IAsyncDisposable
{
    private HookHost()
    {
    }

    /// <inheritdoc />
    public IReadOnlyList<IOrchestrationHook> FlowHooks => throw new NotImplementedException();

    /// <inheritdoc />
    public IReadOnlyList<IOrchestrationHook> PipelineHooks => throw new NotImplementedException();

    /// <summary>Diagnostics of the latest load or reload attempt; non-empty errors mean the active set is the last good one (or empty).</summary>
    public IReadOnlyList<HookDiagnostic> Diagnostics => throw new NotImplementedException();

    /// <summary>Raised after every reload attempt (watch mode).</summary>
    public event EventHandler<HookReloadedEventArgs>? Reloaded;

    /// <summary>Loads every hook of the folder. Compile and policy errors do not throw: they are in <see cref="Diagnostics"/>.</summary>
    public static Task<HookHost> LoadAsync(HookHostOptions options, CancellationToken cancellationToken = default)
        => throw new NotImplementedException();

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        Reloaded?.Invoke(this, new HookReloadedEventArgs([], false, []));
        throw new NotImplementedException();
    }
}
