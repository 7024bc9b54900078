using System.Globalization;
using System.Text.RegularExpressions;
using EtlFunnel.Cluster.Status;
using EtlFunnel.Cluster.Tests.Support;
using EtlFunnel.Cluster.Worker;
using EtlFunnel.Testing.Prometheus;
using EtlFunnel.Testing.Elasticsearch;
using EtlFunnel.Testing.Postgres;
using Npgsql;
using Xunit.Abstractions;

namespace EtlFunnel.Cluster.Tests.EndToEnd;

/// <summary>
/// The cluster as users run it: worker processes of the built CLI on this machine, one PostgreSQL (source and cluster state in
/// two databases), the Elasticsearch test server, and <c>run --cluster</c> as another process.
/// </summary>
public sealed partial class ClusterProcessTests(ITestOutputHelper output)
{
    // Guards against a hung test, never assertions about speed (a busy 2-core machine).
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(150);
    private const int Rows = 30_000;
    private const int Replicas = 9;

    private static string PipelineHook(int replicas) => $$"""
        using System.Collections.Generic;
        using EtlFunnel.Execution.Models;

        List<OrchestratorTune> GetPipelineOrchestration(OrchestratorProps param)
        {
            var replicas = new List<OrchestratorTune>();
            foreach (var entity in param.Entity)
            {
                for (var i = 0; i < {{replicas}}; i++)
                {
                    replicas.Add(new OrchestratorTune
                    {
                        ParentEntityName = entity.Name,
                        NewEntityName = $"{entity.Name}_{i}",
                        ReplicaProps = new Dictionary<string, object> { ["replica_id"] = i, ["total_replicas"] = {{replicas}}, ["batch_size"] = 100 },
                    });
                }
            }

            return replicas;
        }
        """;

    private sealed record Setup(string Root, string Config, string Hooks, string StateConnectionString, string SourceConnectionString, Dictionary<string, string> Environment);

    private static async Task<Setup> CreateAsync(ElasticsearchTestServer es, int rows, int replicas)
    {
        var server = await PostgresServer.GetAsync();
        var source = await server.CreateDatabaseAsync("src");
        var state = await server.CreateDatabaseAsync("state");
        await PostgresServer.ExecuteAsync(source, $"""
            CREATE SCHEMA shop;
            CREATE TABLE shop.items (id integer PRIMARY KEY, name text NOT NULL);
            INSERT INTO shop.items SELECT g, 'item ' || g FROM generate_series(1, {rows}) g;
            ANALYZE shop.items;
            """);
        var root = Directory.CreateTempSubdirectory("etlfunnel-cluster-").FullName;
        var hooks = Directory.CreateDirectory(Path.Combine(root, "hooks")).FullName;
        await File.WriteAllTextAsync(Path.Combine(hooks, "split.csx"), PipelineHook(replicas));
        var config = Path.Combine(root, "flows.yaml");
        await File.WriteAllTextAsync(config, $$"""
            flows:
              - name: shop
                source: {postgres: "{{source}}"}
                destination: {elasticsearch: "{{es.Uri}}"}
                pipelines:
                  - schema: shop
                    table: items
            """);
        var environment = new Dictionary<string, string>
        {
            ["ETLFUNNEL_CLUSTER_ID"] = "test-" + Guid.NewGuid().ToString("n")[..8],
            ["ETLFUNNEL_CLUSTER_LEASE_TTL"] = "3",
        };
        return new Setup(root, config, hooks, state, source, environment);
    }

    private static EtlfunnelProcess StartWorker(Setup setup, string name, string? hooks = null, params string[] extra) => EtlfunnelProcess.Start(name, setup.Environment,
        ["worker", "--cluster", setup.StateConnectionString, "--config", setup.Config, "--hooks", hooks ?? setup.Hooks, "--name", name, "--cores", "1",
        "--lease-ttl", "3", "--probe-timeout", "2", .. extra]);

