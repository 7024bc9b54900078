using EtlFunnel.Orchestration.Config;
using EtlFunnel.Orchestration.Discovery;
using EtlFunnel.Orchestration.Tests.Support;
using EtlFunnel.Testing.Postgres;

namespace EtlFunnel.Orchestration.Tests.Discovery;

[Collection(QuickstartCollection.Name)]
public sealed class WorkloadDiscoveryTests
{
    private readonly QuickstartDatabase _db;

    public WorkloadDiscoveryTests(QuickstartDatabase db) => _db = db;

    private async Task<Workload> DiscoverQuickstart()
    {
        var config = await ConfigLoader.LoadAsync(Repo.Path("samples", "quickstart", "flows.yaml"), n => n == "QUICKSTART_PG" ? _db.ConnectionString : null);
        return await WorkloadDiscovery.DiscoverAsync(config);
    }

    private static async Task<string> Database(string sql)
    {
        var cs = await (await PostgresServer.GetAsync()).CreateDatabaseAsync("disc");
        await PostgresServer.ExecuteAsync(cs, sql);
        return cs;
    }

    private static EtlConfig Config(string cs, string pipelines, string destination = "files: ./out", string extra = "") =>
        ConfigLoader.Parse($"""
            flows:
              - name: f
                source: {"{"}postgres: "{cs}"{"}"}
                destination: {"{"}{destination}{"}"}
            {extra}    pipelines:
            {pipelines}
            """, "flows.yaml", Path.GetTempPath(), _ => null);

    [Fact]
    public async Task Quickstart_tables_are_discovered_with_row_estimates_keys_and_partitions()
    {
        await using var workload = await DiscoverQuickstart();

        workload.Warnings.Should().BeEmpty();
        var shop = workload.Flows[0];
        shop.Pipelines.Select(p => p.Name).Should().Equal("catalog.categories", "catalog.products", "sales.events", "sales.orders");
        var orders = shop.Pipelines.Single(p => p.Name == "sales.orders");
        orders.Table.Rows.Should().BeCloseTo(1_200_000, 60_000);
        orders.Key.Should().Equal("id");
        orders.Incremental.Should().Be("created_at");
        orders.Index.Should().Be("sales_orders");
        var events = shop.Pipelines.Single(p => p.Name == "sales.events");
        events.Table.PartitionCount.Should().Be(4);
        events.Table.Rows.Should().BeCloseTo(200_000, 10_000);
        events.Key.Should().Equal("id", "at");
        (await events.Entity.SourceDBConn.GetTableStatsAsync()).Should().BeEquivalentTo(new { TableCount = 1, PartitionCount = 4, RowsAreExact = false });

        var flowStats = shop.Entity.SourceDBConn.GetTableStats();
        flowStats.TableCount.Should().Be(4);
        flowStats.PartitionCount.Should().Be(4);
        flowStats.TotalRows.Should().Be(shop.Pipelines.Sum(p => p.Table.Rows));
        flowStats.TotalBytes.Should().BeGreaterThan(orders.Table.Bytes);
        shop.Entity.SourceDBConn.Name.Should().NotContain("Password").And.EndWith("/" + new Npgsql.NpgsqlConnectionStringBuilder(_db.ConnectionString).Database);

        var crm = workload.Flows[1];
        crm.Pipelines.Select(p => (p.Name, string.Join(",", p.Key))).Should().Equal(("crm.audit_log", "customer_id,at"), ("crm.customers", "id"));
    }

    [Fact]
    public async Task Connection_latency_is_measured_with_real_round_trips()
    {
        await using var workload = await DiscoverQuickstart();
        var stats = await workload.Flows[0].Pipelines[0].Entity.SourceDBConn.MeasureConnectionAsync();
        stats.RoundTripLatency.Should().BePositive();
    }

