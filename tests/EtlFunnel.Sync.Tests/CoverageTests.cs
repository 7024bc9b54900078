using EtlFunnel.Destinations;
using EtlFunnel.Sync.Tests.Support;

namespace EtlFunnel.Sync.Tests;

public sealed class CoverageTests
{
    [Fact]
    public async Task Every_flow_by_pipeline_replica_split_from_1x1_to_8x8_yields_each_row_exactly_once()
    {
        // 20k rows over ~100 blocks, with a few dead tuples so blocks are uneven.
        await using var bed = await SyncTestBed.CreateAsync("cover",
            "CREATE TABLE items(id int PRIMARY KEY, name text, qty int); " +
            "INSERT INTO items SELECT g, 'item ' || g, g % 97 FROM generate_series(1, 20000) g; " +
            "DELETE FROM items WHERE id % 13 = 0;");
        await bed.ExecuteAsync("VACUUM items");
        var expected = Enumerable.Range(1, 20000).Where(i => i % 13 != 0).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToHashSet();

        foreach (var (flows, pipes) in new[] { (1, 1), (1, 2), (2, 1), (2, 3), (3, 5), (4, 4), (5, 7), (8, 8) })
        {
            var root = Path.Combine(bed.Root, $"{flows}x{pipes}");
            var options = bed.Options(blocksPerChunk: 7) with { StateDirectory = Path.Combine(root, "state"), DeadLetterDirectory = Path.Combine(root, "dead") };
            var report = await new SyncEngine().RunAsync(bed.Job("items", flows, pipes, options, new FilesDestination(Path.Combine(root, "out"))));

            report.Outcome.Should().Be(SyncOutcome.Succeeded, $"{flows}x{pipes}");
            report.Replicas.Should().HaveCount(flows * pipes);
            report.DocsIndexed.Should().Be(expected.Count, $"{flows}x{pipes}");
            var ids = Directory.EnumerateFiles(Path.Combine(root, "out"), "*.ndjson", SearchOption.AllDirectories)
                .SelectMany(File.ReadLines).Where((_, i) => i % 2 == 0)
                .Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement.GetProperty("index").GetProperty("_id").GetString()!)
                .ToList();
            ids.Should().HaveCount(expected.Count, $"{flows}x{pipes}: documents == rows");
            ids.Should().OnlyHaveUniqueItems($"{flows}x{pipes}");
            ids.ToHashSet().SetEquals(expected).Should().BeTrue($"{flows}x{pipes}: the ids are exactly the table's keys");
        }
    }

    [Fact]
    public async Task A_partitioned_table_is_split_per_leaf_and_covered_exactly()
    {
        await using var bed = await SyncTestBed.CreateAsync("parted",
            "CREATE TABLE ev(id int, region text, payload text, PRIMARY KEY (id, region)) PARTITION BY LIST (region); " +
            "CREATE TABLE ev_eu PARTITION OF ev FOR VALUES IN ('eu'); CREATE TABLE ev_us PARTITION OF ev FOR VALUES IN ('us'); " +
            "CREATE TABLE ev_ap PARTITION OF ev FOR VALUES IN ('ap'); " +
            "INSERT INTO ev SELECT g, (ARRAY['eu','us','ap'])[1 + g % 3], repeat('x', g % 50) FROM generate_series(1, 9000) g;");
        var report = await new SyncEngine().RunAsync(bed.Job("ev", 3, 4, bed.Options(blocksPerChunk: 3)));
        report.Outcome.Should().Be(SyncOutcome.Succeeded);
        var docs = bed.ReadOutput();
        docs.Should().HaveCount(9000);
        docs.Select(d => d.Id).Should().OnlyHaveUniqueItems();
        docs.Should().Contain(d => d.Id == "3|eu");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_resumed_run_keeps_its_block_count_and_the_open_ended_replica_reads_rows_appended_since(bool checkpointsInTable)
    {
        await using var bed = await SyncTestBed.CreateAsync("tail", "CREATE TABLE t(id int PRIMARY KEY, pad text); INSERT INTO t SELECT g, repeat('p', 100) FROM generate_series(1, 3000) g;");
        var options = bed.Options(blocksPerChunk: 1);
        if (checkpointsInTable)
        {
            options = options with { StateTable = new PostgresStateTable(bed.ConnectionString) };
        }

        var job = bed.Job("t", 1, 4, options, props: new Dictionary<string, object?> { ["batch_size"] = 10 });
        using (var cancel = new CancellationTokenSource())
        {
            var hooks = new Sync.Runtime.SyncTestHooks { AfterDispatch = _ => { cancel.Cancel(); return ValueTask.CompletedTask; } };
            var first = await new SyncEngine(null, hooks).RunAsync(job with { Options = job.Options with { MaxConcurrency = 1 } }, null, cancel.Token);
            first.Outcome.Should().Be(SyncOutcome.Cancelled);
            first.DocsIndexed.Should().BeLessThan(3000);
        }

        // The table grows past the block count the interrupted run recorded; the rerun keeps the old boundaries.
        await bed.ExecuteAsync("INSERT INTO t SELECT g, repeat('q', 100) FROM generate_series(3001, 8000) g");
        var report = await new SyncEngine().RunAsync(job);
        report.Outcome.Should().Be(SyncOutcome.Succeeded);
        report.DocsIndexed.Should().Be(8000);
        report.Replicas[^1].DocsIndexed.Should().BeGreaterThan(5000, "the last replica's range is open-ended");
        bed.ReadOutput().Select(d => d.Id).Should().OnlyHaveUniqueItems().And.HaveCount(8000);
    }

    [Fact]
    public async Task Ten_thousand_mostly_empty_replicas_run_on_the_worker_pool_and_still_cover_the_table_once()
    {
        await using var bed = await SyncTestBed.CreateAsync("many", "CREATE TABLE t(id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' FROM generate_series(1, 3000) g;");
        var report = await new SyncEngine().RunAsync(bed.Job("t", 100, 100));
        report.Outcome.Should().Be(SyncOutcome.Succeeded);
        report.Replicas.Should().HaveCount(10000);
        report.DocsIndexed.Should().Be(3000);
        Directory.EnumerateFiles(bed.OutputDirectory, "*.ndjson", SearchOption.AllDirectories).Count().Should().BeLessThan(50, "empty shares write no file");
        bed.ReadOutput().Select(d => d.Id).Should().OnlyHaveUniqueItems().And.HaveCount(3000);
    }
}
