using EtlFunnel.Orchestration.Config;
using EtlFunnel.Orchestration.Discovery;
using EtlFunnel.Orchestration.Planning;
using EtlFunnel.Orchestration.Plans;
using EtlFunnel.Orchestration.Tests.Support;
using EtlFunnel.Testing.Postgres;

namespace EtlFunnel.Orchestration.Tests.Discovery;

/// <summary>What discovery refuses before any data moves (index names, keys, missing tables) and what it only warns about.</summary>
public sealed class TableSelectionTests
{
    private static async Task<string> Database(string sql)
    {
        var cs = await (await PostgresServer.GetAsync()).CreateDatabaseAsync("select");
        await PostgresServer.ExecuteAsync(cs, sql);
        return cs;
    }

    private static EtlConfig Config(string cs, string pipelines, string destination = "files: ./out") =>
        ConfigLoader.Parse($"""
            flows:
              - name: f
                source: {"{"}postgres: "{cs}"{"}"}
                destination: {"{"}{destination}{"}"}
                pipelines:
            {pipelines}
            """, "flows.yaml", Path.GetTempPath(), _ => null);

    private static async Task<string> Refusal(EtlConfig config)
    {
        var act = () => WorkloadDiscovery.DiscoverAsync(config);
        return (await act.Should().ThrowAsync<ConfigException>()).Which.Message;
    }

    [Fact]
    public async Task Tables_whose_default_index_names_collide_are_refused_naming_both()
    {
        var cs = await Database("CREATE SCHEMA a_b; CREATE SCHEMA a; CREATE TABLE a_b.c (id int PRIMARY KEY); CREATE TABLE a.b_c (id int PRIMARY KEY);");
        var message = await Refusal(Config(cs, "      - schema: \"a*\""));
        message.Should().StartWith("flows.yaml(6,9): tables 'a.b_c' (flow 'f' at flows.yaml(6,9)) and 'a_b.c' (flow 'f') would both write index 'a_b_c'")
            .And.Contain("give one of them its own entry above this one with a distinct 'index:'");
    }

    [Fact]
    public async Task Upper_and_lower_case_tables_are_refused_because_index_names_are_lower_cased()
    {
        var cs = await Database("CREATE TABLE public.\"UPPER\" (id int PRIMARY KEY); CREATE TABLE public.upper (id int PRIMARY KEY);");
        var message = await Refusal(Config(cs, "      - schema: public"));
        message.Should().Contain("would both write index 'public_upper' (index names are lower-cased)").And.Contain("'public.UPPER'").And.Contain("'public.upper'");

        // A narrower entry with its own index resolves it.
        await using var ok = await WorkloadDiscovery.DiscoverAsync(Config(cs, "      - {table: UPPER, index: public_upper_quoted}\n      - schema: public"));
        ok.Flows[0].Pipelines.Select(p => $"{p.Name}->{p.Index}").Should().BeEquivalentTo("public.UPPER->public_upper_quoted", "public.upper->public_upper");
    }

    [Fact]
    public async Task Two_flows_writing_one_index_of_one_destination_are_refused()
    {
        var cs = await Database("CREATE TABLE public.t (id int PRIMARY KEY);");
        var config = ConfigLoader.Parse($"""
            flows:
              - name: one
                source: {"{"}postgres: "{cs}"{"}"}
                destination: {"{"}files: ./out{"}"}
                pipelines: [{"{"}table: t, index: shared{"}"}]
              - name: two
                source: {"{"}postgres: "{cs}"{"}"}
                destination: {"{"}files: ./out/{"}"}
                pipelines: [{"{"}table: t, index: shared{"}"}]
            """, "flows.yaml", Path.GetTempPath(), _ => null);
        (await Refusal(config)).Should().StartWith("flows.yaml(9,").And.Contain("tables 'public.t' (flow 'one' at flows.yaml(5,").And.Contain("and 'public.t' (flow 'two') would both write index 'shared'");
    }

    [Theory]
    [InlineData("_{table}", "it starts with '_'")]
    [InlineData("-{table}", "it starts with '-'")]
    [InlineData("{table}#1", "it contains '#'")]
    [InlineData("{schema}:{table}", "it contains ':'")]
    [InlineData("{table}*", "it contains '*'")]
    [InlineData("a,{table}", "it contains ','")]
    [InlineData("{table} x", "it contains a space")]
    public async Task Index_names_elasticsearch_rejects_are_refused_at_plan_time(string template, string reason)
    {
        var cs = await Database("CREATE TABLE public.t (id int PRIMARY KEY);");
        (await Refusal(Config(cs, $"      - {{table: t, index: \"{template}\"}}")))
            .Should().StartWith("flows.yaml(6,9): table 'public.t' (flow 'f') would write index").And.Contain($"which Elasticsearch rejects: {reason}");
    }

