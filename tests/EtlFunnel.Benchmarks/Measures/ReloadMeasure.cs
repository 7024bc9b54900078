using System.Diagnostics;
using System.Runtime.Loader;
using EtlFunnel.Benchmarks.Support;
using EtlFunnel.Execution.Models;
using EtlFunnel.Scripting;

namespace EtlFunnel.Benchmarks.Measures;

/// <summary>Arguments of the <c>reload</c> child mode.</summary>
/// <param name="Invoke">Invoke the new version after each reload (the real pattern); off only to diagnose growth.</param>
/// <param name="Alternate">Alternate between two sources (every reload a cache hit, no compile); on only to diagnose growth.</param>
/// <param name="Trim">The host's <see cref="HookHostOptions.TrimNativeMemory"/>; off only to diagnose growth.</param>
/// <param name="Isolation">Where hooks run: <see cref="HookIsolation.None"/> (in this process, the reload rows) or the worker (the isolation rows).</param>
internal sealed record ReloadArgs(string Hooks, string Work, int Cycles, bool Invoke = true, bool Alternate = false, bool Trim = true, HookIsolation Isolation = HookIsolation.None);

/// <summary>
/// Hot reload: an operator edits a hook N times; each edit is reloaded (a real compile of new source) and the new version
/// invoked. Afterwards, old load contexts still alive after a full GC (target 0) and memory growth (target ≤ 20 MB).
/// Runs in its own process so nothing else in it holds memory.
/// </summary>
internal static class ReloadMeasure
{
    private const string EditedHook = "flow-by-cores.csx";
    private const int WarmupCycles = 10;

    public static async Task RunAsync(BenchContext ctx, ResultTable table)
    {
        var work = ctx.NewWorkDir("reload");
        var r = await Processes.RunChildAsync("reload", new ReloadArgs(ctx.HooksDirectory, work, ctx.ReloadCycles), TimeSpan.FromMinutes(15), Processes.CliRuntimeConfig(ctx.Cli));
        var cycles = r.GetProperty("cycles").GetInt32();
        var alive = r.GetProperty("oldContextsAlive").GetInt32();
        var rssGrowth = r.GetProperty("rssGrowthBytes").GetDouble();
        var managedGrowth = r.GetProperty("managedGrowthBytes").GetDouble();
        var reloadMs = r.GetProperty("medianReloadMs").GetDouble();
        var firstHalf = r.GetProperty("rssGrowthFirstHalfBytes").GetDouble();
        var secondHalf = r.GetProperty("rssGrowthSecondHalfBytes").GetDouble();
        var afterTrim = r.GetProperty("rssGrowthAfterTrimBytes").GetDouble();
        var jitted = r.GetProperty("methodsJittedDuringCycles").GetInt64();
        Log.Info($"reload: {r}");
        table.Add(new ResultRow($"reload: {cycles} edit+reload cycles, old load contexts alive after GC", alive.ToString(System.Globalization.CultureInfo.InvariantCulture), "—", "—", "0", alive == 0));
        table.Add(new ResultRow($"reload: {cycles} cycles, memory growth, CLI runtime settings (RSS: first half {Fmt.Mb(firstHalf)}, second half {Fmt.Mb(secondHalf)}, {Fmt.Mb(afterTrim)} after a final malloc_trim; managed heap {Fmt.Mb(managedGrowth)}; {jitted:N0} methods jitted during the cycles)", Fmt.Mb(rssGrowth), "—", "—", "≤ 20 MB", rssGrowth <= 20 * 1024 * 1024));
        table.Add(new ResultRow("reload: one edit → reload (compile + load + swap), median", Fmt.Ms(reloadMs), "—", "—", "— (info)", null));
    }

