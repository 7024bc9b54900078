using System.Text.Json;
using Elastic.Clients.Elasticsearch.Mapping;
using EtlFunnel.Destinations;
using EtlFunnel.Sync.Tests.Support;
using EtlFunnel.Testing.Elasticsearch;

namespace EtlFunnel.Sync.Tests;

/// <summary>What lands in Elasticsearch, read back through the official client: the same documents the files sink writes.</summary>
public sealed class ElasticsearchDocumentTests
{
    [Fact]
    public async Task Sources_indexed_into_elasticsearch_equal_the_rows_for_every_common_type()
    {
        await using var bed = await SyncTestBed.CreateAsync("estypes", DocumentMappingTests.AllTypes);
        await using var es = await ElasticsearchEndpoint.FromEnvironmentOrStartAsync();
        var index = ElasticsearchEndpoint.UniqueIndexName("types");
        // dynamic: false keeps every field in _source unmapped, so NaN/infinity rows are not refused by a numeric or date
        // mapping that earlier rows created (a real cluster would refuse them, and so does the test server).
        var created = await es.Client.Indices.CreateAsync(index, c => c.Mappings(m => m.Dynamic(DynamicMapping.False)));
        created.IsValidResponse.Should().BeTrue(created.DebugInformation);

        var report = await new SyncEngine().RunAsync(bed.Job("all_types", 1, 1, destination: new ElasticsearchDestination(es.Uri), index: index));

        report.Outcome.Should().Be(SyncOutcome.Succeeded);
        var indexed = await es.DocumentsAsync(index);
        indexed.Keys.Should().BeEquivalentTo(["1", "2", "3"]);
        var docs = indexed.ToDictionary(d => d.Key, d => JsonDocument.Parse(d.Value).RootElement);

        // Oracle: PostgreSQL's own row_to_json (UTC), bytea included (its hex form).
        var compared = await RowOracle.AssertAllTypesRowsEqualAsync(bed.ConnectionString, docs);
        compared.Should().BeGreaterThan(70);
        var one = docs["1"];
        one.GetProperty("num").GetRawText().Should().Be("123456789012345678901234567890.123456789012345678901234567890", "numeric keeps every digit");
        one.GetProperty("i8").GetInt64().Should().Be(long.MaxValue);
        one.GetProperty("t").GetString().Should().Be("héllo \"wörld\" \\ tab\tend ✓ 🚀");
        one.GetProperty("tstz").GetString().Should().Be("2024-02-29T11:14:15.5+00:00");
        one.GetProperty("by").GetString().Should().Be("\\x00ff10", "bytea is PostgreSQL's hex form, top-level as nested");
        one.GetProperty("u").GetString().Should().Be("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
        docs["2"].EnumerateObject().Where(p => p.Name != "id").Should().OnlyContain(p => p.Value.ValueKind == JsonValueKind.Null);
        docs["3"].GetProperty("f8").GetString().Should().Be("-Infinity");
    }

    [Fact]
    public async Task Composite_keys_become_elasticsearch_ids_by_the_escaped_join_rule()
    {
        await using var bed = await SyncTestBed.CreateAsync("esckey",
            """
            CREATE TABLE ck(a text, b int, c text, v int, PRIMARY KEY (a, b, c));
            INSERT INTO ck VALUES ('x', 1, 'y', 1), ('x|1', 2, 'y', 2), ('x', 1, 'y|z', 3), ('back\slash', 3, '', 4), ('ü', -1, 'a|b\c', 5),
                                  ('q"uote', 6, E'tab\tnew\nline', 6), ('🚀 ✓', 7, '<&>', 7);
            """);
        await using var es = await ElasticsearchEndpoint.FromEnvironmentOrStartAsync();
        var index = ElasticsearchEndpoint.UniqueIndexName("ckey");

        var report = await new SyncEngine().RunAsync(bed.Job("ck", 1, 1, destination: new ElasticsearchDestination(es.Uri), index: index));

        report.Outcome.Should().Be(SyncOutcome.Succeeded);
        var docs = await es.DocumentsAsync(index);
        docs.ToDictionary(d => JsonDocument.Parse(d.Value).RootElement.GetProperty("v").GetInt32(), d => d.Key).Should().BeEquivalentTo(new Dictionary<int, string>
        {
            [1] = "x|1|y",
            [2] = "x\\|1|2|y",
            [3] = "x|1|y\\|z",
            [4] = "back\\\\slash|3|",
            [5] = "ü|-1|a\\|b\\\\c",
            [6] = "q\"uote|6|tab\tnew\nline",
            [7] = "🚀 ✓|7|<&>",
        });
    }

    [Fact]
    public async Task Bulk_bodies_go_through_the_clients_transport_as_gzipped_ndjson_to_the_index_path()
    {
        await using var bed = await SyncTestBed.CreateAsync("eswire",
            "CREATE TABLE w(id int PRIMARY KEY, v text); INSERT INTO w SELECT g, 'v' || g FROM generate_series(1, 50) g;");
        await using var es = await ElasticsearchTestServer.StartAsync();

        var report = await new SyncEngine().RunAsync(bed.Job("w", 1, 1, destination: new ElasticsearchDestination(es.Uri), props: new Dictionary<string, object?> { ["batch_size"] = 20 }));

        report.Outcome.Should().Be(SyncOutcome.Succeeded);
        es.Requests.Where(r => r.Path.EndsWith("/_bulk", StringComparison.Ordinal)).Should().HaveCount(3)
            .And.OnlyContain(r => r.Method == "POST" && r.Path == $"/{es.AliasTargets("idx").Single()}/_bulk" && r.Status == 200
                && r.ContentEncoding == "gzip" && r.ContentType == "application/x-ndjson", "the client's default compression and bulk media type apply");
        es.Documents("idx").Should().HaveCount(50);
    }

    [Fact]
    public async Task A_value_its_dynamically_mapped_field_cannot_take_is_dead_lettered_as_a_document_parsing_exception()
    {
        await using var bed = await SyncTestBed.CreateAsync("esconflict",
            "CREATE TABLE m(id int PRIMARY KEY, amount numeric, note text); " +
            "INSERT INTO m VALUES (1, 1.5, 'a'), (2, 'NaN', 'b'), (3, 2.5, 'c');");
        await using var es = await ElasticsearchTestServer.StartAsync();

        var report = await new SyncEngine().RunAsync(bed.Job("m", 1, 1, destination: new ElasticsearchDestination(es.Uri)));

        report.Outcome.Should().Be(SyncOutcome.CompletedWithRejections);
        report.DocsIndexed.Should().Be(2);
        report.DeadLettered.Should().Be(1);
        es.Documents("idx").Keys.Should().BeEquivalentTo(["1", "3"]);
        JsonDocument.Parse(es.Mappings("idx")).RootElement.GetProperty("properties").GetProperty("amount").GetProperty("type").GetString().Should().Be("float");
        var dead = JsonDocument.Parse(File.ReadAllLines(report.DeadLetterFile!).Should().ContainSingle().Subject).RootElement;
        dead.GetProperty("id").GetString().Should().Be("2");
        dead.GetProperty("status").GetInt32().Should().Be(400);
        dead.GetProperty("reason").GetString().Should().StartWith("document_parsing_exception: ").And.Contain("failed to parse field [amount] of type [float]");
        dead.GetProperty("document").GetProperty("amount").GetString().Should().Be("NaN");
    }
}