    [Fact]
    public async Task A_table_name_that_makes_an_invalid_index_and_an_overlong_index_are_refused()
    {
        var longName = new string('x', 60);
        var cs = await Database($"CREATE TABLE public.\"my table\" (id int PRIMARY KEY); CREATE TABLE public.{longName} (id int PRIMARY KEY);");
        (await Refusal(Config(cs, "      - table: \"my*\""))).Should().Contain("table 'public.my table' (flow 'f') would write index 'public_my table', which Elasticsearch rejects: it contains a space");
        (await Refusal(Config(cs, "      - {table: \"x*\", index: \"{table}{table}{table}{table}{table}\"}"))).Should().Contain("it is 300 bytes long (at most 255 bytes of UTF-8)");
    }

    [Fact]
    public async Task A_key_without_a_unique_index_is_refused_naming_table_and_columns()
    {
        var cs = await Database("""
            CREATE TABLE public.t (id int PRIMARY KEY, code text NOT NULL, tenant int NOT NULL, note text);
            CREATE TABLE public.n (a int, b int); CREATE UNIQUE INDEX ON public.n (a);
            CREATE TABLE public.u (a int NOT NULL, b int); CREATE UNIQUE INDEX ON public.u (a) WHERE b > 0;
            """);
        (await Refusal(Config(cs, "      - {table: t, key: [code]}"))).Should().Be(
            "flows.yaml(6,9): key [code] of table 'public.t' (flow 'f') is not unique: no primary key or unique index/constraint covers these columns, " +
            "so rows sharing a key would overwrite each other's document; add one (ALTER TABLE public.t ADD UNIQUE (code)) or name columns that have one");
        (await Refusal(Config(cs, "      - {table: n, key: [a]}"))).Should().Contain("key [a] of table 'public.n' (flow 'f') is not unique: its unique index allows several NULLs")
            .And.Contain("ADD UNIQUE NULLS NOT DISTINCT (a) or make the columns NOT NULL)");
        (await Refusal(Config(cs, "      - {table: u, key: [a]}"))).Should().Contain("no primary key or unique index/constraint covers these columns", "a partial unique index does not make the column unique");
    }

    [Fact]
    public async Task A_key_covered_by_a_unique_constraint_the_primary_key_or_a_subset_is_accepted()
    {
        var cs = await Database("""
            CREATE TABLE public.t (id int PRIMARY KEY, code text NOT NULL UNIQUE, tenant int NOT NULL, ext int);
            CREATE TABLE public.v (a int, b int, UNIQUE NULLS NOT DISTINCT (a, b));
            """);
        await using var workload = await WorkloadDiscovery.DiscoverAsync(Config(cs, """
                  - {table: t, key: [code, tenant]}
                  - {table: v, key: [b, a]}
            """));
        workload.Flows[0].Pipelines.Select(p => string.Join(",", p.Key)).Should().Equal("code,tenant", "b,a");
        await using var byPk = await WorkloadDiscovery.DiscoverAsync(Config(cs, "      - {table: t, key: [id]}"));
        byPk.Flows[0].Pipelines.Single().Key.Should().Equal("id");
    }

    [Fact]
    public async Task A_keyless_table_under_a_glob_is_skipped_with_a_warning_and_the_others_are_planned()
    {
        var cs = await Database("CREATE SCHEMA crm; CREATE TABLE public.ok (id int PRIMARY KEY); CREATE TABLE crm.audit_log (at timestamptz, what text); CREATE TABLE crm.customers (id int PRIMARY KEY); ANALYZE;");
        await using var workload = await WorkloadDiscovery.DiscoverAsync(Config(cs, "      - schema: \"*\""));
        workload.Flows[0].Pipelines.Select(p => p.Name).Should().Equal("crm.customers", "public.ok");
        workload.Warnings.Should().ContainSingle().Which.Should().Be(
            "flows.yaml(6,9): table 'crm.audit_log' (flow 'f') has no primary key, so it is skipped; to sync it, add a primary key to it, " +
            "or 'key: [column, ...]' naming columns with a unique index to a narrower entry above this one just for this table");
    }

    [Fact]
    public async Task A_keyless_table_named_explicitly_is_refused()
    {
        var cs = await Database("CREATE TABLE public.ok (id int PRIMARY KEY); CREATE TABLE public.nokey (a int, b text);");
        (await Refusal(Config(cs, "      - {schema: public, table: nokey}"))).Should().StartWith(
            "flows.yaml(6,9): table 'public.nokey' (flow 'f') has no primary key; add a primary key to it, or 'key: [column, ...]' naming columns with a unique index to this pipeline entry");
    }

    [Fact]
    public async Task An_entry_without_glob_characters_that_matches_no_table_is_an_error_with_did_you_mean()
    {
        var cs = await Database("CREATE SCHEMA sales; CREATE TABLE sales.orders (id int PRIMARY KEY); CREATE TABLE sales.\"Refunds\" (id int PRIMARY KEY); ANALYZE;");
        (await Refusal(Config(cs, "      - {schema: sales, table: ordrs}"))).Should().StartWith(
            "flows.yaml(6,9): table 'sales.ordrs' of flow 'f' does not exist in").And.Contain("(did you mean 'sales.orders'?)");
        (await Refusal(Config(cs, "      - {schema: sales, table: refunds}"))).Should().Contain("(did you mean 'sales.Refunds'?); names are case-sensitive");
        (await Refusal(Config(cs, "      - {schema: nothing, table: here}"))).Should().NotContain("did you mean");

        // With a glob an empty match is allowed (a table that may be absent), and only warned about.
        await using var globbed = await WorkloadDiscovery.DiscoverAsync(Config(cs, "      - {schema: sales, table: \"ordrs*\"}\n      - {schema: sales}"));
        globbed.Warnings.Should().ContainSingle().Which.Should().Contain("pipeline entry schema 'sales' table 'ordrs*' of flow 'f' matches no table");
    }

