using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using EtlFunnel.Benchmarks.Support;
using EtlFunnel.Testing.Elasticsearch;
using EtlFunnel.Testing.Postgres;

namespace EtlFunnel.Benchmarks.Measures;

/// <summary>
/// The cluster (docs/cluster.md), whole processes of the CLI: (1) <c>run --cluster</c> with one worker already up vs a plain
/// <c>run</c> of the same table into NDJSON files, both measured in this invocation (wall time of the run process);
/// (2) failover with the default lease settings: two workers, <c>kill -9</c> of one mid-replica, time until its replica runs
/// again on the survivor (its log line with epoch 2).
/// </summary>
internal static class ClusterMeasures
{
    private const string PipelineHook = """
        using System.Collections.Generic;
        using EtlFunnel.Execution.Models;

        List<OrchestratorTune> GetPipelineOrchestration(OrchestratorProps param)
        {
            var replicas = new List<OrchestratorTune>();
            foreach (var entity in param.Entity)
            {
                for (var i = 0; i < 2; i++)
                {
                    replicas.Add(new OrchestratorTune
                    {
                        ParentEntityName = entity.Name,
                        NewEntityName = $"{entity.Name}_{i}",
                        ReplicaProps = new Dictionary<string, object> { ["replica_id"] = i, ["total_replicas"] = 2, ["batch_size"] = 200 },
                    });
                }
            }

            return replicas;
        }
        """;

    public static async Task RunAsync(BenchContext ctx, ResultTable table)
    {
        if (!File.Exists(ctx.Cli))
        {
            throw new InvalidOperationException($"{ctx.Cli} is missing; build it first: dotnet build -c Release src/EtlFunnel.Cli (run.sh does)");
        }

        var rows = ctx.Smoke ? 20_000 : 300_000;
        var source = await ctx.CreateDatabaseAsync("bench_cluster_src");
        await PostgresServer.ExecuteAsync(source, $"""
            CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL, note text);
            INSERT INTO items SELECT g, 'item ' || g, md5(g::text) FROM generate_series(1, {rows}) g;
            """);
        await PostgresServer.ExecuteAsync(source, "VACUUM ANALYZE items");
        await OverheadAsync(ctx, table, source, rows);
        await FailoverAsync(ctx, table, source);
    }

    private static async Task OverheadAsync(BenchContext ctx, ResultTable table, string source, int rows)
    {
        var dir = ctx.NewWorkDir("cluster-overhead");
        var hooks = Directory.CreateDirectory(Path.Combine(dir, "hooks")).FullName; // empty: one replica, both sides
        var config = Path.Combine(dir, "flows.yaml");
        await File.WriteAllTextAsync(config, $$"""
            state: {{Path.Combine(dir, "state")}}
            flows:
              - name: bench
                source: {postgres: "{{source}}"}
                destination: {files: "{{Path.Combine(dir, "out")}}"}
                pipelines:
                  - schema: public
                    table: items
            """);
        var state = await ctx.CreateDatabaseAsync("bench_cluster_state");
        var env = new Dictionary<string, string> { ["ETLFUNNEL_CLUSTER_ID"] = "bench-overhead" };
        using var worker = Child.Start(ctx.Cli, env, "worker", "--cluster", state, "--config", config, "--hooks", hooks, "--name", "w1");
        await worker.WaitForAsync("joined cluster", TimeSpan.FromSeconds(120));

        var plain = new List<double>();
        var cluster = new List<double>();
        for (var r = 0; r < ctx.Repetitions + 1; r++)
        {
            // Interleaved; the first pair warms caches and is not counted.
            var p = await RunCliAsync(ctx.Cli, env, "run", "--config", config, "--hooks", hooks);
            var c = await RunCliAsync(ctx.Cli, env, "run", "--config", config, "--hooks", hooks, "--cluster", state);
            if (r > 0)
            {
                plain.Add(p);
                cluster.Add(c);
            }
        }

        var (plainS, clusterS) = (Median(plain), Median(cluster));
        var ratio = plainS / clusterS;
        table.Add(new ResultRow(
            $"cluster: `run --cluster` with 1 worker vs plain `run`, {Fmt.N(rows)} rows → files, whole run process incl. planning (median of {plain.Count})",
            $"{Fmt.Rate(rows / clusterS)} ({Fmt.Sec(clusterS)})", $"{Fmt.Rate(rows / plainS)} ({Fmt.Sec(plainS)})", Fmt.X(ratio), "≥ 0.9×", ratio >= 0.9));
        worker.Terminate();
    }

