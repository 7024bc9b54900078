using EtlFunnel.Orchestration.Config;
using Npgsql;

namespace EtlFunnel.Orchestration.Tests.Config;

/// <summary>The <c>cluster:</c> key: the cluster's state database as a URL, a connection string, or a mapping with an id.</summary>
public sealed class ClusterConfigTests
{
    private const string Flows = """
        flows:
          - name: shop
            source: {postgres: "Host=src;Database=shop;Username=app;Password=p"}
            destination: {files: out}
            pipelines: [{schema: public}]
        """;

    private static readonly Dictionary<string, string> Env = new() { ["CLUSTER_PW"] = "s3cret" };

    private static EtlConfig Parse(string cluster) => ConfigLoader.Parse(cluster + "\n" + Flows, "flows.yaml", "/etc/etl", n => Env.GetValueOrDefault(n));

    private static string Error(string cluster)
    {
        var act = () => Parse(cluster);
        return act.Should().Throw<ConfigException>().Which.Message;
    }

    [Fact]
    public void No_cluster_key_means_runs_stay_on_this_machine()
    {
        ConfigLoader.Parse(Flows, "flows.yaml", "/etc/etl", _ => null).Cluster.Should().BeNull();
    }

    [Fact]
    public void A_postgres_url_with_a_variable_names_the_state_database_and_leaves_the_id_to_the_defaults()
    {
        var config = Parse("cluster: postgres://etl:${CLUSTER_PW}@state.internal:5433/etlstate");

        config.Cluster.Should().NotBeNull();
        config.Cluster!.ClusterId.Should().BeNull();
        config.Cluster.Location.Should().Be(new ConfigLocation("flows.yaml", 1, 10));
        var cs = new NpgsqlConnectionStringBuilder(config.Cluster.ConnectionString);
        (cs.Host, cs.Port, cs.Database, cs.Username, cs.Password).Should().Be(("state.internal", 5433, "etlstate", "etl", "s3cret"));
    }

    [Fact]
    public void A_mapping_takes_a_connection_string_and_an_id()
    {
        var config = Parse("""
            cluster:
              postgres: "Host=state;Database=etlstate;Username=etl"
              id: eu-prod
            """);

        config.Cluster!.ClusterId.Should().Be("eu-prod");
        new NpgsqlConnectionStringBuilder(config.Cluster.ConnectionString).Host.Should().Be("state");
    }

    [Theory]
    [InlineData("cluster: {id: eu}", "flows.yaml(1,10): 'cluster:' needs 'postgres:'")]
    [InlineData("cluster: {postgres: \"Host=s;Database=d\", id: \"eu prod\"}", "cluster.id 'eu prod' may only contain letters, digits")]
    [InlineData("cluster: {postgres: \"Host=s\", region: eu}", "region")]
    [InlineData("cluster: [a, b]", "'cluster:' must be a URL, a connection string or a mapping")]
    [InlineData("cluster: \"\"", "cluster")]
    public void A_bad_cluster_key_is_an_error_at_its_line(string cluster, string expected)
    {
        Error(cluster).Should().StartWith("flows.yaml(1,").And.Contain(expected);
    }
}
