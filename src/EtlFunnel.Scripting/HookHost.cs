using EtlFunnel.Scripting.Isolation;
using EtlFunnel.Scripting.Loading;

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

    /// <summary>How long the folder must be quiet after a change before a watch-mode reload starts (default 200 ms).</summary>
    public TimeSpan ReloadDebounce { get; init; } = TimeSpan.FromMilliseconds(200);

    /// <summary>
    /// After a load or reload that compiled, give the C allocator's free memory back to the OS (glibc's <c>malloc_trim</c>,
    /// now and again a few seconds later); default true. Without it a long-running service keeps the native peak of
    /// every compile (docs/hooks.md, "Memory of reloads").
    /// </summary>
    public bool TrimNativeMemory { get; init; } = true;

    /// <summary>
    /// Where hook code runs (default <see cref="HookIsolation.Sandbox"/>: a worker process under the OS limits of
    /// docs/hooks.md, refused when no sandbox is available). <see cref="HookIsolation.None"/> is the old in-process path.
    /// </summary>
    public HookIsolation Isolation { get; init; } = HookIsolation.Sandbox;

    /// <summary>Only compile and policy-check (<c>hooks check</c>): hooks are listed, never loaded or run.</summary>
    public bool CompileOnly { get; init; }

    /// <summary>Host environment variables the worker gets; it starts with an empty environment.</summary>
    public IReadOnlyList<string> WorkerEnvironment { get; init; } = [];

    /// <summary>The worker's memory limit (GC heap hard limit; the address-space limit is derived from it), default 1 GiB.</summary>
    public long WorkerMemoryLimitBytes { get; init; } = 1L << 30;

    /// <summary>The worker's CPU-time limit (RLIMIT_CPU) over its whole life, default 1 h; at the limit it is killed and restarted.</summary>
    public TimeSpan WorkerCpuLimit { get; init; } = TimeSpan.FromHours(1);

    /// <summary>How long loading the folder (compiling every changed hook) may take in the worker before it is killed (default 2 min).</summary>
    public TimeSpan CompileTimeout { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>Receives the worker's own output line by line (hooks' Console.Write, crash reports); default: this process's stderr.</summary>
    public Action<string>? WorkerOutput { get; init; }

    /// <summary>
    /// Where the lines hooks log with <c>param.Log</c> go (with the hook's file and line). Null: to
    /// <see cref="WorkerOutput"/>, else stderr, as <c>[hook] file(line): level: message</c>.
    /// </summary>
    public Action<HookLogEntry>? HookLog { get; init; }

    /// <summary>
    /// Debugging hooks: the worker logs its process id and waits this long for a debugger to attach before it loads the
    /// hooks, then goes on either way. The worker then runs as a plain child process (a sandbox's own pid namespace and
    /// private /tmp would hide it from the debugger). Null (default): no wait. See docs/hooks.md.
    /// </summary>
    public TimeSpan? WaitForDebugger { get; init; }

    /// <summary>Test only: compile hooks without the semantic policy, to prove what the OS layers stop on their own.</summary>
    internal bool SkipSemanticPolicy { get; init; }

    /// <summary>Test only: use exactly this sandbox layer instead of the best available one.</summary>
    internal SandboxKind? ForceSandbox { get; init; }

    /// <summary>The clock for budgets and debouncing (default <see cref="TimeProvider.System"/>).</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>The default cache folder: <c>$XDG_CACHE_HOME/etlfunnel/hooks</c>, else <c>~/.cache/etlfunnel/hooks</c> (LocalAppData on Windows).</summary>
    public static string DefaultCacheDirectory
    {
        get
        {
            var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
            if (!string.IsNullOrEmpty(xdg))
            {
                return Path.Combine(xdg, "etlfunnel", "hooks");
            }

            if (OperatingSystem.IsWindows())
            {
                return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData), "EtlFunnel", "hook-cache");
            }

            var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
            return string.IsNullOrEmpty(home)
                ? Path.Combine(Path.GetTempPath(), "etlfunnel-hook-cache")
                : Path.Combine(home, ".cache", "etlfunnel", "hooks");
        }
    }
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


/// <summary>Where hook code runs.</summary>
public enum HookIsolation
{
    /// <summary>In a worker process under OS limits (bubblewrap, else unshare); refused when neither is available.</summary>
    Sandbox,

    /// <summary>In a worker process, with whatever OS limits are available (at least rlimits); never refused.</summary>
    Process,

