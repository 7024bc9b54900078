using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using EtlFunnel.Scripting.Compiling;
using EtlFunnel.Scripting.Policy;

namespace EtlFunnel.Scripting.Loading;

/// <summary>
/// Finds, compiles, policy-checks, caches, loads and (optionally) hot-reloads the hooks of one folder, in this process.
/// <see cref="IOrchestrationHooks"/> always answers with the last good set. The hook worker runs one of these; the host
/// runs one itself only under <c>isolation: none</c>.
/// </summary>
internal sealed class LocalHooks : IOrchestrationHooks, IAsyncDisposable
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

    private LocalHooks(HookHostOptions options)
    {
        this.options = options;
        root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(options.HooksDirectory));
        cache = new CompileCache(Path.GetFullPath(options.CacheDirectory ?? HookHostOptions.DefaultCacheDirectory));
    }

    /// <inheritdoc />
    public IReadOnlyList<IOrchestrationHook> FlowHooks => Volatile.Read(ref current).FlowHooks;

    /// <inheritdoc />
    public IReadOnlyList<IOrchestrationHook> PipelineHooks => Volatile.Read(ref current).PipelineHooks;

    /// <summary>The data-plane transformers of the active set, ordered by file name (applied in that order).</summary>
    public IReadOnlyList<Transforming.TransformerHook> Transformers => Volatile.Read(ref current).Transformers;

    public IReadOnlyList<Batching.BatchHook> BatchHooks => Volatile.Read(ref current).BatchHooks;

    /// <summary>Diagnostics of the latest load or reload attempt; non-empty errors mean the active set is the last good one (or empty).</summary>
    public IReadOnlyList<HookDiagnostic> Diagnostics => Volatile.Read(ref diagnostics);

    /// <summary>The full path of the hooks folder.</summary>
    public string HooksDirectory => root;

    /// <summary>The full path of the compile cache folder.</summary>
    public string CacheDirectory => cache.Directory;

    /// <summary>Raised after every reload attempt (watch mode).</summary>
    public event EventHandler<HookReloadedEventArgs>? Reloaded;

    /// <summary>Loads every hook of the folder. Compile and policy errors do not throw: they are in <see cref="Diagnostics"/>.</summary>
    public static async Task<LocalHooks> LoadAsync(HookHostOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var host = new LocalHooks(options);
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

    /// <summary>Runs the folder's <c>*.test.csx</c> cases in this process, each under the hooks' time budget.</summary>
    public Task<(IReadOnlyList<HookTestResult> Results, bool Abandoned)> RunTestsAsync(CancellationToken cancellationToken = default)
        => Task.Run(() => Testing.HookTestRunner.RunAsync(root, options.TimeBudget, !options.SkipSemanticPolicy, cancellationToken), cancellationToken);

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

    /// <summary>Top-level .csx files (but <c>*.test.csx</c>) not #load-ed by another one, and <c>Name/Name.dll</c> plugins, ordinal by name.</summary>
    private List<(string Path, EntryKind Kind)> Discover()
    {
        // *.test.csx are the folder's test cases (hooks test): never hooks, and what they #load stays a hook.
        var scripts = Directory.EnumerateFiles(root, "*.csx", SearchOption.TopDirectoryOnly).Select(Path.GetFullPath)
            .Where(s => !Testing.HookTestRunner.IsTestFile(s)).ToList();
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

        return LoadVersion(path, KeyOf(sources), previous, () => LoadScript(sources));
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
            if (!trusted && !options.SkipSemanticPolicy && PluginInspector.Check(directory, name) is { Count: > 0 } refused)
            {
                return (null, refused);
            }

            if (options.CompileOnly)
            {
                var (listed, listDiagnostics) = ListedHookVersion.ForPlugin(dllPath, key);
                return (listed, listDiagnostics);
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
        var key = KeyOf(sources);
        if (cache.TryGet(key) is { } hit)
        {
            try
            {
                return (Activate(sources, key, hit.Assembly, hit.Pdb), []);
            }
            catch (BadImageFormatException)
            {
                cache.Remove(key);
            }
        }

        compiled = true;
        var result = Compile(sources, key, !options.SkipSemanticPolicy);
        if (!result.Succeeded)
        {
            return (null, result.Diagnostics);
        }

        cache.Put(key, result.Assembly!, result.Pdb!);
        return (Activate(sources, key, result.Assembly!, result.Pdb!), result.Diagnostics);
    }

    // hooks check lists the compiled hook from its metadata: loading it could run a module initializer.
    private HookFileVersion Activate(ScriptSources sources, string key, byte[] assembly, byte[] pdb)
        => options.CompileOnly
            ? ListedHookVersion.ForScript(root, sources.MainPath, key, assembly)
            : ScriptHookVersion.Load(root, sources.MainPath, key, assembly, pdb, options.TimeBudget, options.TimeProvider);

    // Hooks compiled without the semantic policy (tests of the OS layers) never share cache entries with checked ones.
    private string KeyOf(ScriptSources sources) => options.SkipSemanticPolicy ? sources.Key[..48] + "0000000000000000" : sources.Key;

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
    private static CompiledScript Compile(ScriptSources sources, string key, bool policy)
        => ScriptCompiler.Compile(sources, "EtlFunnelHook_" + key[..16], policy);

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
            Transformers = versions.SelectMany(v => v.Transformers).OrderBy(t => t.Name, StringComparer.Ordinal).ToList();
            BatchHooks = versions.SelectMany(v => v.BatchHooks).OrderBy(t => t.Name, StringComparer.Ordinal).ToList();
        }

        public IReadOnlyList<Batching.BatchHook> BatchHooks { get; }

        public IReadOnlyList<Transforming.TransformerHook> Transformers { get; }

        public IReadOnlyList<HookFileVersion> Versions { get; }

        public IReadOnlyList<IOrchestrationHook> FlowHooks { get; }

        public IReadOnlyList<IOrchestrationHook> PipelineHooks { get; }
    }
}
