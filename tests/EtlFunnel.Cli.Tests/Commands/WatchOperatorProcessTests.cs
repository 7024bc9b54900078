using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using EtlFunnel.Cli.Tests.Support;
using EtlFunnel.Testing.Elasticsearch;
using EtlFunnel.Testing.Postgres;
using Npgsql;

namespace EtlFunnel.Cli.Tests.Commands;

/// <summary>What an operator meets with <c>etlfunnel watch</c> as a real process: a database up late, tables coming and going, a hooks folder that vanishes.</summary>
[Collection(SmallShopCollection.Name)]
public sealed class WatchOperatorProcessTests
{
    // A guard against a hung test, never an assertion about speed.
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(90);
    private readonly SmallShopDatabase _db;

    public WatchOperatorProcessTests(SmallShopDatabase db) => _db = db;

    private static string FlowHook(int replicas) => WatchProcessTests.FlowHook(replicas);

    [Fact]
    public async Task Watch_started_before_PostgreSQL_reports_source_unreachable_not_broken_hooks_then_syncs_once_it_is_up()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        await using var database = new TcpForwarder(new NpgsqlConnectionStringBuilder(_db.ConnectionString).Port);
        var late = new NpgsqlConnectionStringBuilder(_db.ConnectionString) { Port = database.Port, Timeout = 3 }.ConnectionString;
        var root = Directory.CreateTempSubdirectory("etlfunnel-watch-late-").FullName;
        var hooks = Directory.CreateDirectory(Path.Combine(root, "hooks")).FullName;
        var config = await WriteConfigAsync(root, late, es.Uri, "schema: shop\n        table: customers");

