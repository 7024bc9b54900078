using System.Diagnostics;
using EtlFunnel.Benchmarks.Support;
using EtlFunnel.Execution.Models;
using EtlFunnel.Scripting;

namespace EtlFunnel.Benchmarks.Measures;

/// <summary>
/// What the hook worker costs (issue #16): the whole <c>etlfunnel plan</c> process with hooks in the host
/// (<c>isolation: none</c>, the old path) against hooks in the bubblewrap worker, cold and warm hook cache; one hook
/// call and one edit+reload in each mode; and the host's memory over N reloads served by the worker.
/// Both sides of every ratio are measured in this run, interleaved.
/// </summary>
internal static class IsolationMeasure
{
    public static async Task RunAsync(BenchContext ctx, ResultTable table)
    {
        await PlanAsync(ctx, table);
        await CallsAndReloadsAsync(ctx, table);

        var work = ctx.NewWorkDir("isolation-reload");
        var r = await Processes.RunChildAsync("reload", new ReloadArgs(ctx.HooksDirectory, work, ctx.ReloadCycles, Isolation: HookIsolation.Sandbox), TimeSpan.FromMinutes(20), Processes.CliRuntimeConfig(ctx.Cli));
        Log.Info($"isolation reload: {r}");
        var growth = r.GetProperty("rssGrowthBytes").GetDouble();
        table.Add(new ResultRow($"isolation: host RSS growth over {r.GetProperty("cycles").GetInt32()} edit+reload+call cycles served by the worker (compiles happen there)", Fmt.Mb(growth), "—", "—", "≤ 20 MB", growth <= 20 * 1024 * 1024));
        table.Add(new ResultRow("isolation: one edit → reload in the worker (compile + load + swap + snapshot back), median", Fmt.Ms(r.GetProperty("medianReloadMs").GetDouble()), "—", "—", "— (info)", null));
    }

    private static async Task PlanAsync(BenchContext ctx, ResultTable table)
    {
        if (!File.Exists(ctx.Cli))
        {
            throw new InvalidOperationException($"{ctx.Cli} is missing; build it first: dotnet build -c Release src/EtlFunnel.Cli (run.sh does)");
        }

        var cs = await ctx.CreateDatabaseAsync("bench_iso");
        await EtlFunnel.Testing.Postgres.PostgresServer.ExecuteAsync(cs, BenchContext.TenantSql(flows: 2, schemasPerFlow: 2, tables: 3, rows: 100));
        var work = ctx.NewWorkDir("isolation-plan");
        var configs = new Dictionary<string, string>();
        foreach (var isolation in new[] { "none", "sandbox" })
        {
            var config = Path.Combine(work, $"flows-{isolation}.yaml");
            var text = BenchContext.TenantConfig(2, ctx.HooksDirectory).Replace($"hooks: \"{ctx.HooksDirectory}\"", $"hooks: {{path: \"{ctx.HooksDirectory}\", isolation: {isolation}}}", StringComparison.Ordinal);
            await File.WriteAllTextAsync(config, text);
            configs[isolation] = config;
        }

        var runs = ctx.Smoke ? 1 : 7;
        var warmCache = Path.Combine(work, "cache-warm");
        await PlanOnceAsync(ctx, configs["none"], cs, warmCache);
        await PlanOnceAsync(ctx, configs["sandbox"], cs, warmCache);
        var times = configs.Keys.ToDictionary(k => k, _ => (Cold: new List<double>(), Warm: new List<double>()));
        for (var r = 0; r < runs; r++)
        {
            foreach (var (isolation, config) in configs)
            {
                times[isolation].Cold.Add(await PlanOnceAsync(ctx, config, cs, Path.Combine(work, $"cache-cold-{isolation}-{r}")));
                times[isolation].Warm.Add(await PlanOnceAsync(ctx, config, cs, warmCache));
            }
        }

        var warmNone = Fmt.Median(times["none"].Warm);
        var warmSandbox = Fmt.Median(times["sandbox"].Warm);
        var coldNone = Fmt.Median(times["none"].Cold);
        var coldSandbox = Fmt.Median(times["sandbox"].Cold);
        table.Add(new ResultRow($"isolation: `etlfunnel plan` whole process, warm hook cache, worker vs in-process (median of {runs})", Fmt.Ms(warmSandbox), Fmt.Ms(warmNone), Fmt.X(warmSandbox / warmNone), "≤ 1.2×", warmSandbox / warmNone <= 1.2));
        table.Add(new ResultRow($"isolation: `etlfunnel plan` whole process, cold hook cache (compile), worker vs in-process (median of {runs})", Fmt.Ms(coldSandbox), Fmt.Ms(coldNone), Fmt.X(coldSandbox / coldNone), "— (info)", null));
    }