    private static EtlfunnelProcess StartRun(Setup setup) => EtlfunnelProcess.Start("run", setup.Environment,
        "run", "--config", setup.Config, "--hooks", setup.Hooks, "--cluster", setup.StateConnectionString);

    [Fact]
    public async Task A_run_spreads_over_three_workers_survives_kill_9_of_one_and_a_worker_joining_mid_run_gets_work()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        // A slow cluster keeps the run going long enough to kill a worker in the middle of it.
        es.Faults.DelayBulkCalls(TimeSpan.FromMilliseconds(250));
        var setup = await CreateAsync(es, Rows, Replicas);
        using var w1 = StartWorker(setup, "w1");
        // w2 serves /metrics, /livez and / (cluster observability, docs/cluster.md "Watching the cluster").
        using var w2 = StartWorker(setup, "w2", null, "--status-port", "0");
        using var w3 = StartWorker(setup, "w3");
        EtlfunnelProcess? w4 = null;
        var joined = JoinedLine();
        try
        {
            foreach (var w in new[] { w1, w2, w3 })
            {
                await w.WaitForLineAsync(joined, Guard);
            }

            await w2.WaitForLineAsync(StatusLine(), Guard);
            using var http = new HttpClient { BaseAddress = new Uri(StatusLine().Match(w2.Output).Groups[1].Value), Timeout = TimeSpan.FromSeconds(30) };
            (await http.GetAsync("/livez")).StatusCode.Should().Be(System.Net.HttpStatusCode.OK);
            var before = await MetricsWhenAsync(http, m => m.GetValueOrDefault("etlfunnel_cluster_members") == 3);
            before["etlfunnel_cluster_failovers_total"].Should().Be(0, "nothing failed over yet");

            using var run = StartRun(setup);
            var running = RunningLine();
            await w1.WaitForLineAsync(running, Guard);
            await w2.WaitForLineAsync(running, Guard);
            await w3.WaitForLineAsync(running, Guard);

            // cluster status (what the command and the page read) shows the three members each owning a replica, once all three
            // have one at the same moment (replicas keep being placed until the run ends).
            var settings = new ClusterSettings(setup.StateConnectionString) { ClusterId = setup.Environment["ETLFUNNEL_CLUSTER_ID"], MemberTtl = TimeSpan.FromSeconds(3) };
            var midRun = await StatusWhenAsync(settings, s => s.Members.Count(m => m.Alive) == 3 && s.ReplicasPerMember.Values.All(n => n == 1));
            midRun.Members.Select(m => m.Name).Should().BeEquivalentTo(["w1", "w2", "w3"]);
            midRun.Replicas.Should().OnlyContain(r => r.Flow == "shop" && r.Epoch >= 1 && r.Since != null);
            midRun.Failovers.Should().Be(0);
            var duringRun = await MetricsWhenAsync(http, m => m.GetValueOrDefault("etlfunnel_cluster_replicas_running") == 1
                && m.Where(kv => kv.Key.StartsWith("etlfunnel_cluster_replicas{", StringComparison.Ordinal)).Sum(kv => kv.Value) >= 1);
            duringRun.Keys.Where(k => k.StartsWith("etlfunnel_cluster_replicas{", StringComparison.Ordinal)).Should().BeEquivalentTo(
                ["etlfunnel_cluster_replicas{member=\"w1\"}", "etlfunnel_cluster_replicas{member=\"w2\"}", "etlfunnel_cluster_replicas{member=\"w3\"}"], "one series per live member");

            // kill -9 of a worker in the middle of its replica: no shutdown code, its lease simply stops being renewed.
            w1.KillHard();
            w4 = StartWorker(setup, "w4");
            await w4.WaitForLineAsync(joined, Guard);

            var exit = await run.WaitForExitAsync(Guard);
            var context = $"run:\n{run.Output}\nw1:\n{w1.Output}\nw2:\n{w2.Output}\nw3:\n{w3.Output}\nw4:\n{w4.Output}";
            output.WriteLine(context);
            await File.WriteAllTextAsync(Path.Combine(setup.Root, "processes.log"), context);
            exit.Should().Be(0, context);

            // Every row exactly once: count and ids.
            var docs = es.Documents("shop_items");
            docs.Count.Should().Be(Rows, context);
            docs.Keys.Select(id => int.Parse(id, CultureInfo.InvariantCulture)).Order().Should().Equal(Enumerable.Range(1, Rows), context);

            // The killed worker's replica was finished by another, and the joiner got work.
            run.Logged(FailoverLine()).Should().BeTrue(context);
            w4.Logged(running).Should().BeTrue("a worker joining mid-run gets waiting replicas\n" + context);
            var leases = await LeasesAsync(setup.StateConnectionString);
            leases.Should().HaveCount(Replicas);
            leases.Should().OnlyContain(l => l.Status == "succeeded", context);
            leases.Sum(l => l.Takeovers).Should().BeGreaterThanOrEqualTo(1, context);
            leases.Select(l => l.Owner.Split(' ')[0]).Distinct().Count().Should().BeGreaterThanOrEqualTo(2, context);
            run.Output.Should().MatchRegex(@"takeovers: [1-9]");

            // The failover is counted in cluster status and on the surviving workers' /metrics, which promtool accepts.
            var after = await StatusWhenAsync(settings, s => s.Replicas.Count == 0 && !s.Members.Single(m => m.Name == "w1").Alive && s.AliveMembers == 3);
            after.Failovers.Should().Be(leases.Sum(l => l.Takeovers), context);
            after.Failovers.Should().BeGreaterThanOrEqualTo(1, context);
            after.FailedOver.Should().OnlyContain(f => f.Status == "succeeded" && f.Silo != null, context);
            after.Members.Where(m => m.Alive).Select(m => m.Name).Should().BeEquivalentTo(["w2", "w3", "w4"], context);
            var final = await MetricsWhenAsync(http, m => m.GetValueOrDefault("etlfunnel_cluster_failovers_total") >= 1 && m.GetValueOrDefault("etlfunnel_cluster_members") == 3
                && m.GetValueOrDefault("etlfunnel_cluster_replicas_running", -1) == 0
                // The endpoint reads the state database once a second: wait for a reading taken after the last replica ended.
                && m.Where(kv => kv.Key.StartsWith("etlfunnel_cluster_replicas{", StringComparison.Ordinal)).All(kv => kv.Value == 0));
            final["etlfunnel_cluster_failovers_total"].Should().Be(after.Failovers);
            final.Where(kv => kv.Key.StartsWith("etlfunnel_cluster_replicas{", StringComparison.Ordinal)).Should().OnlyContain(kv => kv.Value == 0, "the run is over");
            final.Keys.Should().Contain("etlfunnel_cluster_replicas{member=\"w4\"}");
            final.Keys.Should().Contain(k => k.StartsWith("process_", StringComparison.Ordinal) || k.StartsWith("dotnet_", StringComparison.Ordinal), "the runtime metrics of watch's endpoint are there too");
            var text = await http.GetStringAsync("/metrics");
            var (promtool, promtoolOutput) = await Promtool.CheckMetricsAsync(text);
            promtool.Should().Be(0, $"promtool check metrics must accept the worker's /metrics:\n{promtoolOutput}\n{text}");
            var page = await http.GetStringAsync("/");
            page.Should().StartWith("<!DOCTYPE html>").And.Contain("<td>w4</td>").And.Contain("failovers").And.NotContain("<script");

            // The command prints the same.
            using var status = EtlfunnelProcess.Start("status", setup.Environment, "cluster", "status", "--cluster", setup.StateConnectionString);
            (await status.WaitForExitAsync(Guard)).Should().Be(0, status.Output);
            status.Output.Should().Contain("of 4 members alive").And.Contain("not seen").And.Contain($"{after.Failovers} failovers");
        }
        finally
        {
            w4?.Dispose();
        }
    }

    [Fact]
    public async Task Two_workers_read_one_point_in_time_while_a_writer_inserts_and_updates_rows_during_the_run()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        // Slow bulk calls keep the run going while the writer commits, and the replicas start one after another (1 core each).
        es.Faults.DelayBulkCalls(TimeSpan.FromMilliseconds(100));
        const int rows = 20_000;
        const int replicas = 6;
        var setup = await CreateAsync(es, rows, replicas);
        using var w1 = StartWorker(setup, "w1");
        using var w2 = StartWorker(setup, "w2");
        await w1.WaitForLineAsync(JoinedLine(), Guard);
        await w2.WaitForLineAsync(JoinedLine(), Guard);

        // The expected set is the table as it is now: EXCLUSIVE mode holds every writer off (readers and the planner's
        // ACCESS SHARE lock pass) until the planner has exported the run's snapshot, so that snapshot holds exactly this.
        await using var gate = new NpgsqlConnection(setup.SourceConnectionString);
        await gate.OpenAsync();
        await using var gateTx = await gate.BeginTransactionAsync();
        await using (var lockCmd = new NpgsqlCommand("LOCK TABLE shop.items IN EXCLUSIVE MODE", gate, gateTx))
        {
            await lockCmd.ExecuteNonQueryAsync();
        }

        using var stopWriting = new CancellationTokenSource();
        var writes = 0;
        var writer = Task.Run(async () =>
        {
            // New rows at the end of the heap and new versions of old rows (they move to the end too), committed one by one
            // for as long as the run lasts: a replica taking its own snapshot would index some of them.
            await using var conn = new NpgsqlConnection(setup.SourceConnectionString);
            await conn.OpenAsync();
            for (var i = 1; !stopWriting.IsCancellationRequested; i++)
            {
                await using var batch = new NpgsqlBatch(conn)
                {
                    BatchCommands =
                    {
                        new NpgsqlBatchCommand("INSERT INTO shop.items VALUES ($1, 'new')") { Parameters = { new() { Value = rows + i } } },
                        new NpgsqlBatchCommand("UPDATE shop.items SET name = 'changed' WHERE id = $1") { Parameters = { new() { Value = (i * 7919 % rows) + 1 } } },
                        new NpgsqlBatchCommand("DELETE FROM shop.items WHERE id = $1") { Parameters = { new() { Value = (i * 104_729 % rows) + 1 } } },
                    },
                };
                await batch.ExecuteNonQueryAsync();
                Interlocked.Increment(ref writes);
                await Task.Delay(10);
            }
        });

        using var run = StartRun(setup);
        await run.WaitForLineAsync(SnapshotLine(), Guard);
        await gateTx.CommitAsync();
        var exit = await run.WaitForExitAsync(Guard);
        await stopWriting.CancelAsync();
        await writer;
        var context = $"run:\n{run.Output}\nw1:\n{w1.Output}\nw2:\n{w2.Output}";
        output.WriteLine(context);
        exit.Should().Be(0, context);
        writes.Should().BeGreaterThan(0, "the writer committed during the run");
        (await LeasesAsync(setup.StateConnectionString)).Select(l => l.Owner.Split(' ')[0]).Distinct().Should().HaveCount(2, "both workers ran replicas\n" + context);

        // The index is the table as of the snapshot: the same ids, once each, none of the rows inserted during the run, every
        // document at its version before the run (no 'changed'), none of the rows deleted during the run missing.
        var docs = es.Documents("shop_items");
        docs.Keys.Select(id => int.Parse(id, CultureInfo.InvariantCulture)).Order().Should().Equal(Enumerable.Range(1, rows), context);
        docs.Should().OnlyContain(d => d.Value.Contains($"\"item {d.Key}\"", StringComparison.Ordinal), "no document holds a row version written after the snapshot");
    }

    [Fact]
    public async Task A_worker_with_different_hooks_refuses_the_replicas_and_the_run_says_why()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        var setup = await CreateAsync(es, 100, 2);
        var otherHooks = Directory.CreateDirectory(Path.Combine(setup.Root, "other-hooks")).FullName;
        await File.WriteAllTextAsync(Path.Combine(otherHooks, "split.csx"), PipelineHook(3));
        using var worker = StartWorker(setup, "stale", otherHooks);
        await worker.WaitForLineAsync(JoinedLine(), Guard);

        using var run = StartRun(setup);
        var exit = await run.WaitForExitAsync(Guard);
        var context = $"run:\n{run.Output}\nworker:\n{worker.Output}";
        exit.Should().Be(1, context);
        run.Output.Should().Contain("deploy the same hooks folder to every worker", context);
        worker.Logged(RunningLine()).Should().BeFalse(context);
        es.Exists("shop_items").Should().BeFalse("nothing ran");
    }

    [Fact]
    public async Task A_cluster_named_in_flows_yaml_is_used_by_worker_and_run_without_cluster_flags_and_local_runs_here()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        var setup = await CreateAsync(es, 200, 2);
        // cluster: with its own id, which wins over ETLFUNNEL_CLUSTER_ID in the processes' environment.
        var id = "yaml-" + Guid.NewGuid().ToString("n")[..8];
        await File.WriteAllTextAsync(setup.Config, $"cluster: {{postgres: \"{setup.StateConnectionString}\", id: {id}}}\n" + await File.ReadAllTextAsync(setup.Config));
        using var worker = EtlfunnelProcess.Start("w", setup.Environment,
            "worker", "--config", setup.Config, "--hooks", setup.Hooks, "--name", "w", "--cores", "1", "--lease-ttl", "3", "--probe-timeout", "2");
        await worker.WaitForLineAsync(JoinedLine(), Guard);

        using (var run = EtlfunnelProcess.Start("run", setup.Environment, "run", "--config", setup.Config, "--hooks", setup.Hooks))
        {
            var exit = await run.WaitForExitAsync(Guard);
            var context = $"run:\n{run.Output}\nworker:\n{worker.Output}";
            exit.Should().Be(0, context);
            run.Output.Should().Contain($"Running on cluster {id}").And.Contain("flows.yaml(1,10): cluster:").And.Contain("Cluster: 1 members", context);
            worker.Logged(RunningLine()).Should().BeTrue(context);
            es.Documents("shop_items").Should().HaveCount(200, context);
        }

        var ranOnWorker = Regex.Matches(worker.Output, RunningLine().ToString()).Count;
        using (var local = EtlfunnelProcess.Start("local", setup.Environment, "run", "--config", setup.Config, "--hooks", setup.Hooks, "--local"))
        {
            var exit = await local.WaitForExitAsync(Guard);
            var context = $"local:\n{local.Output}\nworker:\n{worker.Output}";
            exit.Should().Be(0, context);
            local.Output.Should().NotContain("Running on cluster").And.NotContain("Cluster: ", context);
            Regex.Matches(worker.Output, RunningLine().ToString()).Count.Should().Be(ranOnWorker, "--local runs on this machine\n" + context);
            es.Documents("shop_items").Should().HaveCount(200, context);
        }
    }

    private const string ClusterHook = """
        using System.Collections.Generic;
        using System.Linq;
        using EtlFunnel.Execution.Models;

        // One replica per core of the whole cluster, each pinned to a member's region in turn.
        List<OrchestratorTune> GetPipelineOrchestration(OrchestratorProps param)
        {
            var machines = param.ClusterMachines;
            var n = machines.Sum(m => m.LogicalCores);
            var replicas = new List<OrchestratorTune>();
            foreach (var entity in param.Entity)
            {
                for (var i = 0; i < n; i++)
                {
                    replicas.Add(new OrchestratorTune
                    {
                        ParentEntityName = entity.Name,
                        NewEntityName = $"{entity.Name}_{i}",
                        ReplicaProps = new Dictionary<string, object>
                        {
                            ["replica_id"] = i, ["total_replicas"] = n, ["cluster_region"] = machines[i % machines.Count].Region ?? "",
                        },
                    });
                }
            }

            return replicas;
        }
        """;

    [Fact]
    public async Task Hooks_see_the_cluster_members_and_pin_replicas_to_their_regions()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        var setup = await CreateAsync(es, 2_000, 1);
        await File.WriteAllTextAsync(Path.Combine(setup.Hooks, "split.csx"), ClusterHook);
        using var eu = EtlfunnelProcess.Start("eu", setup.Environment, "worker", "--cluster", setup.StateConnectionString, "--config", setup.Config,
            "--hooks", setup.Hooks, "--name", "eu", "--cores", "2", "--region", "EU", "--lease-ttl", "3", "--probe-timeout", "2");
        await eu.WaitForLineAsync(JoinedLine(), Guard);
        using var us = EtlfunnelProcess.Start("us", setup.Environment, "worker", "--cluster", setup.StateConnectionString, "--config", setup.Config,
            "--hooks", setup.Hooks, "--name", "us", "--cores", "2", "--region", "US", "--lease-ttl", "3", "--probe-timeout", "2");
        await us.WaitForLineAsync(JoinedLine(), Guard);

        using var run = StartRun(setup);
        var exit = await run.WaitForExitAsync(Guard);
        var context = $"run:\n{run.Output}\neu:\n{eu.Output}\nus:\n{us.Output}";
        exit.Should().Be(0, context);
        es.Documents("shop_items").Count.Should().Be(2_000, context);
        (await LeasesAsync(setup.StateConnectionString)).Should().HaveCount(4, "2 members × 2 cores, as the hook saw them\n" + context);
        foreach (var i in Enumerable.Range(0, 4))
        {
            var (mine, other) = i % 2 == 0 ? (eu, us) : (us, eu);
            var line = new Regex($@"Running replica shop/shop\.items_{i} ");
            mine.Logged(line).Should().BeTrue($"replica {i} is pinned to {mine.Name}'s region\n{context}");
            other.Logged(line).Should().BeFalse(context);
        }
    }

    private const string RoutingTransformer = """
        string AppliesTo => "shop/shop.items";

        // Renames a column and routes the even ids to an index of their own.
        void Transform(RowView row, DocumentWriter doc)
        {
            doc.Rename("name", "label");
            if (row.GetInt64("id") % 2 == 0)
            {
                doc.Index = "shop_items_even";
            }
        }
        """;

    [Fact]
    public async Task Two_workers_run_the_transformer_of_their_own_hooks_folder_and_the_run_counts_its_documents()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        const int rows = 3_000;
        var setup = await CreateAsync(es, rows, 4);
        await File.WriteAllTextAsync(Path.Combine(setup.Hooks, "route.csx"), RoutingTransformer);
        using var w1 = StartWorker(setup, "w1");
        using var w2 = StartWorker(setup, "w2");
        await w1.WaitForLineAsync(JoinedLine(), Guard);
        await w2.WaitForLineAsync(JoinedLine(), Guard);

        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        using var run = StartRun(setup);
        var exit = await run.WaitForExitAsync(Guard);
        var took = System.Diagnostics.Stopwatch.GetElapsedTime(started);
        var context = $"run:\n{run.Output}\nw1:\n{w1.Output}\nw2:\n{w2.Output}";
        output.WriteLine(context);
        output.WriteLine($"run --cluster with a transformer on 2 workers, {rows} rows in 4 replicas: {took.TotalSeconds:0.0} s (process start to exit)");
        exit.Should().Be(0, context);
        (await LeasesAsync(setup.StateConnectionString)).Select(l => l.Owner.Split(' ')[0]).Distinct().Should().HaveCount(2, "both workers ran replicas\n" + context);
        foreach (var worker in new[] { w1, w2 })
        {
            worker.Logged(new Regex(@"Transformers from \S+: route\.csx@")).Should().BeTrue($"{worker.Name} loaded its own hook host\n{context}");
        }

        // Every row once, transformed, in the index the transformer chose: odd ids in the flow's index, even ones routed.
        var odd = es.Documents("shop_items");
        var even = es.Documents("shop_items_even");
        odd.Keys.Select(id => int.Parse(id, CultureInfo.InvariantCulture)).Order().Should().Equal(Enumerable.Range(1, rows).Where(i => i % 2 == 1), context);
        even.Keys.Select(id => int.Parse(id, CultureInfo.InvariantCulture)).Order().Should().Equal(Enumerable.Range(1, rows).Where(i => i % 2 == 0), context);
        odd.Concat(even).Should().OnlyContain(d => d.Value.Contains($"\"label\":\"item {d.Key}\"", StringComparison.Ordinal) && !d.Value.Contains("\"name\"", StringComparison.Ordinal),
            "each document went through the transformer");
        run.Output.Should().MatchRegex(@"Transformer route\.csx@\S+: 3,000 documents", "the workers' counts are summed by the caller\n" + context);
    }

    [Fact]
    public async Task Watch_hands_its_scheduled_run_to_two_workers_and_its_status_lists_the_members()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        const int rows = 2_000;
        var setup = await CreateAsync(es, rows, 4);
        using var w1 = StartWorker(setup, "w1");
        using var w2 = StartWorker(setup, "w2");
        await w1.WaitForLineAsync(JoinedLine(), Guard);
        await w2.WaitForLineAsync(JoinedLine(), Guard);

        // The first scheduled run starts with the service; the interval keeps it the only one during the test.
        using var watch = EtlfunnelProcess.Start("watch", setup.Environment, "watch", "--config", setup.Config, "--hooks", setup.Hooks,
            "--cluster", setup.StateConnectionString, "--status-url", "http://127.0.0.1:0", "--interval", "1h");
        await watch.WaitForLineAsync(WatchStatusLine(), Guard);
        using var http = new HttpClient { BaseAddress = new Uri(WatchStatusLine().Match(watch.Output).Groups[1].Value) };
        await watch.WaitForLineAsync(WatchClusterRunLine(), Guard);
        var context = $"watch:\n{watch.Output}\nw1:\n{w1.Output}\nw2:\n{w2.Output}";
        output.WriteLine(context);

        // The run happened on the workers, every row once.
        watch.Output.Should().MatchRegex($@"Flow shop \(plan version \d+\) on cluster {setup.Environment["ETLFUNNEL_CLUSTER_ID"]}: Synced {rows} documents from 4 replicas\. Cluster: 2 members", context);
        var docs = es.Documents("shop_items");
        docs.Keys.Select(id => int.Parse(id, CultureInfo.InvariantCulture)).Order().Should().Equal(Enumerable.Range(1, rows), context);
        var leases = await LeasesAsync(setup.StateConnectionString);
        leases.Should().HaveCount(4).And.OnlyContain(l => l.Status == "succeeded", context);
        leases.Select(l => l.Owner.Split(' ')[0]).Distinct().Should().HaveCount(2, "both workers ran replicas\n" + context);

        // The status JSON and /metrics list the members (promtool accepts the endpoint).
        var health = System.Text.Json.JsonDocument.Parse(await http.GetStringAsync("/healthz")).RootElement;
        var cluster = health.GetProperty("cluster");
        cluster.GetProperty("aliveMembers").GetInt32().Should().Be(2, health.ToString());
        cluster.GetProperty("members").EnumerateArray().Select(m => m.GetProperty("name").GetString()).Should().BeEquivalentTo(["w1", "w2"], health.ToString());
        cluster.GetProperty("clusterId").GetString().Should().Be(setup.Environment["ETLFUNNEL_CLUSTER_ID"]);
        var metrics = await MetricsWhenAsync(http, m => m.GetValueOrDefault("etlfunnel_cluster_members") == 2);
        metrics.Keys.Should().Contain("etlfunnel_cluster_replicas{member=\"w1\"}").And.Contain("etlfunnel_cluster_replicas{member=\"w2\"}");
        metrics["etlfunnel_cluster_status_up"].Should().Be(1);
        metrics.Should().ContainKey("etlfunnel_runs_total", "watch's own series are there too");
        var text = await http.GetStringAsync("/metrics");
        var (promtool, promtoolOutput) = await Promtool.CheckMetricsAsync(text);
        promtool.Should().Be(0, $"promtool check metrics must accept watch's /metrics:\n{promtoolOutput}\n{text}");

        watch.Terminate();
        (await watch.WaitForExitAsync(Guard)).Should().Be(0, watch.Output);
    }

    [GeneratedRegex(@"Status page on ""?(http://127\.0\.0\.1:\d+/?)")]
    private static partial Regex WatchStatusLine();

    [GeneratedRegex(@"Flow shop \(plan version \d+\) on cluster")]
    private static partial Regex WatchClusterRunLine();

    private static async Task<List<(string Status, string Owner, int Takeovers)>> LeasesAsync(string cs)
    {
        await using var conn = new NpgsqlConnection(cs);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT status, coalesce(owner, ''), takeovers FROM etlfunnel_cluster.leases", conn);
        await using var r = await cmd.ExecuteReaderAsync();
        var rows = new List<(string, string, int)>();
        while (await r.ReadAsync())
        {
            rows.Add((r.GetString(0), r.GetString(1), r.GetInt32(2)));
        }

        return rows;
    }

    private static async Task<ClusterStatusReport> StatusWhenAsync(ClusterSettings settings, Func<ClusterStatusReport, bool> done)
    {
        await using var dataSource = ClusterData.Open(settings);
        var until = DateTime.UtcNow + Guard;
        while (true)
        {
            var report = await ClusterStatusReader.ReadAsync(dataSource, settings, CancellationToken.None);
            if (done(report))
            {
                return report;
            }

            if (DateTime.UtcNow > until)
            {
                throw new TimeoutException("cluster status never got there: " + System.Text.Json.JsonSerializer.Serialize(report));
            }

            await Task.Delay(100);
        }
    }

    /// <summary>The worker's /metrics as name{labels} → value (the flow of scrapes, until <paramref name="done"/>).</summary>
    private static async Task<Dictionary<string, double>> MetricsWhenAsync(HttpClient http, Func<Dictionary<string, double>, bool> done)
    {
        var until = DateTime.UtcNow + Guard;
        while (true)
        {
            var text = await http.GetStringAsync("/metrics");
            var samples = new Dictionary<string, double>(StringComparer.Ordinal);
            foreach (var line in text.Split('\n'))
            {
                // Keyed by name, or name{member="…"} for the per-member series (the exporter's otel_scope_* labels left out).
                if (SampleLine().Match(line) is { Success: true } m)
                {
                    var member = MemberLabel().Match(m.Groups["labels"].Value);
                    samples[m.Groups["name"].Value + (member.Success ? $"{{member=\"{member.Groups[1].Value}\"}}" : "")] =
                        double.Parse(m.Groups["value"].Value, NumberStyles.Float, CultureInfo.InvariantCulture);
                }
            }

            if (done(samples))
            {
                return samples;
            }

            if (DateTime.UtcNow > until)
            {
                throw new TimeoutException("/metrics never got there:\n" + text);
            }

            await Task.Delay(200);
        }
    }

    [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?<labels>\{[^}]*\})? (?<value>\S+)")]
    private static partial Regex SampleLine();

    [GeneratedRegex(@"[{,]member=""([^""]*)""")]
    private static partial Regex MemberLabel();

    [GeneratedRegex(@"Worker status on ""?(http://[^""\s]+/)")]
    private static partial Regex StatusLine();

    [GeneratedRegex(@"Worker \S+ joined cluster")]
    private static partial Regex JoinedLine();

    [GeneratedRegex(@"Running replica shop")]
    private static partial Regex RunningLine();

    [GeneratedRegex(@"snapshot \S+ of \S+ exported")]
    private static partial Regex SnapshotLine();

    [GeneratedRegex(@"stopped renewing the lease")]
    private static partial Regex FailoverLine();
}
