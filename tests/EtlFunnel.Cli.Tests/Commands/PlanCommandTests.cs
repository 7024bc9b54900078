using System.Text.Json;
using EtlFunnel.Cli.Tests.Support;
using EtlFunnel.Orchestration.Plans;
using EtlFunnel.Orchestration.Tests.Support;
using EtlFunnel.Scripting;

namespace EtlFunnel.Cli.Tests.Commands;

[Collection(QuickstartCollection.Name)]
public sealed class PlanCommandTests
{
    private readonly Dictionary<string, string> _env;

    public PlanCommandTests(QuickstartDatabase db) => _env = new() { ["QUICKSTART_PG"] = db.ConnectionString };

    private Task<CliResult> PlanQuickstart(string region, string format = "json") =>
        CliRunner.RunAsync(["plan", "--config", CliRunner.QuickstartConfig, "--hooks", CliRunner.HooksDir, "--machine", CliRunner.Region(region), "--format", format], SeedHooks.Both(), _env);

    [Fact]
    public async Task Quickstart_plans_differ_for_the_US_EU_and_APAC_profiles_as_the_seed_describes()
    {
        var plans = new Dictionary<string, ExecutionPlan>();
        foreach (var region in new[] { "us", "eu", "apac" })
        {
            var result = await PlanQuickstart(region);
            result.ExitCode.Should().Be(0, result.Err);
            plans[region] = PlanJson.Deserialize(result.Out);
        }

        // Flows scale with cores: 2 flows × 32 / 8 / 16 replicas.
        plans["us"].Flows.Should().HaveCount(64);
        plans["eu"].Flows.Should().HaveCount(16);
        plans["apac"].Flows.Should().HaveCount(32);
        plans["eu"].Machine.Should().BeEquivalentTo(new { Region = "EU", Cores = 8, MemoryBytes = 32L << 30 });

        // The 1.2M-row table is split in two inside every flow replica; the small ones are not.
        foreach (var (region, plan) in plans)
        {
            var shopReplicas = plan.Flows.Count(f => f.Parent == "shop");
            var orders = plan.AllPipelines().Where(x => x.Pipeline.Table.ToString() == "sales.orders").ToList();
            orders.Should().HaveCount(2 * shopReplicas, region);
            orders.Should().OnlyContain(x => x.Pipeline.Partition.Count == 2 * shopReplicas);
            plan.AllPipelines().Where(x => x.Pipeline.Table.ToString() == "catalog.products").Should().HaveCount(shopReplicas);
        }

        var diff = PlanDiff.Compare(plans["eu"], plans["apac"]);
        diff.Flows.Single(f => f.Flow == "shop").Changes.Count(c => c.Kind == ReplicaChangeKind.Appeared && !c.IsPipeline).Should().Be(8);
    }

    [Fact]
    public async Task Json_output_has_the_documented_shape_and_stdout_holds_nothing_else()
    {
        var result = await PlanQuickstart("eu");

        result.ExitCode.Should().Be(0, result.Err);
        using var doc = JsonDocument.Parse(result.Out);
        var root = doc.RootElement;
        root.GetProperty("machine").GetProperty("region").GetString().Should().Be("EU");
        root.GetProperty("machine").GetProperty("cores").GetInt32().Should().Be(8);
        root.GetProperty("machine").GetProperty("memoryBytes").GetInt64().Should().Be(32L << 30);
        var flow = root.GetProperty("flows")[0];
        flow.GetProperty("name").GetString().Should().Be("shop_core_0");
        flow.GetProperty("parent").GetString().Should().Be("shop");
        flow.GetProperty("props").GetProperty("cpu_optimized").GetBoolean().Should().BeTrue();
        flow.GetProperty("source").GetProperty("name").GetString().Should().NotContain("assword");
        var orders = flow.GetProperty("pipelines").EnumerateArray().First(p => p.GetProperty("table").GetProperty("name").GetString() == "orders");
        orders.GetProperty("table").GetProperty("schema").GetString().Should().Be("sales");
        orders.GetProperty("name").GetString().Should().Be("sales.orders_partition_0");
        orders.GetProperty("parent").GetString().Should().Be("sales.orders");
        orders.GetProperty("index").GetString().Should().Be("sales_orders");
        orders.GetProperty("key").EnumerateArray().Select(k => k.GetString()).Should().Equal("id");
        orders.GetProperty("incremental").GetString().Should().Be("created_at");
        orders.GetProperty("incrementalMargin").GetString().Should().Be("5m", "the default for a timestamp column");
        orders.GetProperty("props").GetProperty("partition_hint").GetString().Should().Be("split_0");
        var partition = orders.GetProperty("partition");
        partition.GetProperty("start").GetString().Should().Be("0");
        partition.GetProperty("end").GetString().Should().Be("1/16");
        partition.GetProperty("index").GetInt32().Should().Be(0);
        partition.GetProperty("count").GetInt32().Should().Be(16);
        result.Err.Should().Contain("[INF] Planning for EU: 8 cores");
    }