    private static async Task<double> PlanOnceAsync(BenchContext ctx, string config, string cs, string cacheHome)
    {
        var psi = new ProcessStartInfo(ctx.Cli) { WorkingDirectory = Path.GetDirectoryName(config)! };
        foreach (var a in new[] { "plan", "--config", config, "--machine", ctx.UsProfile, "--format", "json" })
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["BENCH_PG"] = cs;
        psi.Environment["XDG_CACHE_HOME"] = cacheHome;
        var result = await Processes.RunAsync(psi, TimeSpan.FromMinutes(2));
        if (result.ExitCode != 0 || !result.StdOut.Contains("\"flows\"", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"etlfunnel plan ({Path.GetFileName(config)}) failed with exit code {result.ExitCode}:\n{result.StdErr}");
        }

        return result.Elapsed.TotalMilliseconds;
    }

    /// <summary>In this process: a warm hook call and an edit+reload, hooks in-process vs in the worker, interleaved.</summary>
    private static async Task CallsAndReloadsAsync(BenchContext ctx, ResultTable table)
    {
        var props = new OrchestratorProps
        {
            Entity = Enumerable.Range(0, 10).Select(i => new OrchestratorEntityDef { Name = $"t{i}", SourceDBConn = new StatsOnlyEngine(), DestDBConn = new StatsOnlyEngine() }).ToList(),
            Machine = new MachineInfo { LogicalCores = 32, TotalMemoryBytes = 128L << 30 },
        };
        var hosts = new Dictionary<HookIsolation, (HookHost Host, string Hooks)>();
        foreach (var isolation in new[] { HookIsolation.None, HookIsolation.Sandbox })
        {
            var work = ctx.NewWorkDir($"isolation-calls-{isolation}");
            var hooks = Path.Combine(work, "hooks");
            Directory.CreateDirectory(hooks);
            foreach (var file in Directory.GetFiles(ctx.HooksDirectory, "*.csx"))
            {
                File.Copy(file, Path.Combine(hooks, Path.GetFileName(file)));
            }

            hosts[isolation] = (await HookHost.LoadAsync(new HookHostOptions { HooksDirectory = hooks, CacheDirectory = Path.Combine(work, "cache"), Isolation = isolation }), hooks);
        }

        try
        {
            var calls = hosts.Keys.ToDictionary(k => k, _ => new List<double>());
            var reloads = hosts.Keys.ToDictionary(k => k, _ => new List<double>());
            var rounds = ctx.Smoke ? 3 : 20;
            for (var round = 0; round < rounds; round++)
            {
                foreach (var (isolation, (host, hooks)) in hosts)
                {
                    foreach (var hook in host.FlowHooks.Concat(host.PipelineHooks))
                    {
                        var watch = Stopwatch.StartNew();
                        _ = await hook.InvokeAsync(props);
                        calls[isolation].Add(watch.Elapsed.TotalMilliseconds);
                    }

                    var edited = Path.Combine(hooks, "flow-by-cores.csx");
                    await File.AppendAllTextAsync(edited, $"\n// edit {round}\n");
                    var reload = Stopwatch.StartNew();
                    var result = await host.ReloadAsync();
                    reloads[isolation].Add(reload.Elapsed.TotalMilliseconds);
                    if (!result.Succeeded)
                    {
                        throw new InvalidOperationException($"reload ({isolation}) failed: {string.Join('\n', result.Diagnostics)}");
                    }
                }
            }

            var callWorker = Fmt.Median(calls[HookIsolation.Sandbox]);
            var callLocal = Fmt.Median(calls[HookIsolation.None]);
            var reloadWorker = Fmt.Median(reloads[HookIsolation.Sandbox]);
            var reloadLocal = Fmt.Median(reloads[HookIsolation.None]);
            table.Add(new ResultRow($"isolation: one warm hook call (10 entities, stats asked over the pipe), worker vs in-process (median of {calls[HookIsolation.None].Count})", Fmt.Ms(callWorker), Fmt.Ms(callLocal), Fmt.X(callWorker / callLocal), "— (info)", null));
            table.Add(new ResultRow($"isolation: one edit → reload (compile), worker vs in-process (median of {rounds})", Fmt.Ms(reloadWorker), Fmt.Ms(reloadLocal), Fmt.X(reloadWorker / reloadLocal), "— (info)", null));
        }
        finally
        {
            foreach (var (host, _) in hosts.Values)
            {
                await host.DisposeAsync();
            }
        }
    }
}