        using var watch = WatchProcess.Start(config, hooks);
        try
        {
            var url = new Uri((await watch.WaitForLineAsync(StatusLine(), Guard)).Groups[1].Value);
            using var http = new HttpClient { BaseAddress = url };
            await watch.WaitForLineAsync(new Regex(@"\[WRN\] Source unreachable: .*cannot read the tables of flow 'shop'.*; retrying in 1s"), Guard);
            using (var ready = await http.GetAsync("/readyz"))
            {
                ready.StatusCode.Should().Be(HttpStatusCode.ServiceUnavailable, "no plan yet");
                var body = await ready.Content.ReadAsStringAsync();
                body.Should().Contain("\"status\": \"not ready\"").And.Contain("source unreachable").And.NotContain("\"hooks\": \"broken\"");
            }

            (await http.GetAsync("/livez")).StatusCode.Should().Be(HttpStatusCode.OK);
            using (var health = await http.GetAsync("/healthz"))
            {
                (await health.Content.ReadAsStringAsync()).Should().Contain("source unreachable").And.NotContain("hooks are broken");
            }

            database.Start();
            await Eventually(async () => (await http.GetAsync("/readyz")).StatusCode == HttpStatusCode.OK, "/readyz 200 once PostgreSQL answers", watch);
            await Eventually(() => Task.FromResult(es.Exists("shop_customers") && es.Documents("shop_customers").Count == SmallShopDatabase.Customers),
                "a run that indexed every customer", watch);

            watch.Terminate();
            (await watch.WaitForExitAsync(Guard)).Should().Be(0, watch.Output);
            watch.Output.Should().NotContain("Hook reload failed");
        }
        finally
        {
            watch.KillIfRunning();
        }
    }

    [Fact]
    public async Task A_table_created_while_watching_joins_the_next_run_and_a_dropped_one_leaves_the_plan()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        var db = await (await PostgresServer.GetAsync()).CreateDatabaseAsync("watch_tables");
        await PostgresServer.ExecuteAsync(db, "CREATE TABLE public.first (id int PRIMARY KEY, v text); INSERT INTO public.first SELECT g, 'v' || g FROM generate_series(1, 200) g;");
        var root = Directory.CreateTempSubdirectory("etlfunnel-watch-tables-").FullName;
        var hooks = Directory.CreateDirectory(Path.Combine(root, "hooks")).FullName;
        var config = await WriteConfigAsync(root, db, es.Uri, "schema: public\n        index: \"{schema}_{table}\"");

        using var watch = WatchProcess.Start(config, hooks);
        try
        {
            var url = new Uri((await watch.WaitForLineAsync(StatusLine(), Guard)).Groups[1].Value);
            using var http = new HttpClient { BaseAddress = url };
            await Eventually(() => Task.FromResult(es.Exists("public_first") && es.Documents("public_first").Count == 200), "the first table indexed", watch);

            await PostgresServer.ExecuteAsync(db, "CREATE TABLE public.second (id int PRIMARY KEY, v text); INSERT INTO public.second SELECT g, 'w' || g FROM generate_series(1, 300) g;");
            await Eventually(() => Task.FromResult(es.Exists("public_second") && es.Documents("public_second").Count == 300), "the new table indexed by a later run", watch);
            await watch.WaitForLineAsync(new Regex(@"Hooks loaded: plan version \d+, \d+ change\(s\): \+\d+ added, -0 removed"), Guard);

            await PostgresServer.ExecuteAsync(db, "DROP TABLE public.first;");
            await Eventually(async () => PlanTables(await http.GetStringAsync("/plan")).SequenceEqual(["public.second"]), "/plan without the dropped table", watch);

            watch.Terminate();
            (await watch.WaitForExitAsync(Guard)).Should().Be(0, watch.Output);
        }
        finally
        {
            watch.KillIfRunning();
        }
    }

    [Fact]
    public async Task A_hooks_folder_removed_while_watching_is_a_broken_reload_on_the_last_good_plan_and_its_restore_is_picked_up()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        var root = Directory.CreateTempSubdirectory("etlfunnel-watch-gone-").FullName;
        var hooks = Directory.CreateDirectory(Path.Combine(root, "hooks")).FullName;
        await File.WriteAllTextAsync(Path.Combine(hooks, "flow-scale.csx"), FlowHook(2));
        var config = await WriteConfigAsync(root, _db.ConnectionString, es.Uri, "schema: shop\n        table: customers");

        using var watch = WatchProcess.Start(config, hooks);
        try
        {
            var url = new Uri((await watch.WaitForLineAsync(StatusLine(), Guard)).Groups[1].Value);
            using var http = new HttpClient { BaseAddress = url };
            await Eventually(async () => await PlanReplicas(http) == 2, "the first plan with 2 flow replicas", watch);

            Directory.Delete(hooks, recursive: true);
            string body = "";
            await Eventually(async () =>
            {
                using var response = await http.GetAsync("/healthz");
                body = await response.Content.ReadAsStringAsync();
                return response.StatusCode == HttpStatusCode.ServiceUnavailable && body.Contains("the hooks folder is gone", StringComparison.Ordinal);
            }, "/healthz 503: the hooks folder is gone", watch);
            (await PlanReplicas(http)).Should().Be(2, "the last good plan stays active, no silent fallback to one replica");
            using (var ready = await http.GetAsync("/readyz"))
            {
                ready.StatusCode.Should().Be(HttpStatusCode.OK);
                (await ready.Content.ReadAsStringAsync()).Should().Contain("\"status\": \"degraded\"");
            }

            Directory.CreateDirectory(hooks);
            await File.WriteAllTextAsync(Path.Combine(hooks, "flow-scale.csx"), FlowHook(3));
            await Eventually(async () => await PlanReplicas(http) == 3, "the restored folder's plan (3 flow replicas)", watch);
            await Eventually(async () => (await http.GetAsync("/healthz")).StatusCode == HttpStatusCode.OK, "/healthz 200 after the restore", watch);

            watch.Terminate();
            (await watch.WaitForExitAsync(Guard)).Should().Be(0, watch.Output);
        }
        finally
        {
            watch.KillIfRunning();
        }
    }

    private static async Task<string> WriteConfigAsync(string root, string connectionString, Uri es, string pipeline)
    {
        var config = Path.Combine(root, "flows.yaml");
        await File.WriteAllTextAsync(config, $$"""
            state: {{Path.Combine(root, "state")}}
            flows:
              - name: shop
                interval: 1s
                source: {postgres: "{{connectionString}}"}
                destination: {elasticsearch: "{{es}}"}
                pipelines:
                  - {{pipeline}}
            """);
        return config;
    }

    private static async Task<int?> PlanReplicas(HttpClient http)
    {
        using var response = await http.GetAsync("/plan");
        if (!response.IsSuccessStatusCode)
        {
            return null;
        }

        using var plan = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return plan.RootElement.GetProperty("flows").GetArrayLength();
    }

    private static List<string> PlanTables(string planJson)
    {
        using var plan = JsonDocument.Parse(planJson);
        return [.. plan.RootElement.GetProperty("flows").EnumerateArray()
            .SelectMany(f => f.GetProperty("pipelines").EnumerateArray().Select(p => p.GetProperty("table") is var t ? $"{t.GetProperty("schema").GetString()}.{t.GetProperty("name").GetString()}" : ""))
            .Distinct().Order(StringComparer.Ordinal)];
    }

    private static Task Eventually(Func<Task<bool>> condition, string what, WatchProcess watch) => WatchProcessTests.Eventually(condition, what, watch);

    private static Regex StatusLine() => WatchProcessTests.StatusLine();
}
