using System.Text.Json;
using Elastic.Transport;
using EtlFunnel.Testing.Elasticsearch;

namespace EtlFunnel.Sync.Tests.Fixtures;

/// <summary>The test server's <c>_bulk</c> path: dynamic mapping conflicts, <c>dynamic</c> settings and malformed bodies, as Elasticsearch answers them.</summary>
public sealed class ElasticsearchTestServerBulkTests
{
    private static async Task<(int Status, JsonElement Body)> PostBulkAsync(ElasticsearchTestServer es, string ndjson)
    {
        var client = es.CreateClient();
        var response = await client.Transport.RequestAsync<StringResponse>(
            new EndpointPath(Elastic.Transport.HttpMethod.POST, "/_bulk"), PostData.String(ndjson), null,
            new RequestConfiguration { ContentType = "application/x-ndjson" });
        return (response.ApiCallDetails.HttpStatusCode ?? 0, JsonDocument.Parse(response.Body).RootElement);
    }

    private static IEnumerable<(string Id, int Status, string? ErrorType, string? Reason)> Items(JsonElement body) =>
        body.GetProperty("items").EnumerateArray().Select(i => i.EnumerateObject().Single().Value).Select(i => (
            i.GetProperty("_id").GetString()!,
            i.GetProperty("status").GetInt32(),
            i.TryGetProperty("error", out var e) ? e.GetProperty("type").GetString() : null,
            i.TryGetProperty("error", out var r) ? r.GetProperty("reason").GetString() : null));

    [Fact]
    public async Task Values_a_dynamically_mapped_field_cannot_take_fail_alone_and_leave_the_mapping_as_it_was()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        var (status, body) = await PostBulkAsync(es, """
            {"index":{"_index":"m","_id":"1"}}
            {"n":1,"f":1.5,"b":true,"o":{"x":"a"},"t":"text"}
            {"index":{"_index":"m","_id":"2"}}
            {"n":"12","f":"NaN"}
            {"index":{"_index":"m","_id":"3"}}
            {"n":"abc","extra":1}
            {"index":{"_index":"m","_id":"4"}}
            {"o":5}
            {"index":{"_index":"m","_id":"5"}}
            {"t":{"deep":1}}
            {"index":{"_index":"m","_id":"6"}}
            {"b":"maybe"}
            {"index":{"_index":"m","_id":"7"}}
            {"n":"7","f":"2.5","b":"false","t":3,"o":{"y":[1,2]}}

            """);

        status.Should().Be(200);
        body.GetProperty("errors").GetBoolean().Should().BeTrue();
        var items = Items(body).ToList();
        items.Where(i => i.ErrorType is null).Select(i => i.Id).Should().Equal("1", "7");
        items.Where(i => i.ErrorType is not null).Should().OnlyContain(i => i.Status == 400 && i.ErrorType == "document_parsing_exception");
        items.Single(i => i.Id == "2").Reason.Should().Contain("failed to parse field [f] of type [float] in document with id '2'. Preview of field's value: 'NaN'");
        items.Single(i => i.Id == "3").Reason.Should().Contain("failed to parse field [n] of type [long] in document with id '3'");
        items.Single(i => i.Id == "4").Reason.Should().Contain("object mapping for [o] tried to parse field [o] as object, but found a concrete value");
        items.Single(i => i.Id == "5").Reason.Should().Contain("failed to parse field [t] of type [text]");
        items.Single(i => i.Id == "6").Reason.Should().Contain("failed to parse field [b] of type [boolean]");

