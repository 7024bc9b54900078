using EtlFunnel.Cli.Tests.Support;
using EtlFunnel.Orchestration.Tests.Support;

namespace EtlFunnel.Cli.Tests.Commands;

/// <summary>A destination cluster that is down is an error at its flows.yaml line, not an exception type name.</summary>
[Collection(SmallShopCollection.Name)]
public sealed class UnreachableElasticsearchCliTests
{
    private readonly SmallShopDatabase _db;
    private readonly string _root = Directory.CreateTempSubdirectory("etlfunnel-unreach-").FullName;

    public UnreachableElasticsearchCliTests(SmallShopDatabase db) => _db = db;

    [Fact]
    public async Task Run_against_a_closed_port_names_the_config_line_and_the_cluster_and_syncs_nothing()
    {
        var config = CliRunner.WriteConfig($"""
            state: {Path.Combine(_root, "state")}
            flows:
              - name: shop
                source: {"{"}postgres: "{_db.ConnectionString}"{"}"}
                destination:
                  elasticsearch:
                    url: http://127.0.0.1:1
                    api_key: k
                pipelines:
                  - schema: shop
                    table: customers
            """);

        var result = await CliRunner.RunAsync(["run", "--config", config, "--machine", CliRunner.Region("eu"), "--hooks", CliRunner.HooksDir], SeedHooks.Both());

        result.ExitCode.Should().NotBe(0);
        result.Err.Should().Contain($"{config}(7,14): cannot reach Elasticsearch at http://127.0.0.1:1 (connection refused); check destination.elasticsearch or ETLFUNNEL_ELASTICSEARCH_URL");
        result.Err.Should().NotContain("Exception");
    }
}
