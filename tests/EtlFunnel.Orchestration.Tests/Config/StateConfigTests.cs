using EtlFunnel.Orchestration.Config;
using Npgsql;

namespace EtlFunnel.Orchestration.Tests.Config;

/// <summary>The <c>state:</c> key: a folder, a <c>postgres://</c> URL, or a mapping naming a PostgreSQL database.</summary>
public sealed class StateConfigTests
{
    private const string Flows = """
        flows:
          - name: shop
            source: {postgres: "Host=src;Database=shop;Username=app;Password=p"}
            destination: {files: out}
            pipelines: [{schema: public}]
        """;

    private static readonly Dictionary<string, string> Env = new() { ["STATE_PG"] = "Host=state-db;Database=etl;Username=etl;Password=x" };

    private static EtlConfig Parse(string state) => ConfigLoader.Parse(state + "\n" + Flows, "flows.yaml", "/etc/etl", n => Env.GetValueOrDefault(n));

    private static string Error(string state)
    {
        var act = () => Parse(state);
        return act.Should().Throw<ConfigException>().Which.Message;
    }

    [Fact]
    public void A_plain_path_is_still_a_folder_and_no_state_key_means_the_default_folder()
    {
        Parse("state: ./state").Should().Match<EtlConfig>(c => c.StateDirectory == "/etc/etl/state" && c.StateTable == null);
        ConfigLoader.Parse(Flows, "flows.yaml", "/etc/etl", _ => null).Should()
            .Match<EtlConfig>(c => c.StateDirectory == "/etc/etl/.etlfunnel/state" && c.StateTable == null);
    }

    [Fact]
    public void A_postgres_url_names_the_default_table_and_scope_and_keeps_the_default_folder_for_dead_letters()
    {
        var config = Parse("state: postgres://etl:p%40ss@db.internal:5433/etl?sslmode=require");

        config.StateDirectory.Should().Be("/etc/etl/.etlfunnel/state");
        config.StateTable.Should().NotBeNull();
        config.StateTable!.Table.Should().Be("etlfunnel.checkpoints");
        config.StateTable.Scope.Should().Be("default");
        config.StateTable.Location.Should().Be(new ConfigLocation("flows.yaml", 1, 8));
        var cs = new NpgsqlConnectionStringBuilder(config.StateTable.ConnectionString);
        (cs.Host, cs.Port, cs.Database, cs.Username, cs.Password, cs.SslMode).Should().Be(("db.internal", 5433, "etl", "etl", "p@ss", SslMode.Require));
        config.StateTable.ToString().Should().NotContain("p@ss");
    }

    [Fact]
    public void A_mapping_takes_a_connection_string_with_variables_a_table_and_a_scope()
    {
        var config = Parse("""
            state:
              postgres: "${STATE_PG}"
              table: ops.checkpoints
              scope: eu
            """);

        config.StateTable.Should().BeEquivalentTo(new
        {
            ConnectionString = "Host=state-db;Database=etl;Username=etl;Password=x",
            Table = "ops.checkpoints",
            Scope = "eu",
            Location = new ConfigLocation("flows.yaml", 2, 3),
        });
    }

    [Fact]
    public void Source_reuses_the_connection_of_the_named_flow() =>
        Parse("state: {source: shop}").StateTable!.ConnectionString.Should().Be("Host=src;Database=shop;Username=app;Password=p");

    [Fact]
    public void An_unknown_source_flow_names_the_line_and_lists_the_flows() =>
        Error("state: {source: shp}").Should().Be(
            "flows.yaml(1,17): state.source 'shp' is not a flow of this file; name the flow whose source database should hold the checkpoints (shop)");

    [Fact]
    public void Both_or_neither_of_postgres_and_source_is_refused_with_the_forms_that_work()
    {
        Error("state: {postgres: \"Host=h\", source: shop}").Should().StartWith("flows.yaml(1,8): 'state:' needs exactly one of 'postgres:'");
        Error("state: {table: x}").Should().StartWith("flows.yaml(1,8): 'state:' needs exactly one of 'postgres:'")
            .And.Contain("state: postgres://user:password@host:5432/db");
    }

    [Fact]
    public void An_unknown_key_in_state_suggests_the_right_one() =>
        Error("state: {postgres: \"Host=h\", tabel: x}").Should().StartWith("flows.yaml(1,29): unknown key 'tabel' in state (did you mean 'table'?)");

    [Theory]
    [InlineData("state: {postgres: \"Host=h\", table: Ops.Checkpoints}", "flows.yaml(1,36): state.table 'Ops.Checkpoints' must be 'schema.table' or 'table'")]
    [InlineData("state: {postgres: \"Host=h\", table: a.b.c}", "flows.yaml(1,36): state.table 'a.b.c' must be")]
    [InlineData("state: {postgres: \"Hots=h\"}", "flows.yaml(1,19): state.postgres is not a valid Npgsql connection string")]
    [InlineData("state: postgres:///db", "flows.yaml(1,8): state: the URL names no host")]
    [InlineData("state: postgres://u@/db", "flows.yaml(1,8): state: not a PostgreSQL URL; write postgres://user:password@host:5432/database")]
    [InlineData("state: postgres://h/db?nonsense=1", "flows.yaml(1,8): state: URL parameter 'nonsense=1' is not understood")]
    [InlineData("state: [a, b]", "flows.yaml(1,8): 'state:' must be a folder path or a mapping")]
    [InlineData("state: {postgres: \"Host=h\", scope: \"\"}", "flows.yaml(1,36): state.scope must not be empty")]
    public void Bad_state_values_name_the_line_and_say_what_to_write(string state, string expected) =>
        Error(state).Should().StartWith(expected);

    [Fact]
    public void A_url_without_port_or_password_keeps_the_npgsql_defaults()
    {
        var cs = new NpgsqlConnectionStringBuilder(PostgresUrl.ToConnectionString("postgresql://etl@[::1]/state"));

        (cs.Host, cs.Port, cs.Username, cs.Password, cs.Database).Should().Be(("::1", 5432, "etl", null, "state"));
    }
}