        var properties = JsonDocument.Parse(es.Mappings("m")).RootElement.GetProperty("properties");
        properties.TryGetProperty("extra", out _).Should().BeFalse("a refused document adds no mapping");
        properties.GetProperty("n").GetProperty("type").GetString().Should().Be("long");
        properties.GetProperty("o").GetProperty("properties").GetProperty("y").GetProperty("type").GetString().Should().Be("long");
        es.Documents("m").Keys.Should().BeEquivalentTo(["1", "7"]);
        es.Documents("m")["7"].Should().Be("""{"n":"7","f":"2.5","b":"false","t":3,"o":{"y":[1,2]}}""", "sources are kept byte for byte");
    }

    [Fact]
    public async Task A_strict_index_refuses_unknown_fields_and_a_non_dynamic_index_keeps_them_unmapped_in_the_source()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        var client = es.CreateClient();
        (await client.Indices.CreateAsync("strict", c => c.Mappings(m => m.Dynamic(Elastic.Clients.Elasticsearch.Mapping.DynamicMapping.Strict)
            .Properties(p => p.Keyword("k"))))).IsValidResponse.Should().BeTrue();
        (await client.Indices.CreateAsync("loose", c => c.Mappings(m => m.Dynamic(Elastic.Clients.Elasticsearch.Mapping.DynamicMapping.False)))).IsValidResponse.Should().BeTrue();

        var (_, body) = await PostBulkAsync(es, """
            {"index":{"_index":"strict","_id":"1"}}
            {"k":"a"}
            {"index":{"_index":"strict","_id":"2"}}
            {"k":"a","other":1}
            {"index":{"_index":"loose","_id":"1"}}
            {"n":1}
            {"index":{"_index":"loose","_id":"2"}}
            {"n":"NaN"}

            """);

        var items = Items(body).ToList();
        items.Select(i => i.Status).Should().Equal(201, 400, 201, 201);
        items[1].ErrorType.Should().Be("strict_dynamic_mapping_exception");
        items[1].Reason.Should().Contain("mapping set to strict, dynamic introduction of [other] within [_doc] is not allowed");
        JsonDocument.Parse(es.Mappings("loose")).RootElement.GetProperty("properties").EnumerateObject().Should().BeEmpty();
        es.Documents("loose")["2"].Should().Be("""{"n":"NaN"}""");
    }

    [Theory]
    [InlineData("{\"index\":{\"_index\":\"x\"}}\n", "no source line follows action line [1]")]
    [InlineData("{\"index\":{\"_index\":\"x\"}}\n{}\n[1]\n", "Malformed action/metadata line [3], expected START_OBJECT")]
    [InlineData("{\"index\":{},\"create\":{}}\n{}\n", "Malformed action/metadata line [1], expected one action but found [2]")]
    [InlineData("{\"upsert\":{\"_index\":\"x\"}}\n{}\n", "expected one of [create, delete, index, update] but found [upsert]")]
    [InlineData("{\"index\":{\"_index\":\"x\"}} junk\n{}\n", "Malformed action/metadata line [1]: ")]
    [InlineData("{\"delete\":{\"_index\":\"x\"}}\n", "Validation Failed: 1: id is missing for item [0];")]
    [InlineData("{\"index\":{\"_id\":\"1\"}}\n{}\n", "Validation Failed: 1: index is missing for item [0];")]
    [InlineData("\n\n", "Validation Failed: 1: no requests added;")]
    public async Task A_malformed_bulk_body_is_refused_whole_with_the_line_that_is_wrong(string ndjson, string reason)
    {
        await using var es = await ElasticsearchTestServer.StartAsync();

        var (status, body) = await PostBulkAsync(es, ndjson);

        status.Should().Be(400);
        body.GetProperty("error").GetProperty("type").GetString().Should().Be("illegal_argument_exception");
        body.GetProperty("error").GetProperty("reason").GetString().Should().Contain(reason);
        es.IndexNames.Should().BeEmpty();
    }

    [Fact]
    public async Task Ids_given_as_numbers_and_bodies_with_crlf_and_blank_lines_are_accepted()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();

        var (status, body) = await PostBulkAsync(es, "{\"index\":{\"_index\":\"x\",\"_id\":42}}\r\n{\"a\":1}\r\n\r\n{\"create\":{\"_index\":\"x\",\"_id\":\"s\"}}\n{\"a\":2}");

        status.Should().Be(200);
        Items(body).Select(i => (i.Id, i.Status)).Should().Equal(("42", 201), ("s", 201));
        es.Documents("x")["42"].Should().Be("{\"a\":1}");
    }

    [Fact]
    public async Task The_clients_own_bulk_response_reads_the_servers_items()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        var client = es.CreateClient();

        var bulk = await client.BulkAsync(b => b.Index("c").Create(new { a = 1 }, c => c.Id("1")).Create(new { a = 2 }, c => c.Id("1")).Delete("9"));

        bulk.Items.Select(i => (i.Status, i.Result)).Should().Equal((201, "created"), (409, null), (404, "not_found"));
        var items = bulk.Items.ToList();
        items[1].Error!.Type.Should().Be("version_conflict_engine_exception");
        items[0].SeqNo.Should().Be(0);
        items[0].Version.Should().Be(1);
        items[0].Shards!.Successful.Should().Be(1);
    }
}
