using System.Diagnostics;
using EtlFunnel.Benchmarks.Support;
using EtlFunnel.Orchestration.Config;
using EtlFunnel.Orchestration.Discovery;
using EtlFunnel.Orchestration.Machines;
using EtlFunnel.Orchestration.Planning;
using EtlFunnel.Scripting;
using EtlFunnel.Testing.Postgres;

namespace EtlFunnel.Benchmarks.Measures;

/// <summary>
/// Planning the US scenario: N schemas × 10 tables in 10 flows, the seed hooks, the 32-core profile, against the real
/// server. Timed in process from config load through discovery to the validated plan (hooks already loaded), and the
/// whole <c>etlfunnel plan</c> process with a warm hook cache for reference.
/// </summary>
internal static class PlanningMeasure
{
    public static async Task RunAsync(BenchContext ctx, ResultTable table)
    {
        var flows = Math.Min(10, ctx.PlanningSchemas);
        var schemasPerFlow = ctx.PlanningSchemas / flows;
        var cs = await ctx.CreateDatabaseAsync("bench_plan");
        var load = Stopwatch.StartNew();
        await PostgresServer.ExecuteAsync(cs, BenchContext.TenantSql(flows, schemasPerFlow, tables: 10, rows: 100));
        Log.Info($"planning: loaded {flows * schemasPerFlow} schemas × 10 tables in {load.Elapsed.TotalSeconds:F1} s");

        var work = ctx.NewWorkDir("planning");
        var config = Path.Combine(work, "flows.yaml");
        await File.WriteAllTextAsync(config, BenchContext.TenantConfig(flows, ctx.HooksDirectory));
        var machine = await MachineProfiles.LoadAsync(ctx.UsProfile);
        await using var hooks = await HookHost.LoadAsync(new HookHostOptions { HooksDirectory = ctx.HooksDirectory, CacheDirectory = Path.Combine(work, "cache"), Isolation = HookIsolation.None });
        string? Env(string name) => name == "BENCH_PG" ? cs : Environment.GetEnvironmentVariable(name);

        var times = new List<double>();
        int flowReplicas = 0, pipelineReplicas = 0;
        for (var r = 0; r < ctx.Repetitions + 1; r++)
        {
            var watch = Stopwatch.StartNew();
            var etl = await ConfigLoader.LoadAsync(config, Env);
            await using var workload = await WorkloadDiscovery.DiscoverAsync(etl);
            var plan = await new Planner(hooks).PlanAsync(workload, machine, etl.Limits);
            watch.Stop();
            flowReplicas = plan.Flows.Length;
            pipelineReplicas = plan.Flows.Sum(f => f.Pipelines.Length);
            if (r > 0)
            {
                times.Add(watch.Elapsed.TotalSeconds); // the first run warms the JIT and the server's catalog cache
            }
        }

        var median = Fmt.Median(times);
        table.Add(new ResultRow(
            $"planning: {flows * schemasPerFlow} schemas × 10 tables, 32-core profile → {Fmt.N(flowReplicas)} flow / {Fmt.N(pipelineReplicas)} pipeline replicas (discovery + hooks + validation, in process)",
            Fmt.Sec(median), "—", "—", "≤ 2 s", median <= 2.0));

        if (File.Exists(ctx.Cli))
        {
            var cli = new List<double>();
            for (var r = 0; r <= ctx.Repetitions; r++)
            {
                var psi = new ProcessStartInfo(ctx.Cli) { WorkingDirectory = work };
                foreach (var a in new[] { "plan", "--config", config, "--machine", ctx.UsProfile, "--format", "json" })
                {
                    psi.ArgumentList.Add(a);
                }

                psi.Environment["BENCH_PG"] = cs;
                psi.Environment["XDG_CACHE_HOME"] = Path.Combine(work, "xdg");
                var result = await Processes.RunAsync(psi, TimeSpan.FromMinutes(3));
                if (result.ExitCode != 0)
                {
                    throw new InvalidOperationException($"etlfunnel plan failed with exit code {result.ExitCode}:\n{result.StdErr}");
                }

                if (r > 0)
                {
                    cli.Add(result.Elapsed.TotalSeconds); // the first run fills the hook cache
                }
            }

            table.Add(new ResultRow("planning: same, whole `etlfunnel plan --format json` process (warm hook cache)", Fmt.Sec(Fmt.Median(cli)), "—", "—", "— (info)", null));
        }
    }
}
