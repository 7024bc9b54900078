using System.Diagnostics;
using EtlFunnel.Benchmarks.Support;
using EtlFunnel.Scripting;

namespace EtlFunnel.Benchmarks.Measures;

/// <summary>Arguments of the <c>compile</c> and <c>cache-hit</c> child modes.</summary>
internal sealed record CompileArgs(string Hook, string Work);

/// <summary>
/// Hook start-up: cold compile (the first in a process, Roslyn not yet loaded or jitted), warm compile (a second, different
/// source in the same process), disk-cache hit (a fresh process loading what the cold run cached), and the whole
/// <c>etlfunnel plan</c> process with a cold (empty) versus a warm hook cache.
/// </summary>
internal static class HookMeasures
{
    private static readonly string[] SeedHooks = ["flow-by-cores.csx", "pipeline-by-rows.csx"];

    public static async Task RunAsync(BenchContext ctx, ResultTable table)
    {
        foreach (var name in SeedHooks)
        {
            var hook = Path.Combine(ctx.HooksDirectory, name);
            var cold = new List<double>();
            var warm = new List<double>();
            var hit = new List<double>();
            for (var r = 0; r < ctx.Repetitions; r++)
            {
                var work = ctx.NewWorkDir($"hooks-{Path.GetFileNameWithoutExtension(name)}-{r}");
                var compiled = await Processes.RunChildAsync("compile", new CompileArgs(hook, work), TimeSpan.FromMinutes(5));
                cold.Add(compiled.GetProperty("coldMs").GetDouble());
                warm.Add(compiled.GetProperty("warmMs").GetDouble());
                var loaded = await Processes.RunChildAsync("cache-hit", new CompileArgs(hook, work), TimeSpan.FromMinutes(5));
                hit.Add(loaded.GetProperty("hitMs").GetDouble());
            }

            var c = Fmt.Median(cold);
            var w = Fmt.Median(warm);
            var h = Fmt.Median(hit);
            table.Add(new ResultRow($"hooks: {name} warm compile (2nd in process) vs cold compile (1st)", Fmt.Ms(w), Fmt.Ms(c), Fmt.X(w / c), "— (info)", null));
            table.Add(new ResultRow($"hooks: {name} disk-cache hit (fresh process) vs cold compile", Fmt.Ms(h), Fmt.Ms(c), Fmt.X(h / c), "— (info)", null));
        }

        await CliPlanAsync(ctx, table);
    }

    /// <summary>Whole-process <c>etlfunnel plan</c> on a small database, so hook start-up is what differs between the runs.</summary>
    private static async Task CliPlanAsync(BenchContext ctx, ResultTable table)
    {
        if (!File.Exists(ctx.Cli))
        {
            throw new InvalidOperationException($"{ctx.Cli} is missing; build it first: dotnet build -c Release src/EtlFunnel.Cli (run.sh does)");
        }

        var cs = await ctx.CreateDatabaseAsync("bench_cli");
        await EtlFunnel.Testing.Postgres.PostgresServer.ExecuteAsync(cs, BenchContext.TenantSql(flows: 2, schemasPerFlow: 2, tables: 3, rows: 100));
        var work = ctx.NewWorkDir("cli-plan");
        var config = Path.Combine(work, "flows.yaml");
        await File.WriteAllTextAsync(config, BenchContext.TenantConfig(2, ctx.HooksDirectory));

        var runs = ctx.Smoke ? 1 : 5;
        var warmCache = Path.Combine(work, "cache-warm");
        await PlanOnceAsync(ctx, config, cs, warmCache); // fills the warm cache
        var cold = new List<double>();
        var warm = new List<double>();
        for (var r = 0; r < runs; r++)
        {
            // Alternate so load from the other engineers' work hits both sides alike.
            cold.Add(await PlanOnceAsync(ctx, config, cs, Path.Combine(work, $"cache-cold-{r}")));
            warm.Add(await PlanOnceAsync(ctx, config, cs, warmCache));
        }

        var help = new List<double>();
        for (var r = 0; r < runs; r++)
        {
            var psi = new ProcessStartInfo(ctx.Cli);
            psi.ArgumentList.Add("--help");
            var result = await Processes.RunAsync(psi, TimeSpan.FromMinutes(1));
            help.Add(result.Elapsed.TotalMilliseconds);
        }

        var c = Fmt.Median(cold);
        var w = Fmt.Median(warm);
        table.Add(new ResultRow($"hooks: `etlfunnel --help` whole process (start-up floor of every command, median of {runs})", Fmt.Ms(Fmt.Median(help)), "—", "—", "— (info)", null));
        table.Add(new ResultRow($"hooks: `etlfunnel plan` whole process, warm vs cold hook cache (median of {runs})", Fmt.Ms(w), Fmt.Ms(c), Fmt.X(w / c), "≤ 0.25×", w / c <= 0.25));
    }

