using EtlFunnel.Sync.Tests.Support;

namespace EtlFunnel.Sync.Tests.Runtime;

/// <summary><see cref="SyncProgress.RowsResumed"/>: what the checkpoints of an interrupted run hold, apart from rows read by the resumed run.</summary>
public sealed class ResumedProgressTests
{
    [Fact]
    public async Task A_resumed_run_reports_the_checkpointed_rows_as_resumed_and_a_fresh_run_reports_none()
    {
        await using var bed = await SyncTestBed.CreateAsync("resprog", "CREATE TABLE t(id int PRIMARY KEY, pad text); INSERT INTO t SELECT g, repeat('p', 100) FROM generate_series(1, 3000) g;");
        var job = bed.Job("t", 1, 1, bed.Options(blocksPerChunk: 1), props: new Dictionary<string, object?> { ["batch_size"] = 10 });
        var firstProgress = new CollectingProgress();
        long interruptedAt;
        using (var cancel = new CancellationTokenSource())
        {
            var hooks = new Sync.Runtime.SyncTestHooks { AfterDispatch = _ => { cancel.Cancel(); return ValueTask.CompletedTask; } };
            var first = await new SyncEngine(null, hooks).RunAsync(job with { Options = job.Options with { MaxConcurrency = 1 } }, firstProgress, cancel.Token);
            first.Outcome.Should().Be(SyncOutcome.Cancelled);
            interruptedAt = first.RowsRead;
            interruptedAt.Should().BeInRange(1, 2999);
        }

        firstProgress.Updates.Should().OnlyContain(u => u.RowsResumed == 0, "the first run resumes nothing");
        var progress = new CollectingProgress();

        var report = await new SyncEngine().RunAsync(job, progress);

        report.Outcome.Should().Be(SyncOutcome.Succeeded);
        var last = progress.Updates.Last();
        last.Outcome.Should().Be(SyncOutcome.Succeeded);
        last.RowsResumed.Should().Be(interruptedAt);
        last.RowsRead.Should().Be(3000);
        progress.Updates.Should().OnlyContain(u => u.RowsResumed == interruptedAt && u.RowsRead >= interruptedAt);
    }
}
