using System.Text.Json;
using Elastic.Transport;
using EtlFunnel.Testing.Elasticsearch;

namespace EtlFunnel.Sync.Tests.Fixtures;

/// <summary>External versioning on the test server's <c>_bulk</c> path, as Elasticsearch does it (CDC relies on it for ordering).</summary>
public sealed class ElasticsearchTestServerVersioningTests
{
    private static async Task<(int Status, JsonElement Body)> PostBulkAsync(ElasticsearchTestServer es, string ndjson)
    {
        var response = await es.CreateClient().Transport.RequestAsync<StringResponse>(
            new EndpointPath(Elastic.Transport.HttpMethod.POST, "/_bulk"), PostData.String(ndjson), null,
            new RequestConfiguration { ContentType = "application/x-ndjson" });
        return (response.ApiCallDetails.HttpStatusCode ?? 0, JsonDocument.Parse(response.Body).RootElement);
    }

    private static List<(int Status, string? Result, long? Version, string? ErrorType, string? Reason)> Items(JsonElement body) =>
        [.. body.GetProperty("items").EnumerateArray().Select(i => i.EnumerateObject().Single().Value).Select(i => (
            i.GetProperty("status").GetInt32(),
            i.TryGetProperty("result", out var r) ? r.GetString() : null,
            i.TryGetProperty("_version", out var v) ? v.GetInt64() : (long?)null,
            i.TryGetProperty("error", out var e) ? e.GetProperty("type").GetString() : null,
            i.TryGetProperty("error", out var x) ? x.GetProperty("reason").GetString() : null))];

    [Fact]
    public async Task External_versions_apply_only_when_higher_and_a_lower_or_equal_one_is_a_per_item_409()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        var (status, body) = await PostBulkAsync(es, """
            {"index":{"_index":"v","_id":"a","version":10,"version_type":"external"}}
            {"n":1}
            {"index":{"_index":"v","_id":"a","version":10,"version_type":"external"}}
            {"n":2}
            {"index":{"_index":"v","_id":"a","version":5,"version_type":"external"}}
            {"n":3}
            {"index":{"_index":"v","_id":"a","version":11,"version_type":"external"}}
            {"n":4}

            """);

        status.Should().Be(200);
        body.GetProperty("errors").GetBoolean().Should().BeTrue();
        var items = Items(body);
        items.Select(i => i.Status).Should().Equal(201, 409, 409, 200);
        items[0].Version.Should().Be(10, "the stored version is the one given");
        items[1].ErrorType.Should().Be("version_conflict_engine_exception");
        items[1].Reason.Should().Be("[a]: version conflict, current version [10] is higher or equal to the one provided [10]");
        es.Documents("v")["a"].Should().Be("{\"n\":4}");
        es.VersionOf("v", "a").Should().Be(11);
    }

    [Fact]
    public async Task External_gte_accepts_an_equal_version_and_deletes_keep_a_tombstone_that_blocks_older_writes()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        var (_, body) = await PostBulkAsync(es, """
            {"index":{"_index":"g","_id":"a","version":7,"version_type":"external_gte"}}
            {"n":1}
            {"index":{"_index":"g","_id":"a","version":7,"version_type":"external_gte"}}
            {"n":2}
            {"delete":{"_index":"g","_id":"a","version":9,"version_type":"external_gte"}}
            {"index":{"_index":"g","_id":"a","version":8,"version_type":"external_gte"}}
            {"n":3}
            {"delete":{"_index":"g","_id":"b","version":3,"version_type":"external_gte"}}
            {"index":{"_index":"g","_id":"b","version":2,"version_type":"external_gte"}}
            {"n":4}

            """);

        var items = Items(body);
        items.Select(i => i.Status).Should().Equal(201, 200, 200, 409, 404, 409);
        items[2].Result.Should().Be("deleted");
        items[3].Reason.Should().Be("[a]: version conflict, current version [9] is higher than the one provided [8]");
        items[4].Result.Should().Be("not_found");
        es.Documents("g").Should().BeEmpty("a late write older than a delete does not bring the document back");
    }

    [Fact]
    public async Task Versioning_on_create_or_update_and_unknown_version_types_are_refused_like_elasticsearch()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();

        var (createStatus, create) = await PostBulkAsync(es, "{\"create\":{\"_index\":\"r\",\"_id\":\"a\",\"version\":1,\"version_type\":\"external\"}}\n{}\n");
        var (updateStatus, update) = await PostBulkAsync(es, "{\"update\":{\"_index\":\"r\",\"_id\":\"a\",\"version\":1,\"version_type\":\"external\"}}\n{\"doc\":{}}\n");
        var (typeStatus, type) = await PostBulkAsync(es, "{\"index\":{\"_index\":\"r\",\"_id\":\"a\",\"version\":1,\"version_type\":\"newest\"}}\n{}\n");

        createStatus.Should().Be(400);
        create.GetProperty("error").GetProperty("reason").GetString().Should().Contain("create operations do not support versioning. use index instead");
        updateStatus.Should().Be(400);
        update.GetProperty("error").GetProperty("reason").GetString().Should().Contain("version type [EXTERNAL] is not supported by the update API");
        typeStatus.Should().Be(400);
        type.GetProperty("error").GetProperty("reason").GetString().Should().Contain("No version type match [newest]");
    }
}
