using EtlFunnel.Runtime.Hooks;
using EtlFunnel.Scripting;
using EtlFunnel.Sync.Tests.Support;

namespace EtlFunnel.Sync.Tests;

/// <summary>
/// Real .csx batch-level hooks (write rule, termination rule, checkpoint and backlog hooks, through the hook host and its
/// worker) applied by full syncs of real PostgreSQL into files; every stop is followed by a run without the hook that must
/// complete the table with every id exactly once.
/// </summary>
public sealed class BatchHookSyncTests
{
    // Wide rows: about 30 per 8 kB block, so 600 rows span some 20 blocks (20 checkpoints with one block per chunk).
    private const string Table = """
        CREATE TABLE items (id bigint PRIMARY KEY, name text, pad text);
        INSERT INTO items SELECT g, 'i' || g, repeat('x', 200) FROM generate_series(1, 600) g;
        UPDATE items SET name = 'bad' WHERE id = 77;
        """;

    private static readonly string[] AllIds = Enumerable.Range(1, 600).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();

    private static async Task<(HookHost Host, string File)> HooksAsync(params (string Name, string Script)[] scripts)
    {
        var folder = Path.Combine(Path.GetTempPath(), "etlfunnel-batch-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        foreach (var (name, script) in scripts)
        {
            await File.WriteAllTextAsync(Path.Combine(folder, name), script);
        }

        var host = await HookHost.LoadAsync(new HookHostOptions { HooksDirectory = folder, CacheDirectory = folder + "-cache" });
        host.Diagnostics.Where(d => d.Severity == "error").Should().BeEmpty();
        return (host, Path.Combine(folder, scripts[^1].Name));
    }

    private static SyncOptions With(SyncTestBed bed, HookHost host) =>
        bed.Options(blocksPerChunk: 1) with { PipelineHooks = PipelineHooks.From(host), Transformers = BatchTransformers.From(host) };

    private static void ExactlyOnce(SyncTestBed bed, IEnumerable<string>? except = null)
    {
        var ids = bed.ReadOutput().Select(d => d.Id).ToList();
        ids.Should().OnlyHaveUniqueItems("no row may be written twice across a stop and its resume");
        ids.Should().BeEquivalentTo(AllIds.Except(except ?? []), "no row may be lost across a stop and its resume");
    }

    [Fact]
    public async Task A_checkpoint_hook_that_stops_after_checkpoint_2_stops_the_replica_there_and_a_run_without_it_resumes_exactly_once()
    {
        await using var bed = await SyncTestBed.CreateAsync("bstop", Table);
        var (host, file) = await HooksAsync(("stop.csx", """
            string AppliesTo => "flow_*/public.items";
            WriteRule WriteRule(PipelineInfo p) => new WriteRule { BatchSize = 7 };
            CheckpointDecision OnCheckpoint(CheckpointInfo c)
                => c.Checkpoints >= 2 ? CheckpointDecision.Stop($"checkpoint {c.Checkpoints}: {c.RowsRead} rows in {c.Batches} batches at {c.Position}") : CheckpointDecision.Continue;
            """));
        await using var _ = host;

        var stopped = await new SyncEngine().RunAsync(bed.Job("items", 1, 1, With(bed, host)));

        stopped.Outcome.Should().Be(SyncOutcome.Stopped, stopped.Summary);
        var replica = stopped.Replicas.Single();
        replica.Error.Should().BeNull("a stop is not a failure");
        replica.StoppedBy.Should().StartWith($"{file}: OnCheckpoint stopped it at checkpoint 2").And.Contain("public.items block 2");
        replica.RowsRead.Should().BeInRange(1, 599);
        var batches = long.Parse(System.Text.RegularExpressions.Regex.Match(replica.StoppedBy!, @"in (\d+) batches").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        batches.Should().BeInRange((replica.RowsRead + 6) / 7, (replica.RowsRead + 6) / 7 + 1,
            "the write rule's BatchSize 7 cuts each of the two one-block chunks into batches of 7 (at most one short batch per chunk)");
        bed.ReadOutput().Should().HaveCount((int)replica.RowsRead, "exactly the checkpointed rows are written");
        stopped.Summary.Should().Contain("Stopped by hooks");

        var resumed = await new SyncEngine().RunAsync(bed.Job("items", 1, 1, bed.Options(blocksPerChunk: 1)));

        resumed.Outcome.Should().Be(SyncOutcome.Succeeded, resumed.Summary);
        resumed.Replicas.Single().Resumed.Should().BeTrue();
        ExactlyOnce(bed);
    }

    [Fact]
    public async Task A_termination_rule_stops_each_replica_at_the_first_checkpoint_past_max_records_and_the_resume_completes_the_table()
    {
        await using var bed = await SyncTestBed.CreateAsync("bterm", Table);
        var (host, file) = await HooksAsync(("limits.csx", "TerminationRule Termination(PipelineInfo p) => new TerminationRule { MaxRecords = 100 };"));
        await using var _ = host;

        var stopped = await new SyncEngine().RunAsync(bed.Job("items", 1, 2, With(bed, host)));

        stopped.Outcome.Should().Be(SyncOutcome.Stopped, stopped.Summary);
        stopped.Replicas.Should().HaveCount(2).And.OnlyContain(r => r.Outcome == SyncOutcome.Stopped && r.StoppedBy!.StartsWith($"{file}: termination rule MaxRecords 100 reached", StringComparison.Ordinal));
        stopped.Replicas.Should().OnlyContain(r => r.RowsRead >= 100 && r.RowsRead < 200, "the rule is checked at each checkpoint (one block, about 30 rows)");

        var resumed = await new SyncEngine().RunAsync(bed.Job("items", 1, 2, bed.Options(blocksPerChunk: 1)));

        resumed.Outcome.Should().Be(SyncOutcome.Succeeded, resumed.Summary);
        ExactlyOnce(bed);
    }

    [Fact]
    public async Task A_write_rule_with_a_bad_batch_size_fails_the_replica_at_the_hooks_line_before_anything_is_read()
    {
        await using var bed = await SyncTestBed.CreateAsync("brule", Table);
        var (host, file) = await HooksAsync(("rule.csx", "WriteRule WriteRule(PipelineInfo p) => new WriteRule { BatchSize = -5 };"));
        await using var _ = host;

        var report = await new SyncEngine().RunAsync(bed.Job("items", 1, 1, With(bed, host)));

        report.Outcome.Should().Be(SyncOutcome.Failed);
        report.Replicas.Single().Error.Should().StartWith($"{file}(1,11): WriteRule in 'rule.csx' returned BatchSize -5 for public.items");
        report.RowsRead.Should().Be(0);
        bed.ReadOutputLines().Should().Be(0);
    }

    [Fact]
    public async Task A_checkpoint_hook_that_throws_fails_the_replica_at_its_line_with_its_last_checkpoint_intact()
    {
        await using var bed = await SyncTestBed.CreateAsync("bthrow", Table);
        var (host, file) = await HooksAsync(("throws.csx", """
            CheckpointDecision OnCheckpoint(CheckpointInfo c)
            {
                if (c.Checkpoints == 3) throw new InvalidOperationException("cannot decide at " + c.Position);
                return CheckpointDecision.Continue;
            }
            """));
        await using var _ = host;

        var failed = await new SyncEngine().RunAsync(bed.Job("items", 1, 1, With(bed, host)));

        failed.Outcome.Should().Be(SyncOutcome.Failed);
        failed.Replicas.Single().Error.Should().Be($"{file}(3,29): OnCheckpoint in 'throws.csx' threw InvalidOperationException: cannot decide at public.items block 3");
        var rows = failed.Replicas.Single().RowsRead;
        bed.ReadOutput().Should().HaveCount((int)rows, "the third checkpoint was written before the hook ran");

        var resumed = await new SyncEngine().RunAsync(bed.Job("items", 1, 1, bed.Options(blocksPerChunk: 1)));

        resumed.Outcome.Should().Be(SyncOutcome.Succeeded, resumed.Summary);
        ExactlyOnce(bed);
    }

    private const string ThrowsOnBad = """
        void Transform(RowView row, DocumentWriter doc)
        {
            if (row.GetString("name") == "bad") throw new InvalidOperationException("bad item " + row.Id);
        }
        """;

    [Fact]
    public async Task A_backlog_hook_retries_a_failed_row_up_to_the_engines_bound_then_it_is_dead_lettered()
    {
        await using var bed = await SyncTestBed.CreateAsync("bretry", Table);
        var (host, _) = await HooksAsync(("a-items.csx", ThrowsOnBad), ("backlog.csx", "BacklogDecision OnBacklog(BacklogRecord r) => BacklogDecision.Retry;"));
        await using var _h = host;

        var report = await new SyncEngine().RunAsync(bed.Job("items", 1, 1, With(bed, host) with { MaxBacklogRetries = 2 }));

        report.Outcome.Should().Be(SyncOutcome.CompletedWithRejections, report.Summary);
        report.DeadLettered.Should().Be(1);
        File.ReadAllText(report.DeadLetterFile!).Should().Contain("bad item 77");
        ExactlyOnce(bed, except: ["77"]);
    }

    [Fact]
    public async Task A_backlog_hook_that_stops_leaves_the_batch_unCheckpointed_names_the_record_and_the_next_run_reads_it_again()
    {
        await using var bed = await SyncTestBed.CreateAsync("bblog", Table);
        var (host, file) = await HooksAsync(("a-items.csx", ThrowsOnBad), ("backlog.csx", """
            BacklogDecision OnBacklog(BacklogRecord r)
                => r.Attempt < 3 ? BacklogDecision.Retry : BacklogDecision.Stop($"gave up after attempt {r.Attempt} of {r.MaxAttempts} ({r.Stage})");
            """));
        await using var _h = host;

        var stopped = await new SyncEngine().RunAsync(bed.Job("items", 1, 1, With(bed, host)));

        stopped.Outcome.Should().Be(SyncOutcome.Stopped, stopped.Summary);
        stopped.Replicas.Single().StoppedBy.Should().StartWith($"{file}: OnBacklog stopped it at public.items id '77' (stage Transform, attempt 3:")
            .And.Contain("bad item 77").And.Contain("gave up after attempt 3 of 4 (Transform)").And.Contain("not checkpointed");
        stopped.DeadLettered.Should().Be(0);
        bed.ReadOutput().Select(d => d.Id).Should().NotContain("77").And.HaveCount((int)stopped.RowsRead, "the chunk of row 77 was not checkpointed");

        // Without the backlog hook the row is dead-lettered as before; every other row is written exactly once.
        File.Delete(file);
        (await host.ReloadAsync()).Succeeded.Should().BeTrue();
        var resumed = await new SyncEngine().RunAsync(bed.Job("items", 1, 1, With(bed, host)));

        resumed.Outcome.Should().Be(SyncOutcome.CompletedWithRejections, resumed.Summary);
        resumed.DeadLettered.Should().Be(1);
        ExactlyOnce(bed, except: ["77"]);
    }
}