    [Fact]
    public async Task The_checkpoint_table_beside_the_data_is_not_planned_by_a_wildcard_schema()
    {
        var cs = await Database("CREATE SCHEMA etlfunnel; CREATE TABLE etlfunnel.checkpoints (scope text, flow text, replica text, state jsonb, PRIMARY KEY (scope, flow, replica)); CREATE TABLE public.items (id int PRIMARY KEY);");
        var yaml = $"""
            state: {"{"}source: f{"}"}
            flows:
              - name: f
                source: {"{"}postgres: "{cs}"{"}"}
                destination: {"{"}files: ./out{"}"}
                pipelines:
                  - schema: "*"
            """;
        await using var withState = await WorkloadDiscovery.DiscoverAsync(ConfigLoader.Parse(yaml, "flows.yaml", Path.GetTempPath(), _ => null));
        withState.Flows[0].Pipelines.Select(p => p.Name).Should().Equal("public.items");

        // Without a table store in that database the same table is ordinary data and is planned.
        await using var without = await WorkloadDiscovery.DiscoverAsync(ConfigLoader.Parse(yaml[(yaml.IndexOf('\n') + 1)..], "flows.yaml", Path.GetTempPath(), _ => null));
        without.Flows[0].Pipelines.Select(p => p.Name).Should().Equal("etlfunnel.checkpoints", "public.items");
    }

    [Fact]
    public async Task An_explicit_key_makes_a_table_without_primary_key_plannable_and_must_name_real_columns()
    {
        var cs = await Database("CREATE TABLE public.nokey (a int NOT NULL, b text NOT NULL, UNIQUE (a, b));");
        await using (var ok = await WorkloadDiscovery.DiscoverAsync(Config(cs, "      - {schema: public, key: [a, b]}")))
        {
            ok.Flows[0].Pipelines.Single().Key.Should().Equal("a", "b");
        }

        var act = () => WorkloadDiscovery.DiscoverAsync(Config(cs, "      - {schema: public, key: [a, c]}"));
        (await act.Should().ThrowAsync<ConfigException>()).Which.Message.Should().StartWith("flows.yaml(6,9): column 'c' does not exist in table 'public.nokey' (flow 'f'); its columns are: a, b");
    }

    [Fact]
    public async Task Exact_counts_count_rows_where_configured_and_estimates_serve_the_rest()
    {
        var cs = await Database("""
            CREATE TABLE public.a (id int PRIMARY KEY); INSERT INTO public.a SELECT generate_series(1, 1234);
            CREATE TABLE public.b (id int PRIMARY KEY); INSERT INTO public.b SELECT generate_series(1, 10);
            """);
        await using var workload = await WorkloadDiscovery.DiscoverAsync(Config(cs, "      - {table: a, exact_counts: true}\n      - {table: b}"));
        var a = workload.Flows[0].Pipelines.Single(p => p.Name == "public.a");
        a.Table.Rows.Should().Be(1234);
        a.Table.RowsAreExact.Should().BeTrue();
        var b = workload.Flows[0].Pipelines.Single(p => p.Name == "public.b");
        b.Table.RowsAreExact.Should().BeFalse();
        workload.Warnings.Should().ContainSingle().Which.Should().Be("flows.yaml(7,9): table 'public.b' has never been analyzed, so its row estimate is 0; run ANALYZE on it or set 'exact_counts: true'");
    }

    [Fact]
    public async Task The_first_matching_pipeline_entry_configures_a_table_and_an_entry_matching_nothing_is_a_warning()
    {
        var cs = await Database("""
            CREATE SCHEMA tenant_1; CREATE SCHEMA tenant_2; CREATE SCHEMA other;
            CREATE TABLE tenant_1.users (id int PRIMARY KEY); CREATE TABLE tenant_2.users (id int PRIMARY KEY);
            CREATE TABLE tenant_2.orders (id int PRIMARY KEY); CREATE TABLE other.x (id int PRIMARY KEY);
            ANALYZE;
            """);
        await using var workload = await WorkloadDiscovery.DiscoverAsync(Config(cs, """
                  - {schema: "tenant_?", table: users, index: "users_{schema}"}
                  - {schema: "tenant_*", index: "{flow}-{table}"}
                  - {schema: nothing_here}
            """));
        workload.Flows[0].Pipelines.Select(p => $"{p.Name}->{p.Index}").Should().Equal("tenant_1.users->users_tenant_1", "tenant_2.orders->f-orders", "tenant_2.users->users_tenant_2");
        workload.Warnings.Should().ContainSingle().Which.Should().StartWith("flows.yaml(8,9): pipeline entry schema 'nothing_here' table '*' of flow 'f' matches no table");
    }