    public static async Task<int> ChildAsync(ReloadArgs a)
    {
        var hooks = Path.Combine(a.Work, "hooks");
        Directory.CreateDirectory(hooks);
        foreach (var file in Directory.GetFiles(a.Hooks, "*.csx"))
        {
            File.Copy(file, Path.Combine(hooks, Path.GetFileName(file)), overwrite: true);
        }

        var original = await File.ReadAllTextAsync(Path.Combine(hooks, EditedHook));
        // *.test.csx files are test cases, never loaded as hooks: they hold no load context.
        var activeScripts = Directory.GetFiles(hooks, "*.csx").Count(f => !f.EndsWith(".test.csx", StringComparison.Ordinal));
        var props = new OrchestratorProps
        {
            Entity = [new OrchestratorEntityDef { Name = "shop", SourceDBConn = new StatsOnlyEngine(), DestDBConn = new StatsOnlyEngine() }],
            Machine = new MachineInfo { LogicalCores = 4, TotalMemoryBytes = 8L << 30 },
        };

        await using var host = await HookHost.LoadAsync(new HookHostOptions { HooksDirectory = hooks, CacheDirectory = Path.Combine(a.Work, "cache"), TrimNativeMemory = a.Trim, Isolation = a.Isolation });
        var reloadMs = new List<double>(a.Cycles);
        for (var i = 0; i < WarmupCycles + a.Cycles; i++)
        {
            if (i == WarmupCycles)
            {
                Settle();
                Baseline = (GC.GetTotalMemory(forceFullCollection: true), Processes.StatusKb("VmRSS") * 1024);
                CommittedBaseline = GC.GetGCMemoryInfo().TotalCommittedBytes;
                SmapsBaseline = RssByMapping();
                JittedBaseline = System.Runtime.JitInfo.GetCompiledMethodCount();
            }
            else if (i == WarmupCycles + (a.Cycles / 2))
            {
                Settle();
                Log.Info($"reload: {i - WarmupCycles} cycles, RSS {Fmt.Mb(Processes.StatusKb("VmRSS") * 1024)}");
                Midpoint = Processes.StatusKb("VmRSS") * 1024;
            }

            await File.WriteAllTextAsync(Path.Combine(hooks, EditedHook), original + $"\n// edit {(a.Alternate ? i % 2 : i)}\n");
            var watch = Stopwatch.StartNew();
            var reloaded = await host.ReloadAsync();
            watch.Stop();
            if (!reloaded.Succeeded || !reloaded.ChangedFiles.Any(f => f.EndsWith(EditedHook, StringComparison.Ordinal)))
            {
                throw new InvalidOperationException($"reload {i} did not activate the edit: {string.Join('\n', reloaded.Diagnostics)}");
            }

            if (i >= WarmupCycles)
            {
                reloadMs.Add(watch.Elapsed.TotalMilliseconds);
            }

            if (a.Invoke)
            {
                await InvokeAsync(host, props);
            }
        }

        var alive = Settle() - activeScripts;
        var managed = GC.GetTotalMemory(forceFullCollection: true);
        var rss = Processes.StatusKb("VmRSS") * 1024;
        var smaps = RssByMapping();
        var jitted = System.Runtime.JitInfo.GetCompiledMethodCount() - JittedBaseline;
        // What the C allocator keeps of memory already freed (glibc rarely returns it on its own): trim and read again.
        var trimmed = OperatingSystem.IsLinux() && NativeMethods.malloc_trim(0) >= 0 ? Processes.StatusKb("VmRSS") * 1024 : rss;
        Processes.Report(new
        {
            cycles = a.Cycles,
            oldContextsAlive = alive,
            managedGrowthBytes = managed - Baseline.Managed,
            rssGrowthBytes = rss - Baseline.Rss,
            rssGrowthFirstHalfBytes = Midpoint - Baseline.Rss,
            rssGrowthSecondHalfBytes = rss - Midpoint,
            rssGrowthAfterTrimBytes = trimmed - Baseline.Rss,
            medianReloadMs = Fmt.Median(reloadMs),
            threads = Processes.StatusKb("Threads"),
            gcCommittedGrowthBytes = GC.GetGCMemoryInfo().TotalCommittedBytes - CommittedBaseline,
            rssGrowthByMappingBytes = smaps.Keys.Union(SmapsBaseline.Keys).ToDictionary(k => k, k => smaps.GetValueOrDefault(k) - SmapsBaseline.GetValueOrDefault(k)),
            methodsJittedDuringCycles = jitted,
            settings = new { gcConcurrent = AppContext.GetData("System.GC.Concurrent"), tieredPgo = AppContext.GetData("System.Runtime.TieredPGO"), conserve = AppContext.GetData("System.GC.ConserveMemory") },
        });
        return 0;
    }