    /// <summary>In this process (the pre-worker path): only the semantic policy stands between hooks and the host.</summary>
    None,
}

/// <summary>An isolation layer of the hook worker and whether it is active, as detected in the running worker.</summary>
public sealed record IsolationLayer(string Name, bool Active, string Detail)
{
    /// <inheritdoc />
    public override string ToString() => $"{(Active ? "on " : "off")} {Name}: {Detail}";
}

/// <summary>
/// Finds, compiles, policy-checks, caches, loads and (optionally) hot-reloads the hooks of one folder.
/// <see cref="IOrchestrationHooks"/> always answers with the last good set. Hook code runs in a worker process
/// (<see cref="HookHostOptions.Isolation"/>); this process never loads it unless the isolation is <see cref="HookIsolation.None"/>.
/// </summary>
public sealed class HookHost : IOrchestrationHooks, IAsyncDisposable
{
    private readonly LocalHooks? local;
    private readonly WorkerHooks? worker;

    private HookHost(LocalHooks? local, WorkerHooks? worker)
    {
        this.local = local;
        this.worker = worker;
        if (local is not null)
        {
            local.Reloaded += (_, e) => Reloaded?.Invoke(this, e);
        }

        if (worker is not null)
        {
            worker.Reloaded += (_, e) => Reloaded?.Invoke(this, e);
        }
    }

    /// <inheritdoc />
    public IReadOnlyList<IOrchestrationHook> FlowHooks => local?.FlowHooks ?? worker!.FlowHooks;

    /// <inheritdoc />
    public IReadOnlyList<IOrchestrationHook> PipelineHooks => local?.PipelineHooks ?? worker!.PipelineHooks;

    /// <summary>Diagnostics of the latest load or reload attempt; non-empty errors mean the active set is the last good one (or empty).</summary>
    public IReadOnlyList<HookDiagnostic> Diagnostics => local?.Diagnostics ?? worker!.Diagnostics;

    /// <summary>The data-plane transformers (scripts declaring <c>Transform(RowView, DocumentWriter)</c>), ordered by file name; each batch is one call to the worker.</summary>
    public IReadOnlyList<Transforming.IDataTransformer> Transformers => local?.Transformers ?? worker!.Transformers;

    /// <summary>The batch-level hooks (scripts declaring <c>WriteRule</c>, <c>Termination</c>, <c>OnCheckpoint</c> or <c>OnBacklog</c>), ordered by file name; each call is one round trip to the worker.</summary>
    public IReadOnlyList<Batching.IBatchHook> BatchHooks => local?.BatchHooks ?? worker!.BatchHooks;

    /// <summary>The full path of the hooks folder.</summary>
    public string HooksDirectory => local?.HooksDirectory ?? worker!.HooksDirectory;

    /// <summary>The full path of the compile cache folder.</summary>
    public string CacheDirectory => local?.CacheDirectory ?? worker!.CacheDirectory;

    /// <summary>The isolation layers of the worker as detected when it last started (one "in-process" entry under isolation none).</summary>
    public IReadOnlyList<IsolationLayer> IsolationLayers => worker?.Layers ?? [new IsolationLayer("process", false, "hooks run inside this process (isolation: none); only the semantic policy applies")];

    /// <summary>How many times the worker was started (1 after a load; more after crashes and kills).</summary>
    public int WorkerStarts => worker?.Starts ?? 0;

    /// <summary>The namespaces every hook script can use without a <c>using</c> (what <c>etlfunnel hooks init</c> gives editors).</summary>
    public static IReadOnlyList<string> ScriptImports => Compiling.ScriptCompiler.DefaultUsings;

    /// <summary>Raised after every reload attempt (watch mode).</summary>
    public event EventHandler<HookReloadedEventArgs>? Reloaded;

    /// <summary>Loads every hook of the folder. Compile and policy errors do not throw: they are in <see cref="Diagnostics"/>.</summary>
    /// <exception cref="HookIsolationException">The isolation asked for cannot be had here (e.g. no bubblewrap nor unshare for <see cref="HookIsolation.Sandbox"/>).</exception>
    public static async Task<HookHost> LoadAsync(HookHostOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Isolation == HookIsolation.None)
        {
            return new HookHost(await LocalHooks.LoadAsync(options, cancellationToken).ConfigureAwait(false), null);
        }