    [Fact]
    public async Task Auxiliary_connections_are_visible_to_hooks_with_their_own_stats()
    {
        var main = await Database("CREATE TABLE public.t (id int PRIMARY KEY); ANALYZE;");
        var aux = await Database("CREATE TABLE public.r1 (id int PRIMARY KEY); CREATE TABLE public.r2 (id int PRIMARY KEY); ANALYZE;");
        await using var workload = await WorkloadDiscovery.DiscoverAsync(Config(main, "      - schema: public", extra: $"    auxiliary: {{ref: \"{aux}\"}}\n"));
        var map = workload.Flows[0].Pipelines[0].Entity.AuxiliaryDBConnMap;
        map.Should().ContainKey("ref");
        (await map["ref"].GetTableStatsAsync()).TableCount.Should().Be(2);
        workload.Flows[0].Entity.AuxiliaryDBConnMap.Should().ContainKey("ref");
    }

    [Fact]
    public async Task An_unreachable_source_is_a_clear_error_naming_the_flow()
    {
        var act = () => WorkloadDiscovery.DiscoverAsync(Config("Host=127.0.0.1;Port=1;Database=x;Timeout=2", "      - schema: public"));
        (await act.Should().ThrowAsync<DiscoveryException>()).Which.Message.Should().StartWith("flows.yaml(2,5): cannot read the tables of flow 'f' from 127.0.0.1:1/x:");
    }

    [Fact]
    public async Task An_unreachable_elasticsearch_gives_zero_stats_and_fails_only_when_latency_is_asked()
    {
        var cs = await Database("CREATE TABLE public.t (id int PRIMARY KEY); ANALYZE;");
        await using var workload = await WorkloadDiscovery.DiscoverAsync(Config(cs, "      - schema: public", "elasticsearch: \"http://127.0.0.1:1\""));
        var dest = workload.Flows[0].Pipelines[0].Entity.DestDBConn;
        dest.Kind.Should().Be("elasticsearch");
        (await dest.GetTableStatsAsync()).Should().BeEquivalentTo(new { TotalRows = 0L, TotalBytes = 0L, TableCount = 0 });
        var act = () => dest.MeasureConnectionAsync();
        (await act.Should().ThrowAsync<InvalidOperationException>()).Which.Message.Should().StartWith("Elasticsearch at http://127.0.0.1:1 did not answer a ping");
    }

    [Fact]
    public async Task The_files_destination_reports_bytes_already_written_per_index()
    {
        var cs = await Database("CREATE TABLE public.t (id int PRIMARY KEY); CREATE TABLE public.u (id int PRIMARY KEY); ANALYZE;");
        var dir = Directory.CreateTempSubdirectory("etlfunnel-files-").FullName;
        await File.WriteAllTextAsync(Path.Combine(dir, "public_t.ndjson"), new string('x', 100));
        await File.WriteAllTextAsync(Path.Combine(dir, "public_t.3.ndjson"), new string('x', 20));
        await File.WriteAllTextAsync(Path.Combine(dir, "public_tt.ndjson"), new string('x', 7));
        await using var workload = await WorkloadDiscovery.DiscoverAsync(Config(cs, "      - schema: public", $"files: \"{dir}\""));
        var t = workload.Flows[0].Pipelines.Single(p => p.Name == "public.t").Entity.DestDBConn;
        t.GetTableStats().Should().BeEquivalentTo(new { TotalBytes = 120L, TableCount = 1 });
        t.MeasureConnection().RoundTripLatency.Should().Be(TimeSpan.Zero);
        workload.Flows[0].Entity.DestDBConn.GetTableStats().TotalBytes.Should().Be(120);
    }
}