    [Fact]
    public async Task An_entry_shadowed_by_an_earlier_one_is_a_warning_naming_the_winner()
    {
        var cs = await Database("CREATE TABLE public.t (id int PRIMARY KEY); ANALYZE;");
        await using var workload = await WorkloadDiscovery.DiscoverAsync(Config(cs, "      - schema: public\n      - {table: t, index: never}"));
        workload.Warnings.Should().ContainSingle().Which.Should().Be(
            "flows.yaml(7,9): pipeline entry schema 'public' table 't' of flow 'f' configures no table: the entry at flows.yaml(6,9) matches its tables first (e.g. 'public.t'); move this entry above it");
    }

    [Fact]
    public async Task Dotted_and_quoted_identifiers_stay_distinct_entities_and_typed_in_the_plan()
    {
        var cs = await Database(""""
            CREATE SCHEMA "a.b"; CREATE SCHEMA a;
            CREATE TABLE "a.b".c (id int PRIMARY KEY, v text); CREATE TABLE a."b.c" (id int PRIMARY KEY);
            CREATE TABLE a."say ""hi""" (id int PRIMARY KEY);
            """");
        await using var workload = await WorkloadDiscovery.DiscoverAsync(Config(cs, """
                  - {schema: "a.b", table: c, key: [id]}
                  - {schema: a, table: "say*", index: hi}
                  - {schema: "a*"}
            """));
        workload.Flows[0].Pipelines.Select(p => p.Name).Should().BeEquivalentTo("\"a.b\".c", "a.\"b.c\"", "a.\"say \"\"hi\"\"\"");

        var plan = await new Planner(new TestHooks()).PlanAsync(workload, Workloads.Machine(cores: 2));
        var back = PlanJson.Deserialize(PlanJson.Serialize(plan));
        back.AllPipelines().Select(x => (x.Pipeline.Table.Schema, x.Pipeline.Table.Name, x.Pipeline.Index)).Should().BeEquivalentTo(
            [("a.b", "c", "a.b_c"), ("a", "b.c", "a_b.c"), ("a", "say \"hi\"", "hi")]);
        PlanJson.Serialize(plan).Should().Contain("\"table\": {\n").And.Contain("\"schema\": \"a.b\",").And.Contain("\"name\": \"b.c\"");
    }

    [Fact]
    public async Task The_incremental_column_gets_its_types_default_margin_or_a_configured_one_that_fits()
    {
        var cs = await Database("CREATE TABLE public.t (id int PRIMARY KEY, at timestamptz, version bigint, name text, flag bool, tod time);");
        async Task<IncrementalMargin?> Margin(string entry)
        {
            await using var w = await WorkloadDiscovery.DiscoverAsync(Config(cs, "      - " + entry));
            return w.Flows[0].Pipelines.Single().IncrementalMargin;
        }

        (await Margin("{table: t, incremental: at}")).Should().Be(new IncrementalMargin { Time = TimeSpan.FromMinutes(5) });
        (await Margin("{table: t, incremental: version}")).Should().Be(new IncrementalMargin { Amount = 1000 });
        (await Margin("{table: t, incremental: name}")).Should().BeNull();
        (await Margin("{table: t, incremental: at, incremental_margin: 1h30m}"))!.Time.Should().Be(TimeSpan.FromMinutes(90));
        (await Margin("{table: t, incremental: at, incremental_margin: 0}"))!.Time.Should().Be(TimeSpan.Zero);
        (await Margin("{table: t, incremental: version, incremental_margin: 10}"))!.Amount.Should().Be(10);

        (await Refusal(Config(cs, "      - {table: t, incremental: at, incremental_margin: 100}"))).Should()
            .StartWith("flows.yaml(6,57): incremental column 'at' of table 'public.t' (flow 'f') is timestamp with time zone, so 'incremental_margin:' must be a duration such as 5m, 90s or 1h30m, not '100'");
        (await Refusal(Config(cs, "      - {table: t, incremental: version, incremental_margin: 5m}"))).Should().Contain("so 'incremental_margin:' must be a number such as 1000, not '5m'");
        (await Refusal(Config(cs, "      - {table: t, incremental: name, incremental_margin: 5}"))).Should().Contain("a margin applies only to date/time and numeric columns");
        (await Refusal(Config(cs, "      - {table: t, incremental: flag}"))).Should().Contain("has type boolean, for which no watermark is kept");
        (await Refusal(Config(cs, "      - {table: t, incremental: tod}"))).Should().Contain("has type time without time zone, for which no watermark is kept");
    }
}