        return new HookHost(null, await WorkerHooks.LoadAsync(options, cancellationToken).ConfigureAwait(false));
    }

    /// <summary>
    /// Rescans the folder now and activates what changed (unchanged files keep their loaded version), exactly like a
    /// watch-mode reload; raises <see cref="Reloaded"/> and returns the same event args.
    /// </summary>
    public Task<HookReloadedEventArgs> ReloadAsync(CancellationToken cancellationToken = default)
        => local?.ReloadAsync(cancellationToken) ?? worker!.ReloadAsync(cancellationToken);

    /// <summary>
    /// Like <see cref="ReloadAsync"/>, but on a new worker process: for a hooks folder that was removed and restored, which
    /// the running worker's sandbox (bound to the old directory) cannot see. In process it is a reload.
    /// </summary>
    public Task<HookReloadedEventArgs> RestartAsync(CancellationToken cancellationToken = default)
        => local?.ReloadAsync(cancellationToken) ?? worker!.RestartAsync(cancellationToken);

    /// <inheritdoc />
    public ValueTask DisposeAsync() => local?.DisposeAsync() ?? worker!.DisposeAsync();

    /// <summary>
    /// Runs the folder's test cases (top-level <c>*.test.csx</c> files, see docs/hooks.md "Writing and testing hooks") where
    /// the hooks run: in the worker, or in this process under <see cref="HookIsolation.None"/>. Each case runs under
    /// <see cref="HookHostOptions.TimeBudget"/>; compile errors of a test file are failed results named <c>(compile)</c>.
    /// </summary>
    public async Task<IReadOnlyList<HookTestResult>> RunTestsAsync(CancellationToken cancellationToken = default)
        => local is not null ? (await local.RunTestsAsync(cancellationToken).ConfigureAwait(false)).Results : await worker!.RunTestsAsync(cancellationToken).ConfigureAwait(false);

    /// <summary>How many loads or reloads returned the C allocator's free memory to the OS right after compiling (in-process only).</summary>
    internal int NativeTrims => local?.NativeTrims ?? 0;

    /// <summary>The load contexts of the active script versions (in-process only; tests use them to prove unloading).</summary>
    internal IEnumerable<WeakReference> ActiveScriptContexts => local?.ActiveScriptContexts ?? [];

    /// <summary>Test only: the worker's process id, to kill it from outside.</summary>
    internal int? WorkerProcessId => worker?.ProcessId;
}

/// <summary>The hook isolation asked for is not available on this machine; the message says what to install or configure.</summary>
public sealed class HookIsolationException : Exception
{
    /// <summary>Creates the exception.</summary>
    public HookIsolationException(string message, Exception? innerException = null)
        : base(message, innerException)
    {
    }
}

/// <summary>The outcome of one test case of a <c>*.test.csx</c> file (see <see cref="HookHost.RunTestsAsync"/>).</summary>
/// <param name="TestFile">The test file, relative to the hooks folder.</param>
/// <param name="Case">The case: a <c>Test…</c> method, <c>(top-level)</c> for a file without one, <c>(compile)</c> for a compile error.</param>
/// <param name="Passed">True when the case returned without throwing.</param>
/// <param name="File">Where it failed: the innermost line of hook or test code (a <c>#load</c>ed hook's own line when the hook threw).</param>
/// <param name="Line">The line it failed at (1-based; 0 when unknown or passed).</param>
/// <param name="Column">The column it failed at (1-based; 0 when unknown or passed).</param>
/// <param name="Message">Why it failed (the check's message, or the exception's type and message); empty when passed.</param>
/// <param name="Duration">How long the case ran.</param>
public sealed record HookTestResult(string TestFile, string Case, bool Passed, string File, int Line, int Column, string Message, TimeSpan Duration)
{
    /// <inheritdoc />
    public override string ToString() => Passed ? $"PASS {TestFile} {Case}" : $"{File}({Line},{Column}): FAIL {TestFile} {Case}: {Message}";
}

/// <summary>A line a hook logged with <c>param.Log</c>: where (the hook's file and line), how severe, what.</summary>
/// <param name="File">The hook's file (or the <c>#load</c>ed file the call is in), as the compiler named it.</param>
/// <param name="Line">The line of the <c>param.Log</c> call.</param>
/// <param name="Level"><c>info</c>, <c>warning</c> or <c>error</c>.</param>
/// <param name="Message">The text (at most 4,096 characters; longer lines are cut).</param>
public sealed record HookLogEntry(string File, int Line, string Level, string Message)
{
    /// <inheritdoc />
    public override string ToString() => $"{File}({Line}): {Level}: {Message}";
}
