using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using EtlFunnel.Scripting.Compiling;
using EtlFunnel.Scripting.Loading;
using EtlFunnel.Scripting.Policy;

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

/// <summary>
/// Finds, compiles, policy-checks, caches, loads and (optionally) hot-reloads the hooks of one folder.
/// <see cref="IOrchestrationHooks"/> always answers with the last good set.
/// </summary>
public sealed class HookHost : IOrchestrationHooks, IAsyncDisposable
{
    private static readonly IReadOnlyList<HookFileVersion> NoVersions = [];

    private readonly HookHostOptions options;
    private readonly string root;
    private readonly CompileCache cache;
    private readonly SemaphoreSlim reloadGate = new(1, 1);
    private readonly Dictionary<string, (string Key, IReadOnlyList<HookDiagnostic> Diagnostics)> failed = new(StringComparer.Ordinal);
    private readonly HashSet<string> pendingChanges = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource disposing = new();
    private Snapshot current = new(NoVersions);
    private IReadOnlyList<HookDiagnostic> diagnostics = [];
    private FileSystemWatcher? watcher;
    private ITimer? debounce;
    private ITimer? lateTrim;
    private bool compiled; // set by LoadScript when this reload ran the compiler (reloads are serialised)
    private int nativeTrims;
    private Task pendingReload = Task.CompletedTask;
    private bool attempted; // set by LoadVersion when it really loaded or compiled (reloads are serialised)