    private static async Task FailoverAsync(BenchContext ctx, ResultTable table, string source)
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        // A slow Elasticsearch keeps each replica busy well past the lease TTL.
        es.Faults.DelayBulkCalls(TimeSpan.FromMilliseconds(150));
        var dir = ctx.NewWorkDir("cluster-failover");
        var hooks = Directory.CreateDirectory(Path.Combine(dir, "hooks")).FullName;
        await File.WriteAllTextAsync(Path.Combine(hooks, "split.csx"), PipelineHook);
        var config = Path.Combine(dir, "flows.yaml");
        await File.WriteAllTextAsync(config, $$"""
            flows:
              - name: bench
                source: {postgres: "{{source}}"}
                destination: {elasticsearch: "{{es.Uri}}"}
                pipelines:
                  - schema: public
                    table: items
            """);
        var state = await ctx.CreateDatabaseAsync("bench_cluster_failover");
        var env = new Dictionary<string, string> { ["ETLFUNNEL_CLUSTER_ID"] = "bench-failover" };
        using var w1 = Child.Start(ctx.Cli, env, "worker", "--cluster", state, "--config", config, "--hooks", hooks, "--name", "w1", "--cores", "2");
        using var w2 = Child.Start(ctx.Cli, env, "worker", "--cluster", state, "--config", config, "--hooks", hooks, "--name", "w2", "--cores", "2");
        await w1.WaitForAsync("joined cluster", TimeSpan.FromSeconds(120));
        await w2.WaitForAsync("joined cluster", TimeSpan.FromSeconds(120));
        using var run = Child.Start(ctx.Cli, env, "run", "--config", config, "--hooks", hooks, "--cluster", state);
        await w1.WaitForAsync("Running replica", TimeSpan.FromSeconds(120));
        await w2.WaitForAsync("Running replica", TimeSpan.FromSeconds(120));
        var killed = Stopwatch.StartNew();
        w1.KillHard();
        await w2.WaitForAsync(", epoch 2)", TimeSpan.FromSeconds(120));
        var failover = killed.Elapsed.TotalSeconds;
        await run.WaitForExitAsync(TimeSpan.FromSeconds(300));
        table.Add(new ResultRow(
            "cluster: `kill -9` of a worker → its replica running again on the survivor (default lease TTL 10 s, caller polls every 100 ms)",
            Fmt.Sec(failover), "—", "—", "≤ 20 s", failover <= 20));
        w2.Terminate();
    }

    private static async Task<double> RunCliAsync(string cli, Dictionary<string, string> env, params string[] args)
    {
        var psi = new ProcessStartInfo(cli);
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        foreach (var (k, v) in env)
        {
            psi.Environment[k] = v;
        }

        var result = await Processes.RunAsync(psi, TimeSpan.FromMinutes(10));
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException($"etlfunnel {string.Join(' ', args)} failed ({result.ExitCode}):\n{result.StdOut}\n{result.StdErr}");
        }

        return result.Elapsed.TotalSeconds;
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted[sorted.Count / 2];
    }

    /// <summary>A long-running CLI child (worker, run) whose output is searched for lines.</summary>
    private sealed class Child : IDisposable
    {
        private readonly Process _process;
        private readonly ConcurrentQueue<string> _lines = new();

        private Child(Process process)
        {
            _process = process;
            process.OutputDataReceived += (_, e) => Add(e.Data);
            process.ErrorDataReceived += (_, e) => Add(e.Data);
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
        }

        public static Child Start(string cli, Dictionary<string, string> env, params string[] args)
        {
            var psi = new ProcessStartInfo(cli) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in args)
            {
                psi.ArgumentList.Add(a);
            }

            foreach (var (k, v) in env)
            {
                psi.Environment[k] = v;
            }

            return new Child(Process.Start(psi) ?? throw new InvalidOperationException($"could not start {cli}"));
        }

        public async Task WaitForAsync(string text, TimeSpan timeout)
        {
            var watch = Stopwatch.StartNew();
            while (!_lines.Any(l => l.Contains(text, StringComparison.Ordinal)))
            {
                if (_process.HasExited || watch.Elapsed > timeout)
                {
                    throw new InvalidOperationException($"no line with '{text}' (exited: {_process.HasExited}):\n{string.Join('\n', _lines)}");
                }

                await Task.Delay(20);
            }
        }

        public async Task WaitForExitAsync(TimeSpan timeout)
        {
            using var cts = new CancellationTokenSource(timeout);
            await _process.WaitForExitAsync(cts.Token);
        }

        public void Terminate()
        {
            if (!_process.HasExited)
            {
                using var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(CultureInfo.InvariantCulture)]);
                kill.WaitForExit();
                _process.WaitForExit(30_000);
            }
        }

        public void KillHard()
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: false);
                _process.WaitForExit();
            }
        }

        public void Dispose()
        {
            KillHard();
            _process.Dispose();
        }

        private void Add(string? line)
        {
            if (line is not null)
            {
                _lines.Enqueue(line);
            }
        }
    }
}
