using System.Diagnostics;
using System.Text.Json;
using EtlFunnel.Destinations;
using EtlFunnel.Sync.Tests.Support;
using EtlFunnel.Testing.Elasticsearch;

namespace EtlFunnel.Sync.Tests;

public sealed class ElasticsearchSinkTests
{
    private const string Orders =
        "CREATE TABLE orders(id int PRIMARY KEY, customer text, total numeric(14,2), placed timestamptz, tags text[]); " +
        "INSERT INTO orders SELECT g, 'cüstomer ' || (g % 300), g * 0.5, '2024-03-01'::timestamptz + g * interval '1 minute', ARRAY['t' || (g % 4)] FROM generate_series(1, 12000) g;";

    private static readonly Dictionary<string, object?> SmallBatches = new() { ["batch_size"] = 400, ["max_in_flight"] = 3 };

    [Fact]
    public async Task Every_row_becomes_one_document_with_its_key_as_id_in_an_index_created_on_demand()
    {
        await using var bed = await SyncTestBed.CreateAsync("es", Orders);
        await using var es = await ElasticsearchTestServer.StartAsync();
        var progress = new CollectingProgress();
        var report = await new SyncEngine().RunAsync(bed.Job("orders", 2, 3, destination: new ElasticsearchDestination(es.Uri), index: "orders-v1", props: SmallBatches), progress);

        var finals = progress.Updates.Where(u => u.Outcome is not null).ToList();
        finals.Should().HaveCount(6, "each replica reports once when it ends");
        finals.Should().OnlyContain(u => u.Outcome == SyncOutcome.Succeeded && u.BlocksDone == u.BlocksTotal);
        finals.Sum(u => u.DocsIndexed).Should().Be(12000);
        progress.Updates.Count.Should().BeGreaterThan(30, "updates also come per batch");

        report.Outcome.Should().Be(SyncOutcome.Succeeded);
        report.DocsIndexed.Should().Be(12000);
        es.AliasTargets("orders-v1").Should().ContainSingle("a full run writes a physical index and points the alias at it");
        var docs = es.Documents("orders-v1");
        docs.Should().HaveCount(12000);
        docs.Keys.ToHashSet().SetEquals(Enumerable.Range(1, 12000).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)))
            .Should().BeTrue("the ids are exactly the table's keys");
        using var sample = JsonDocument.Parse(docs["42"]);
        sample.RootElement.GetProperty("customer").GetString().Should().Be("cüstomer 42");
        sample.RootElement.GetProperty("total").GetRawText().Should().Be("21.00");
        sample.RootElement.GetProperty("placed").GetString().Should().Be("2024-03-01T00:42:00+00:00");
        es.Requests.Where(r => r.Path.Contains("_bulk", StringComparison.Ordinal)).Should().OnlyContain(r => r.ContentType!.Contains("ndjson", StringComparison.Ordinal));
    }

    [Fact]
    public async Task With_30_percent_of_bulk_calls_answered_429_every_row_is_still_indexed_exactly_once()
    {
        await using var bed = await SyncTestBed.CreateAsync("es429", Orders);
        await using var es = await ElasticsearchTestServer.StartAsync(new ElasticsearchTestServerOptions { Seed = 7 });
        es.Faults.FailShareOfBulkCalls(0.3);
        var options = bed.Options() with { MaxBulkRetries = 20 };
        var report = await new SyncEngine().RunAsync(bed.Job("orders", 2, 2, options, new ElasticsearchDestination(es.Uri), props: SmallBatches));

        report.Outcome.Should().Be(SyncOutcome.Succeeded);
        es.Faults.Injected429.Should().BeGreaterThan(3);
        report.Retries.Should().Be(es.Faults.Injected429, "each rejected call is retried once more");
        report.DocsIndexed.Should().Be(12000);
        es.Documents("idx").Should().HaveCount(12000);
    }

    [Fact]
    public async Task Items_answered_429_or_503_are_resent_alone_and_the_rest_are_not_sent_twice()
    {
        await using var bed = await SyncTestBed.CreateAsync("esitem", Orders);
        await using var es = await ElasticsearchTestServer.StartAsync();
        es.Faults.FailNextItems(1000);
        var report = await new SyncEngine().RunAsync(bed.Job("orders", 1, 2, destination: new ElasticsearchDestination(es.Uri), props: SmallBatches));

        report.Outcome.Should().Be(SyncOutcome.Succeeded);
        es.Faults.TransientItemFailures.Should().Be(1000);
        var docs = es.Documents("idx");
        docs.Should().HaveCount(12000);
        docs.Keys.Should().OnlyContain(id => es.VersionOf("idx", id) == 1, "an item that succeeded is never sent again");
    }

    [Fact]
    public async Task Dropped_connections_are_retried_and_ids_keep_the_result_exact()
    {
        await using var bed = await SyncTestBed.CreateAsync("esdrop", Orders);
        await using var es = await ElasticsearchTestServer.StartAsync();
        es.Faults.DropNextBulkConnections(3, DroppedConnectionMode.AfterApplying);
        var report = await new SyncEngine().RunAsync(bed.Job("orders", 1, 1, destination: new ElasticsearchDestination(es.Uri), props: SmallBatches));

        report.Outcome.Should().Be(SyncOutcome.Succeeded);
        es.Faults.DroppedConnections.Should().Be(3);
        report.Retries.Should().BeGreaterThanOrEqualTo(3);
        es.Documents("idx").Should().HaveCount(12000);
    }

    [Fact]
    public async Task Permanently_rejected_documents_go_to_the_dead_letter_file_are_counted_and_fail_the_run()
    {
        await using var bed = await SyncTestBed.CreateAsync("esdead", Orders);
        await using var es = await ElasticsearchTestServer.StartAsync();
        var rejected = new[] { "7", "500", "11999" };
        es.Faults.RejectDocuments(rejected).UseRejectionType("mapper_parsing_exception");
        var report = await new SyncEngine().RunAsync(bed.Job("orders", 2, 2, destination: new ElasticsearchDestination(es.Uri), props: SmallBatches));

        report.Outcome.Should().Be(SyncOutcome.CompletedWithRejections);
        report.IsSuccess.Should().BeFalse();
        report.DeadLettered.Should().Be(3);
        report.DocsIndexed.Should().Be(11997);
        report.DeadLetterFile.Should().NotBeNull();
        report.Summary.Should().Contain(report.DeadLetterFile!);
        es.Documents("idx").Should().HaveCount(11997);

        var lines = File.ReadAllLines(report.DeadLetterFile!).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        lines.Select(l => l.GetProperty("id").GetString()).Should().BeEquivalentTo(rejected);
        lines.Should().OnlyContain(l => l.GetProperty("status").GetInt32() == 400
            && l.GetProperty("index").GetString() == "idx"
            && l.GetProperty("reason").GetString()!.StartsWith("mapper_parsing_exception", StringComparison.Ordinal));
        lines.Single(l => l.GetProperty("id").GetString() == "500").GetProperty("document").GetProperty("total").GetRawText().Should().Be("250.00");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_run_into_elasticsearch_killed_with_sigkill_and_rerun_ends_with_exactly_the_rows(bool checkpointsInTable)
    {
        await using var bed = await SyncTestBed.CreateAsync("eskill", Orders);
        await using var es = await ElasticsearchTestServer.StartAsync();
        var args = new ChildSyncArgs(bed.ConnectionString, "orders", bed.OutputDirectory, bed.StateDirectory, bed.DeadLetterDirectory,
            Flows: 1, Pipelines: 3, BlocksPerChunk: 4, BatchSize: 200, DelayPerBatchMs: 40, ElasticsearchUrl: es.Uri.ToString(),
            StateTableConnectionString: checkpointsInTable ? bed.ConnectionString : null);
        using (var child = ChildProcess.Start(args))
        {
            var watch = Stopwatch.StartNew();
            while (!child.HasExited && watch.Elapsed < TimeSpan.FromSeconds(60) && Written() < 2000)
            {
                await Task.Delay(50);
            }

            child.HasExited.Should().BeFalse("the child must be killed mid-run");
            child.Kill(entireProcessTree: true);
            await child.WaitForExitAsync();
        }

        Written().Should().BeLessThan(12000);
        es.AliasTargets("idx").Should().BeEmpty("the alias moves only when the run completes");
        var report = await new SyncEngine().RunAsync(ChildProcess.BuildJob(args with { DelayPerBatchMs = 0 }));
        report.Outcome.Should().Be(SyncOutcome.Succeeded);
        report.Replicas.Should().Contain(r => r.Resumed);
        es.Documents("idx").Should().HaveCount(12000);
        es.IndexNames.Should().ContainSingle("the rerun resumed into the physical index of the killed run");

        // Documents written so far into the run's physical index (the alias exists only once the run completed).
        int Written() => es.IndexNames.Where(n => n.StartsWith("idx-", StringComparison.Ordinal)).Sum(n => es.Documents(n).Count);
    }

    [Fact]
    public async Task When_retries_run_out_the_replica_fails_keeps_its_checkpoint_and_a_rerun_completes_exactly()
    {
        await using var bed = await SyncTestBed.CreateAsync("esfail", Orders);
        await using var es = await ElasticsearchTestServer.StartAsync();
        es.Faults.FailNextBulkCalls(1000, 503);
        var job = bed.Job("orders", 1, 2, bed.Options() with { MaxBulkRetries = 2 }, new ElasticsearchDestination(es.Uri), props: SmallBatches);

        var failed = await new SyncEngine().RunAsync(job);
        failed.Outcome.Should().Be(SyncOutcome.Failed);
        failed.Replicas.Should().OnlyContain(r => r.Outcome == SyncOutcome.Failed && r.Error!.Contains("503", StringComparison.Ordinal));
        failed.Summary.Should().Contain("run again to resume");

        es.Faults.Clear();
        var rerun = await new SyncEngine().RunAsync(job);
        rerun.Outcome.Should().Be(SyncOutcome.Succeeded);
        rerun.Replicas.Should().OnlyContain(r => r.Resumed);
        es.Documents("idx").Should().HaveCount(12000);
    }
}