    [Fact]
    public async Task Table_output_shows_flow_replicas_pipeline_replicas_tables_partitions_and_props()
    {
        var result = await PlanQuickstart("eu", "table");

        result.ExitCode.Should().Be(0, result.Err);
        result.Out.Should().Contain("Plan for EU / eu-west: 8 cores, 32 GiB")
            .And.Contain("Flow hooks: hooks/flow-by-cores.csx; pipeline hooks: hooks/pipeline-by-rows.csx")
            .And.Contain("shop_core_7 (8/8)")
            .And.Contain("sales.orders_partition_1")
            .And.Contain("sales.orders -> sales_orders")
            .And.Contain("[15/16, 1)  #16/16")
            .And.Contain("partition_hint=split_1 data_driven=true")
            .And.Contain("shop: 8 flow replica(s), 40 pipeline replica(s) over 4 table(s) -> files");
    }

    [Fact]
    public async Task Without_hooks_every_flow_and_table_gets_one_replica()
    {
        var empty = Directory.CreateTempSubdirectory("etlfunnel-nohooks-").FullName;
        var result = await CliRunner.RunAsync(["plan", "-c", CliRunner.QuickstartConfig, "--hooks", empty, "-f", "json"], new TestHooks(), _env);

        result.ExitCode.Should().Be(0, result.Err);
        var plan = PlanJson.Deserialize(result.Out);
        plan.Flows.Select(f => f.Name).Should().Equal("shop", "crm");
        plan.AllPipelines().Should().HaveCount(6).And.OnlyContain(x => x.Pipeline.Partition.Count == 1);
    }

    [Fact]
    public async Task Hook_compile_errors_are_printed_as_the_host_formats_them_and_nothing_is_planned()
    {
        var hooks = new TestLoadedHooks(new TestHooks(), new HookDiagnostic("hooks/flow.csx", 12, 5, "error", "EF0001", "'File' is not allowed in hooks"));
        var result = await CliRunner.RunAsync(["plan", "--config", CliRunner.QuickstartConfig, "--hooks", CliRunner.HooksDir], hooks, _env);

        result.ExitCode.Should().Be(1);
        result.Err.Should().Contain("hooks/flow.csx(12,5): error EF0001: 'File' is not allowed in hooks");
        result.Out.Should().BeEmpty();
        hooks.Disposed.Should().BeTrue();
    }

    [Fact]
    public async Task Hook_warnings_are_printed_but_do_not_stop_the_plan()
    {
        var hooks = new TestLoadedHooks(new TestHooks(), new HookDiagnostic("hooks/flow.csx", 3, 1, "warning", "CS0168", "unused variable"));
        var result = await CliRunner.RunAsync(["plan", "--config", CliRunner.QuickstartConfig, "--hooks", CliRunner.HooksDir, "--format", "json"], hooks, _env);

        result.ExitCode.Should().Be(0, result.Err);
        result.Err.Should().Contain("hooks/flow.csx(3,1): warning CS0168: unused variable");
    }

    [Theory]
    [InlineData("flows:\n  - name: a\n    sorce: {postgres: \"Host=h\"}", "(3,5): unknown key 'sorce' in a flow (did you mean 'source'?)")]
    [InlineData("flows:\n  - name: a\n    source: {postgres: \"${ETLFUNNEL_TEST_UNSET_VAR}\"}", "(3,24): environment variable 'ETLFUNNEL_TEST_UNSET_VAR' (used in the source of flow 'a') is not set")]
    public async Task Config_errors_exit_2_naming_the_file_and_line(string yaml, string expected)
    {
        var path = CliRunner.WriteConfig(yaml);
        var result = await CliRunner.RunAsync(["plan", "--config", path], new TestHooks(), _env);

        result.ExitCode.Should().Be(2);
        result.Err.Should().StartWith(path + expected);
    }

    [Fact]
    public async Task A_table_without_primary_key_named_explicitly_exits_2_naming_the_pipeline_line()
    {
        var path = CliRunner.WriteConfig("flows:\n  - name: a\n    source: {postgres: \"${QUICKSTART_PG}\"}\n    destination: {files: out}\n    pipelines:\n      - {schema: crm, table: audit_log}\n");
        var result = await CliRunner.RunAsync(["plan", "--config", path, "--hooks", CliRunner.HooksDir], new TestHooks(), _env);

        result.ExitCode.Should().Be(2);
        result.Err.Should().Contain($"{path}(6,9): table 'crm.audit_log' (flow 'a') has no primary key");
    }

    [Fact]
    public async Task A_table_without_primary_key_under_a_glob_is_skipped_with_a_warning_and_the_plan_is_made()
    {
        var path = CliRunner.WriteConfig("flows:\n  - name: a\n    source: {postgres: \"${QUICKSTART_PG}\"}\n    destination: {files: out}\n    pipelines:\n      - schema: crm\n");
        var result = await CliRunner.RunAsync(["plan", "--config", path, "--hooks", CliRunner.HooksDir, "--format", "json"], new TestHooks(), _env);

        result.ExitCode.Should().Be(0, result.Err);
        result.Err.Should().Contain($"{path}(6,9): table 'crm.audit_log' (flow 'a') has no primary key, so it is skipped");
        PlanJson.Deserialize(result.Out).AllPipelines().Select(x => x.Pipeline.Table.ToString()).Should().Equal("crm.customers");
    }

