using EtlFunnel.Cli.Tests.Support;
using EtlFunnel.Orchestration.Tests.Support;
using EtlFunnel.Testing.Elasticsearch;

namespace EtlFunnel.Cli.Tests.Commands;

/// <summary><c>destination: {elasticsearch: ..., compression: false}</c> from flows.yaml to the bulk requests on the wire.</summary>
[Collection(SmallShopCollection.Name)]
public sealed class CompressionCliTests
{
    private readonly SmallShopDatabase _db;
    private readonly string _root = Directory.CreateTempSubdirectory("etlfunnel-compress-").FullName;

    public CompressionCliTests(SmallShopDatabase db) => _db = db;

    private string Config(string destination) => CliRunner.WriteConfig($"""
        state: {Path.Combine(_root, "state")}
        flows:
          - name: shop
            source: {"{"}postgres: "{_db.ConnectionString}"{"}"}
            destination: {"{"}{destination}{"}"}
            pipelines:
              - schema: shop
                table: customers
        """);

    private static Task<CliResult> RunAsync(string config, IReadOnlyDictionary<string, string>? env = null) =>
        CliRunner.RunAsync(["run", "--config", config, "--machine", CliRunner.Region("eu"), "--hooks", CliRunner.HooksDir], SeedHooks.Both(), env);

    private static IReadOnlyList<RecordedRequest> Bulks(ElasticsearchTestServer es) =>
        [.. es.Requests.Where(r => r.Path.EndsWith("/_bulk", StringComparison.Ordinal))];

    [Fact]
    public async Task Compression_false_in_flows_yaml_sends_plain_ndjson_bulk_bodies_and_indexes_every_row()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();

        var result = await RunAsync(Config($"elasticsearch: \"{es.Uri}\", compression: false"));

        result.ExitCode.Should().Be(0, result.Err);
        es.Documents("shop_customers").Should().HaveCount(SmallShopDatabase.Customers);
        Bulks(es).Should().NotBeEmpty()
            .And.OnlyContain(r => r.Status == 200 && r.ContentEncoding == null && r.ContentType == "application/x-ndjson", "compression: false turns the client's gzip off");
    }

    [Fact]
    public async Task Without_the_key_bulk_bodies_stay_gzipped()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();

        var result = await RunAsync(Config($"elasticsearch: \"{es.Uri}\""));

        result.ExitCode.Should().Be(0, result.Err);
        es.Documents("shop_customers").Should().HaveCount(SmallShopDatabase.Customers);
        Bulks(es).Should().NotBeEmpty().And.OnlyContain(r => r.ContentEncoding == "gzip", "compression defaults to the client's default");
    }

    [Fact]
    public async Task ETLFUNNEL_ELASTICSEARCH_URL_replaces_the_cluster_but_keeps_the_flows_compression_setting()
    {
        await using var configured = await ElasticsearchTestServer.StartAsync();
        await using var overridden = await ElasticsearchTestServer.StartAsync();

        var result = await RunAsync(
            Config($"elasticsearch: \"{configured.Uri}\", compression: false"),
            new Dictionary<string, string> { ["ETLFUNNEL_ELASTICSEARCH_URL"] = overridden.Uri.ToString() });

        result.ExitCode.Should().Be(0, result.Err);
        Bulks(configured).Should().BeEmpty("ETLFUNNEL_ELASTICSEARCH_URL sends every flow elsewhere");
        overridden.Documents("shop_customers").Should().HaveCount(SmallShopDatabase.Customers);
        Bulks(overridden).Should().NotBeEmpty().And.OnlyContain(r => r.ContentEncoding == null);
    }
}