    private static (long Managed, long Rss) Baseline { get; set; }

    private static long Midpoint { get; set; }

    private static long CommittedBaseline { get; set; }

    private static Dictionary<string, long> SmapsBaseline { get; set; } = [];

    private static long JittedBaseline { get; set; }

    /// <summary>
    /// Resident bytes by kind of mapping (/proc/self/smaps): the C heap (<c>[heap]</c> and glibc's thread arenas are
    /// anonymous), executable memory (the runtime's W^X double mapping), other anonymous memory (GC, loader heaps,
    /// arenas), files. Tells which part of the process grows.
    /// </summary>
    private static Dictionary<string, long> RssByMapping()
    {
        var result = new Dictionary<string, long>(StringComparer.Ordinal);
        if (!File.Exists("/proc/self/smaps"))
        {
            return result;
        }

        var kind = "";
        foreach (var line in File.ReadLines("/proc/self/smaps"))
        {
            var parts = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length >= 5 && parts[0].Contains('-', StringComparison.Ordinal) && !line.EndsWith(" kB", StringComparison.Ordinal))
            {
                var path = parts.Length == 6 ? parts[5].Trim() : "";
                var perms = parts[1];
                kind = path switch
                {
                    "" => perms.Contains('x', StringComparison.Ordinal) ? "anon-exec" : "anon",
                    "[heap]" => "heap",
                    _ when path.Contains("doublemapper", StringComparison.Ordinal) => perms.Contains('x', StringComparison.Ordinal) ? "doublemapper-exec" : "doublemapper-rw",
                    _ when path.StartsWith('[') => "other",
                    _ => "file",
                };
            }
            else if (line.StartsWith("Rss:", StringComparison.Ordinal))
            {
                result[kind] = result.GetValueOrDefault(kind) + (long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) * 1024);
            }
        }

        return result;
    }

    // Kept out of line so no reference to a hook survives on this frame's stack.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static async Task InvokeAsync(HookHost host, OrchestratorProps props)
    {
        var tunes = await host.FlowHooks[0].InvokeAsync(props);
        if (tunes.Count != props.Machine.LogicalCores)
        {
            throw new InvalidOperationException($"the reloaded hook returned {tunes.Count} tunes, expected {props.Machine.LogicalCores}");
        }
    }

    /// <summary>Collects until the number of live hook load contexts stops falling; returns it.</summary>
    private static int Settle()
    {
        var previous = int.MaxValue;
        for (var round = 0; round < 30; round++)
        {
            // Aggressive also decommits the GC's free regions, so RSS shows what is really kept.
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
            var count = AssemblyLoadContext.All.Count(c => c.Name?.StartsWith("hook:", StringComparison.Ordinal) == true);
            if (count == previous && round >= 3)
            {
                return count;
            }

            previous = count;
        }

        return previous;
    }
}

/// <summary>glibc's allocator, to tell memory the process holds from memory it freed but the allocator kept.</summary>
internal static partial class NativeMethods
{
    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "malloc_trim")]
    internal static partial int malloc_trim(nuint pad);
}

/// <summary>A database engine that reports empty stats: the seed flow hook only reads names and the machine.</summary>
internal sealed class StatsOnlyEngine : IDatabaseEngine
{
    public string Kind => "none";

    public string Name => "bench";

    public TableStats GetTableStats() => new();

    public Task<TableStats> GetTableStatsAsync(CancellationToken cancellationToken = default) => Task.FromResult(new TableStats());

    public ConnectionStats MeasureConnection() => new();

    public Task<ConnectionStats> MeasureConnectionAsync(CancellationToken cancellationToken = default) => Task.FromResult(new ConnectionStats());
}
