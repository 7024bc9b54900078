using System.Text.Json;
using EtlFunnel.Destinations;
using EtlFunnel.Sync.Tests.Support;
using EtlFunnel.Testing.Elasticsearch;

namespace EtlFunnel.Sync.Tests;

/// <summary><see cref="ElasticsearchDestination.Compression"/> through the real client transport into the test server.</summary>
public sealed class ElasticsearchCompressionTests
{
    [Fact]
    public async Task With_compression_off_bulk_bodies_go_as_plain_ndjson_and_every_row_is_indexed()
    {
        await using var bed = await SyncTestBed.CreateAsync("esplain",
            "CREATE TABLE w(id int PRIMARY KEY, v text); INSERT INTO w SELECT g, 'v' || g FROM generate_series(1, 50) g;");
        await using var es = await ElasticsearchTestServer.StartAsync();
        var destination = new ElasticsearchDestination(es.Uri) { Compression = false };

        var report = await new SyncEngine().RunAsync(bed.Job("w", 1, 1, destination: destination, props: new Dictionary<string, object?> { ["batch_size"] = 20 }));

        report.Outcome.Should().Be(SyncOutcome.Succeeded);
        es.Requests.Where(r => r.Path.EndsWith("/_bulk", StringComparison.Ordinal)).Should().HaveCount(3)
            .And.OnlyContain(r => r.Method == "POST" && r.Path == $"/{es.AliasTargets("idx").Single()}/_bulk" && r.Status == 200
                && r.ContentEncoding == null && r.ContentType == "application/x-ndjson", "Compression = false turns the client's gzip off");
        es.Requests.Should().OnlyContain(r => r.ContentEncoding == null, "no request of the run is gzipped");
        var docs = es.Documents("idx");
        docs.Should().HaveCount(50);
        JsonDocument.Parse(docs["37"]).RootElement.GetProperty("v").GetString().Should().Be("v37");
    }

    [Fact]
    public void The_compression_flag_is_part_of_the_destinations_identity_and_defaults_to_on()
    {
        var uri = new Uri("http://127.0.0.1:9200");

        new ElasticsearchDestination(uri).Compression.Should().BeTrue();
        new ElasticsearchDestination(uri).Should().Be(new ElasticsearchDestination(uri) { Compression = true });
        // The engine shares one client per distinct destination, so differing settings must not share a client.
        new ElasticsearchDestination(uri).Should().NotBe(new ElasticsearchDestination(uri) { Compression = false });
    }
}