    [Fact]
    public async Task ETLFUNNEL_ELASTICSEARCH_URL_is_applied_before_discovery_so_the_plan_and_hooks_describe_that_destination()
    {
        var seen = new List<string>();
        var flowHook = TestHook.Flow("hooks/dest.csx", p =>
        {
            seen.AddRange(p.Entity.Select(e => e.DestDBConn.Kind));
            return Tunes.Split(p, _ => 1);
        });
        var env = new Dictionary<string, string>(_env) { ["ETLFUNNEL_ELASTICSEARCH_URL"] = "http://etl:secret@127.0.0.1:1" };
        var result = await CliRunner.RunAsync(["plan", "--config", CliRunner.QuickstartConfig, "--hooks", CliRunner.HooksDir, "--format", "json"], new TestHooks(flowHook), env);

        result.ExitCode.Should().Be(0, result.Err);
        seen.Should().NotBeEmpty().And.OnlyContain(k => k == "elasticsearch", "hooks see the destination the run will write to");
        PlanJson.Deserialize(result.Out).Flows.Select(f => f.Destination).Should().OnlyContain(d => d.Kind == "elasticsearch" && d.Name == "http://etl:***@127.0.0.1:1/");
        result.Out.Should().NotContain("secret");
        result.Err.Should().Contain("ETLFUNNEL_ELASTICSEARCH_URL=http://etl:***@127.0.0.1:1/ overrides the destination of every flow in").And.NotContain("secret");

        var bad = await CliRunner.RunAsync(["plan", "--config", CliRunner.QuickstartConfig, "--hooks", CliRunner.HooksDir],
            new TestHooks(), new Dictionary<string, string>(_env) { ["ETLFUNNEL_ELASTICSEARCH_URL"] = "127.0.0.1:9200" });
        bad.ExitCode.Should().Be(2);
        bad.Err.Should().Contain("ETLFUNNEL_ELASTICSEARCH_URL: '127.0.0.1:9200' is not an http(s) URL");
    }

    [Fact]
    public async Task A_bad_machine_profile_exits_2_naming_its_line()
    {
        var profile = CliRunner.WriteConfig("region: EU\ncores: eight\nmemory: 32GB\n");
        var result = await CliRunner.RunAsync(["plan", "--config", CliRunner.QuickstartConfig, "--machine", profile], new TestHooks(), _env);

        result.ExitCode.Should().Be(2);
        result.Err.Should().StartWith($"{profile}(2,8): cores must be a positive whole number, not 'eight'");
    }

    [Fact]
    public async Task An_unreachable_source_exits_1_with_a_clear_message()
    {
        var path = CliRunner.WriteConfig("flows:\n  - name: a\n    source: {postgres: \"Host=127.0.0.1;Port=1;Database=x;Timeout=2\"}\n    destination: {files: out}\n    pipelines: [{}]\n");
        var result = await CliRunner.RunAsync(["plan", "--config", path, "--hooks", CliRunner.HooksDir], new TestHooks(), _env);

        result.ExitCode.Should().Be(1);
        result.Err.Should().Contain($"error: {path}(2,5): cannot read the tables of flow 'a' from 127.0.0.1:1/x");
    }

    [Fact]
    public async Task A_missing_hooks_folder_named_explicitly_exits_2()
    {
        var result = await CliRunner.RunAsync(["plan", "--config", CliRunner.QuickstartConfig, "--hooks", "/no/such/hooks"], new TestHooks(), _env);

        result.ExitCode.Should().Be(2);
        result.Err.Should().Contain("error: the hooks folder '/no/such/hooks' does not exist");
    }

    [Theory]
    [InlineData(new[] { "plan" }, "--config <FILE> is required")]
    [InlineData(new[] { "plan", "--config", "x.yaml", "--format", "xml" }, "Failed to convert 'xml'")]
    [InlineData(new[] { "plan", "--bogus" }, "Unknown option 'bogus'")]
    [InlineData(new[] { "frobnicate" }, "Unknown command 'frobnicate'")]
    public async Task Usage_errors_exit_2(string[] args, string expected)
    {
        var result = await CliRunner.RunAsync(args, new TestHooks(), _env);

        result.ExitCode.Should().Be(2);
        result.Err.Should().Contain(expected).And.Contain("--help");
    }

    [Theory]
    [InlineData(new[] { "--help" }, "plan")]
    [InlineData(new[] { "plan", "--help" }, "--machine <PROFILE>")]
    [InlineData(new[] { "hooks", "--help" }, "check")]
    [InlineData(new[] { "hooks", "check", "--help" }, "--hooks <DIR>")]
    public async Task Help_is_available_everywhere(string[] args, string expected)
    {
        var result = await CliRunner.RunAsync(args, new TestHooks(), _env);

        result.ExitCode.Should().Be(0);
        result.Out.Should().Contain("USAGE:").And.Contain(expected);
    }
}