    private HookHost(HookHostOptions options)
    {
        this.options = options;
        root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(options.HooksDirectory));
        cache = new CompileCache(Path.GetFullPath(options.CacheDirectory ?? HookHostOptions.DefaultCacheDirectory));
    }

    /// <inheritdoc />
    public IReadOnlyList<IOrchestrationHook> FlowHooks => Volatile.Read(ref current).FlowHooks;

    /// <inheritdoc />
    public IReadOnlyList<IOrchestrationHook> PipelineHooks => Volatile.Read(ref current).PipelineHooks;

    /// <summary>Diagnostics of the latest load or reload attempt; non-empty errors mean the active set is the last good one (or empty).</summary>
    public IReadOnlyList<HookDiagnostic> Diagnostics => Volatile.Read(ref diagnostics);

    /// <summary>The full path of the hooks folder.</summary>
    public string HooksDirectory => root;

    /// <summary>The full path of the compile cache folder.</summary>
    public string CacheDirectory => cache.Directory;

    /// <summary>Raised after every reload attempt (watch mode).</summary>
    public event EventHandler<HookReloadedEventArgs>? Reloaded;

    /// <summary>Loads every hook of the folder. Compile and policy errors do not throw: they are in <see cref="Diagnostics"/>.</summary>
    public static async Task<HookHost> LoadAsync(HookHostOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var host = new HookHost(options);
        await Task.Run(() => host.ReloadCoreAsync([], raise: false, cancellationToken), cancellationToken).ConfigureAwait(false);
        if (options.Watch)
        {
            host.StartWatching();
        }

        return host;
    }

    /// <summary>
    /// Rescans the folder now and activates what changed (unchanged files keep their loaded version), exactly like a
    /// watch-mode reload; raises <see cref="Reloaded"/> and returns the same event args.
    /// </summary>
    public Task<HookReloadedEventArgs> ReloadAsync(CancellationToken cancellationToken = default)
        => Task.Run(() => ReloadCoreAsync([], raise: true, cancellationToken), cancellationToken);

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (disposing.IsCancellationRequested)
        {
            return;
        }

        await disposing.CancelAsync().ConfigureAwait(false);
        watcher?.Dispose();
        debounce?.Dispose();
        lateTrim?.Dispose();
        try
        {
            await pendingReload.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // The reload was abandoned because we are shutting down.
        }

        await reloadGate.WaitAsync().ConfigureAwait(false);
        try
        {
            foreach (var version in current.Versions)
            {
                version.Retire();
            }

            Volatile.Write(ref current, new Snapshot(NoVersions));
        }
        finally
        {
            reloadGate.Release();
        }

        disposing.Dispose();
    }

    /// <summary>How many loads or reloads returned the C allocator's free memory to the OS right after compiling.</summary>
    internal int NativeTrims => Volatile.Read(ref nativeTrims);

    /// <summary>The load contexts of the active script versions (tests use them to prove unloading).</summary>
    internal IEnumerable<WeakReference> ActiveScriptContexts
        => current.Versions.OfType<ScriptHookVersion>().Select(v => v.LoadContextReference);

    private async Task<HookReloadedEventArgs> ReloadCoreAsync(IReadOnlyCollection<string> triggeredBy, bool raise, CancellationToken cancellationToken)
    {
        HookReloadedEventArgs args;
        await reloadGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var old = current;
            var oldByPath = old.Versions.ToDictionary(v => v.SourcePath, StringComparer.Ordinal);
            var next = new List<HookFileVersion>();
            var found = new List<HookDiagnostic>();
            var changed = new SortedSet<string>(triggeredBy, StringComparer.Ordinal);
            compiled = false;

            if (!Directory.Exists(root))
            {
                found.Add(new HookDiagnostic(root, 0, 0, "warning", "EF0004", "the hooks folder does not exist; no hooks are loaded (create it, or pass another folder)"));
            }
            else
            {
                var discovered = Discover();
                foreach (var (path, kind) in discovered)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    oldByPath.TryGetValue(path, out var previous);
                    attempted = false;
                    var (version, fileDiagnostics) = kind == EntryKind.Script ? LoadScriptEntry(path, previous) : LoadPluginEntry(path, previous);
                    found.AddRange(fileDiagnostics);
                    if (version is not null)
                    {
                        next.Add(version);
                    }

                    if (version != previous || attempted)
                    {
                        changed.Add(path);
                    }
                }

                foreach (var gone in failed.Keys.Except(discovered.Select(d => d.Path)).ToList())
                {
                    failed.Remove(gone);
                }
            }

            foreach (var removed in old.Versions.Where(v => !next.Contains(v)))
            {
                changed.Add(removed.SourcePath);
            }

            Volatile.Write(ref current, new Snapshot(next));
            Volatile.Write(ref diagnostics, found);
            foreach (var retired in old.Versions.Where(v => !next.Contains(v)))
            {
                retired.Retire();
            }

            args = new HookReloadedEventArgs([.. changed], !found.Any(d => d.Severity == "error"), found);
            if (compiled)
            {
                TrimAfterCompile();
            }
        }
        finally
        {
            reloadGate.Release();
        }

        if (raise)
        {
            Reloaded?.Invoke(this, args);
        }

        return args;
    }

    private enum EntryKind
    {
        Script,
        Plugin,
    }

    /// <summary>Top-level .csx files not #load-ed by another one, and <c>Name/Name.dll</c> plugins, ordinal by name.</summary>
    private List<(string Path, EntryKind Kind)> Discover()
    {
        var scripts = Directory.EnumerateFiles(root, "*.csx", SearchOption.TopDirectoryOnly).Select(Path.GetFullPath).ToList();
        var helpers = new HashSet<string>(StringComparer.Ordinal);
        foreach (var script in scripts)
        {
            try
            {
                helpers.UnionWith(ScriptSources.Read(root, script).LoadedFiles);
            }
            catch (IOException)
            {
                // Being written; its own load reports it, the next change event retries.
            }
        }

        var entries = scripts.Where(s => !helpers.Contains(s)).Select(s => (s, EntryKind.Script)).ToList();
        foreach (var dir in Directory.EnumerateDirectories(root))
        {
            var dll = Path.Combine(dir, Path.GetFileName(dir) + ".dll");
            if (File.Exists(dll))
            {
                entries.Add((Path.GetFullPath(dll), EntryKind.Plugin));
            }
        }

        return [.. entries.OrderBy(e => Path.GetFileName(e.Item1), StringComparer.Ordinal).ThenBy(e => e.Item1, StringComparer.Ordinal)];
    }

    private (HookFileVersion? Version, IReadOnlyList<HookDiagnostic> Diagnostics) LoadScriptEntry(string path, HookFileVersion? previous)
    {
        ScriptSources sources;
        try
        {
            sources = ScriptSources.Read(root, path);
        }
        catch (IOException ex)
        {
            attempted = true;
            return (previous, [new HookDiagnostic(path, 0, 0, "error", "EF0005", $"cannot read the hook: {ex.Message}; the last good version stays active")]);
        }

        return LoadVersion(path, sources.Key, previous, () => LoadScript(sources));
    }

    private (HookFileVersion? Version, IReadOnlyList<HookDiagnostic> Diagnostics) LoadPluginEntry(string dllPath, HookFileVersion? previous)
    {
        string key;
        var directory = Path.GetDirectoryName(dllPath)!;
        var name = Path.GetFileNameWithoutExtension(dllPath);
        var trusted = options.TrustedPlugins.Contains(name, StringComparer.OrdinalIgnoreCase);
        try
        {
            key = PluginKey(directory, trusted);
        }
        catch (IOException ex)
        {
            return (previous, [new HookDiagnostic(dllPath, 0, 0, "error", "EF0005", $"cannot read the plugin: {ex.Message}; the last good version stays active")]);
        }

        return LoadVersion(dllPath, key, previous, () =>
        {
            if (!trusted && PluginInspector.Check(directory, name) is { Count: > 0 } refused)
            {
                return (null, refused);
            }

            var (version, loadDiagnostics) = PluginHookVersion.Load(dllPath, key, options.TimeBudget, options.TimeProvider);
            return (version, loadDiagnostics);
        });
    }

    private (HookFileVersion? Version, IReadOnlyList<HookDiagnostic> Diagnostics) LoadVersion(
        string path, string key, HookFileVersion? previous, Func<(HookFileVersion? Version, IReadOnlyList<HookDiagnostic> Diagnostics)> load)
    {
        if (previous is not null && previous.Key == key)
        {
            return (previous, []);
        }

        if (failed.TryGetValue(path, out var failure) && failure.Key == key)
        {
            return (previous, failure.Diagnostics);
        }

        attempted = true;
        var (version, loadDiagnostics) = load();
        if (version is null)
        {
            failed[path] = (key, loadDiagnostics);
            return (loadDiagnostics.Any(d => d.Severity == "error") ? previous : null, loadDiagnostics);
        }

        failed.Remove(path);
        return (version, loadDiagnostics);
    }

    private (HookFileVersion? Version, IReadOnlyList<HookDiagnostic> Diagnostics) LoadScript(ScriptSources sources)
    {
        if (cache.TryGet(sources.Key) is { } hit)
        {
            try
            {
                return (ScriptHookVersion.Load(root, sources.MainPath, sources.Key, hit.Assembly, hit.Pdb, options.TimeBudget, options.TimeProvider), []);
            }
            catch (BadImageFormatException)
            {
                cache.Remove(sources.Key);
            }
        }

        compiled = true;
        var result = Compile(sources);
        if (!result.Succeeded)
        {
            return (null, result.Diagnostics);
        }

        cache.Put(sources.Key, result.Assembly!, result.Pdb!);
        return (ScriptHookVersion.Load(root, sources.MainPath, sources.Key, result.Assembly!, result.Pdb!, options.TimeBudget, options.TimeProvider), result.Diagnostics);
    }

    /// <summary>
    /// Trims now (what the compile freed) and again once things are quiet: the JIT keeps recompiling the compiler's hot
    /// methods at a higher tier on a background thread for a while after a compile, and the replaced versions' load
    /// contexts are torn down by a later GC; both free native memory after this reload has returned.
    /// </summary>
    private void TrimAfterCompile()
    {
        if (!options.TrimNativeMemory || !NativeHeap.CanTrim)
        {
            return;
        }

        NativeHeap.Trim();
        Interlocked.Increment(ref nativeTrims);
        lateTrim ??= options.TimeProvider.CreateTimer(static _ => NativeHeap.Trim(), null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        lateTrim.Change(LateTrimDelay, Timeout.InfiniteTimeSpan);
    }

    private static readonly TimeSpan LateTrimDelay = TimeSpan.FromSeconds(5);

    // Kept out of line so that JIT-compiling the cache-hit path never touches the compiler's types.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static CompiledScript Compile(ScriptSources sources)
        => ScriptCompiler.Compile(sources, "EtlFunnelHook_" + sources.Key[..16]);

    private static string PluginKey(string directory, bool trusted)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(Encoding.UTF8.GetBytes($"{CompileEnvironment.Key};trusted={trusted}"));
        foreach (var file in Directory.EnumerateFiles(directory).Where(f => f.EndsWith(".dll", StringComparison.OrdinalIgnoreCase) || f.EndsWith(".pdb", StringComparison.OrdinalIgnoreCase) || f.EndsWith(".deps.json", StringComparison.OrdinalIgnoreCase)).Order(StringComparer.Ordinal))
        {
            hash.AppendData(Encoding.UTF8.GetBytes("\0" + Path.GetFileName(file) + "\0"));
            hash.AppendData(File.ReadAllBytes(file));
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    private void StartWatching()
    {
        if (!Directory.Exists(root))
        {
            return;
        }

        debounce = options.TimeProvider.CreateTimer(_ => OnQuiet(), null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        watcher = new FileSystemWatcher(root)
        {
            IncludeSubdirectories = true,
            NotifyFilter = NotifyFilters.FileName | NotifyFilters.DirectoryName | NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.CreationTime,
        };
        watcher.Changed += (_, e) => OnChange(e.FullPath);
        watcher.Created += (_, e) => OnChange(e.FullPath);
        watcher.Deleted += (_, e) => OnChange(e.FullPath);
        watcher.Renamed += (_, e) =>
        {
            OnChange(e.OldFullPath);
            OnChange(e.FullPath);
        };
        watcher.Error += (_, _) => OnChange(root); // overflow: the rescan finds everything anyway
        watcher.EnableRaisingEvents = true;
    }

    private void OnChange(string path)
    {
        if (disposing.IsCancellationRequested || path.StartsWith(cache.Directory, StringComparison.Ordinal))
        {
            return;
        }

        lock (pendingChanges)
        {
            pendingChanges.Add(path);
            debounce?.Change(options.ReloadDebounce, Timeout.InfiniteTimeSpan);
        }
    }

    private void OnQuiet()
    {
        string[] changed;
        lock (pendingChanges)
        {
            changed = [.. pendingChanges];
            pendingChanges.Clear();
            if (changed.Length == 0 || disposing.IsCancellationRequested)
            {
                return;
            }

            // Reloads run one after another, off the callers' path; callers keep using the current snapshot.
            pendingReload = pendingReload.ContinueWith(
                _ => WatchReloadAsync(changed),
                CancellationToken.None,
                TaskContinuationOptions.None,
                TaskScheduler.Default).Unwrap();
        }
    }

    private async Task WatchReloadAsync(string[] changed)
    {
        try
        {
            await ReloadCoreAsync(changed, raise: true, disposing.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (disposing.IsCancellationRequested)
        {
            // Shutting down.
        }
        catch (ObjectDisposedException) when (disposing.IsCancellationRequested)
        {
            // Shutting down.
        }
#pragma warning disable CA1031 // A failed reload must never take the service down: it is reported instead.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            var failure = new HookDiagnostic(root, 0, 0, "error", "EF0099", $"reload failed unexpectedly, the last good hooks stay active: {ex}");
            Volatile.Write(ref diagnostics, [failure]);
            Reloaded?.Invoke(this, new HookReloadedEventArgs(changed, false, [failure]));
        }
    }

    private sealed class Snapshot
    {
        public Snapshot(IReadOnlyList<HookFileVersion> versions)
        {
            Versions = versions;
            var hooks = versions.SelectMany(v => v.Hooks).OrderBy(h => h.Name, StringComparer.Ordinal).ThenBy(h => h.SourcePath, StringComparer.Ordinal).ToList();
            FlowHooks = hooks.Where(h => h.Level == HookLevel.Flow).ToList();
            PipelineHooks = hooks.Where(h => h.Level == HookLevel.Pipeline).ToList();
        }

        public IReadOnlyList<HookFileVersion> Versions { get; }

        public IReadOnlyList<IOrchestrationHook> FlowHooks { get; }

        public IReadOnlyList<IOrchestrationHook> PipelineHooks { get; }
    }
}