    private static async Task<double> PlanOnceAsync(BenchContext ctx, string config, string cs, string cacheHome)
    {
        var psi = new ProcessStartInfo(ctx.Cli) { WorkingDirectory = Path.GetDirectoryName(config)! };
        foreach (var a in new[] { "plan", "--config", config, "--hooks", ctx.HooksDirectory, "--machine", ctx.UsProfile, "--format", "json" })
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["BENCH_PG"] = cs;
        psi.Environment["XDG_CACHE_HOME"] = cacheHome;
        var result = await Processes.RunAsync(psi, TimeSpan.FromMinutes(2));
        if (result.ExitCode != 0 || !result.StdOut.Contains("\"flows\"", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"etlfunnel plan failed with exit code {result.ExitCode}:\n{result.StdErr}");
        }

        return result.Elapsed.TotalMilliseconds;
    }

    /// <summary>Child: compile the hook cold, then a variant warm, in this one process.</summary>
    public static async Task<int> CompileChildAsync(CompileArgs a)
    {
        var coldMs = await TimeLoadAsync(a.Hook, Path.Combine(a.Work, "cold"), appendix: null);
        var warmMs = await TimeLoadAsync(a.Hook, Path.Combine(a.Work, "warm"), "\n// a different source, so the warm run compiles instead of hitting the cache\n");
        Processes.Report(new { coldMs, warmMs });
        return 0;
    }

    /// <summary>Child: load the hook the compile child cached, first thing in a fresh process.</summary>
    public static async Task<int> CacheHitChildAsync(CompileArgs a)
    {
        var dir = Path.Combine(a.Work, "cold");
        var cacheFiles = Directory.GetFiles(Path.Combine(dir, "cache"));
        var watch = Stopwatch.StartNew();
        await using (var host = await LoadAsync(dir))
        {
            watch.Stop();
        }

        if (!Directory.GetFiles(Path.Combine(dir, "cache")).Order(StringComparer.Ordinal).SequenceEqual(cacheFiles.Order(StringComparer.Ordinal)))
        {
            throw new InvalidOperationException("the cache-hit run wrote to the cache: it compiled instead of loading");
        }

        Processes.Report(new { hitMs = watch.Elapsed.TotalMilliseconds });
        return 0;
    }

    private static async Task<double> TimeLoadAsync(string hook, string dir, string? appendix)
    {
        Directory.CreateDirectory(Path.Combine(dir, "hooks"));
        await File.WriteAllTextAsync(Path.Combine(dir, "hooks", Path.GetFileName(hook)), await File.ReadAllTextAsync(hook) + appendix);
        var watch = Stopwatch.StartNew();
        await using (var host = await LoadAsync(dir))
        {
            watch.Stop();
        }

        if (Directory.GetFiles(Path.Combine(dir, "cache")).Length == 0)
        {
            throw new InvalidOperationException($"compiling {hook} left nothing in the cache");
        }

        return watch.Elapsed.TotalMilliseconds;
    }

    private static async Task<HookHost> LoadAsync(string dir)
    {
        var host = await HookHost.LoadAsync(new HookHostOptions { HooksDirectory = Path.Combine(dir, "hooks"), CacheDirectory = Path.Combine(dir, "cache"), Isolation = HookIsolation.None });
        if (host.Diagnostics.Any(d => d.Severity == "error") || host.FlowHooks.Count + host.PipelineHooks.Count == 0)
        {
            throw new InvalidOperationException("the hook did not load:\n" + string.Join('\n', host.Diagnostics));
        }

        return host;
    }
}
