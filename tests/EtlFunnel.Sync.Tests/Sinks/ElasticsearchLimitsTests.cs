using System.Text.Json;
using EtlFunnel.Destinations;
using EtlFunnel.Sync.Tests.Support;
using EtlFunnel.Testing.Elasticsearch;

namespace EtlFunnel.Sync.Tests.Sinks;

/// <summary>What a real cluster refuses: an <c>_id</c> over 512 bytes (the whole bulk), a body over <c>http.max_content_length</c> (413).</summary>
public sealed class ElasticsearchLimitsTests
{
    private const string Orders =
        "CREATE TABLE orders(id int PRIMARY KEY, customer text, total numeric(14,2), placed timestamptz, tags text[]); " +
        "INSERT INTO orders SELECT g, 'cüstomer ' || (g % 300), g * 0.5, '2024-03-01'::timestamptz + g * interval '1 minute', ARRAY['t' || (g % 4)] FROM generate_series(1, 3000) g;";

    [Fact]
    public async Task A_row_whose_id_is_600_bytes_is_dead_lettered_alone_and_every_other_row_is_indexed()
    {
        var longKey = new string('k', 600);
        await using var bed = await SyncTestBed.CreateAsync("eslongid",
            "CREATE TABLE codes(code text PRIMARY KEY, v int); INSERT INTO codes SELECT 'c' || g, g FROM generate_series(1, 2000) g; " +
            $"INSERT INTO codes VALUES ('{longKey}', -1);");
        await using var es = await ElasticsearchTestServer.StartAsync();

        var report = await new SyncEngine().RunAsync(bed.Job("codes", 1, 2, destination: new ElasticsearchDestination(es.Uri),
            props: new Dictionary<string, object?> { ["batch_size"] = 500 }));

        report.Outcome.Should().Be(SyncOutcome.CompletedWithRejections, "the one row is dead-lettered, not the run failed");
        report.DeadLettered.Should().Be(1);
        report.DocsIndexed.Should().Be(2000);
        es.Documents("idx").Should().HaveCount(2000);
        var dead = File.ReadAllLines(report.DeadLetterFile!).Select(l => JsonDocument.Parse(l).RootElement).Should().ContainSingle().Subject;
        dead.GetProperty("id").GetString().Should().Be(longKey);
        dead.GetProperty("reason").GetString().Should().Contain("must be no longer than 512 bytes but was: 600");
        dead.GetProperty("document").GetProperty("v").GetInt32().Should().Be(-1);
    }

    [Fact]
    public async Task The_test_server_refuses_a_whole_bulk_with_one_id_over_512_bytes_as_elasticsearch_does()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        using var http = new HttpClient { BaseAddress = es.Uri };
        var body = "{\"index\":{\"_index\":\"i\",\"_id\":\"ok\"}}\n{\"a\":1}\n" + $"{{\"index\":{{\"_index\":\"i\",\"_id\":\"{new string('é', 300)}\"}}}}\n{{\"a\":2}}\n";

        using var response = await http.PostAsync("/_bulk", new StringContent(body, System.Text.Encoding.UTF8, "application/x-ndjson"));

        ((int)response.StatusCode).Should().Be(400);
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        error.GetProperty("type").GetString().Should().Be("action_request_validation_exception");
        error.GetProperty("reason").GetString().Should().StartWith("Validation Failed: 1: id [").And.EndWith("is too long, must be no longer than 512 bytes but was: 600;");
        es.IndexNames.Should().NotContain("i", "no item of a refused bulk runs");
    }

    [Fact]
    public async Task A_batch_answered_413_is_split_until_it_fits_and_every_row_is_indexed_once()
    {
        await using var bed = await SyncTestBed.CreateAsync("es413", Orders);
        // About 150 bytes per document: a 500-document bulk body is ~75 KB, over this cluster's 24 KB limit.
        await using var es = await ElasticsearchTestServer.StartAsync(new ElasticsearchTestServerOptions { MaxRequestBodyBytes = 24 * 1024 });

        var report = await new SyncEngine().RunAsync(bed.Job("orders", 1, 1, destination: new ElasticsearchDestination(es.Uri) { Compression = false },
            props: new Dictionary<string, object?> { ["batch_size"] = 500 }));

        report.Outcome.Should().Be(SyncOutcome.Succeeded, string.Join("; ", report.Replicas.Select(r => r.Error)));
        report.DocsIndexed.Should().Be(3000);
        report.DeadLettered.Should().Be(0);
        es.Requests.Should().Contain(r => r.Path.Contains("_bulk", StringComparison.Ordinal) && r.Status == 413, "the cluster refused the full batches");
        var docs = es.Documents("idx");
        docs.Should().HaveCount(3000);
        docs.Keys.Should().OnlyContain(id => es.VersionOf("idx", id) == 1, "a split half is sent once, never the whole batch again");
    }
}
