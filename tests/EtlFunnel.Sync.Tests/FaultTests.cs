using System.Diagnostics;
using System.Text.Json;
using EtlFunnel.Sync.Runtime;
using EtlFunnel.Sync.Tests.Support;
using Npgsql;

namespace EtlFunnel.Sync.Tests;

public sealed class FaultTests
{
    private const string Table50k =
        "CREATE TABLE big(id int PRIMARY KEY, name text, amount numeric(12,2), at timestamptz); " +
        "INSERT INTO big SELECT g, 'name ' || g, g * 1.25, '2024-01-01'::timestamptz + g * interval '1 minute' FROM generate_series(1, 50000) g;";

    [Fact]
    public async Task A_run_killed_with_sigkill_and_started_again_writes_every_row_exactly_once()
    {
        await using var bed = await SyncTestBed.CreateAsync("kill", Table50k);
        var args = new ChildSyncArgs(bed.ConnectionString, "big", bed.OutputDirectory, bed.StateDirectory, bed.DeadLetterDirectory,
            Flows: 2, Pipelines: 2, BlocksPerChunk: 8, BatchSize: 500, DelayPerBatchMs: 40);
        using (var child = ChildProcess.Start(args))
        {
            // Kill once some replica has checkpointed a chunk (so the rerun has real state to resume from) but long before the end.
            var watch = Stopwatch.StartNew();
            while (!child.HasExited && watch.Elapsed < TimeSpan.FromSeconds(60) && CheckpointedRows(bed.StateDirectory) < 4000)
            {
                await Task.Delay(50);
            }

            child.HasExited.Should().BeFalse($"the child must still be running when killed; stderr: {(child.HasExited ? await child.StandardError.ReadToEndAsync() : "")}");
            child.Kill(entireProcessTree: true);
            await child.WaitForExitAsync();
        }

        var before = bed.ReadOutputLines();
        before.Should().BeLessThan(100000, "the child was killed part-way");

        var report = await new SyncEngine().RunAsync(ChildProcess.BuildJob(args with { DelayPerBatchMs = 0 }));
        report.Outcome.Should().Be(SyncOutcome.Succeeded);
        report.Replicas.Should().Contain(r => r.Resumed, "replicas continue from their checkpoints");
        report.DocsIndexed.Should().Be(50000);
        var ids = bed.ReadOutput().Select(d => d.Id).ToList();
        ids.Should().HaveCount(50000, "no lost and no duplicated documents");
        ids.Should().OnlyHaveUniqueItems();
    }

    [Fact]
    public async Task A_backend_terminated_mid_read_reconnects_and_resumes_from_its_checkpoint()
    {
        await using var bed = await SyncTestBed.CreateAsync("term", Table50k);
        var terminated = 0;
        var hooks = new SyncTestHooks
        {
            AfterDispatch = async e =>
            {
                if (e.BatchNumber == 3 && Interlocked.Exchange(ref terminated, 1) == 0)
                {
                    await using var admin = new NpgsqlConnection(bed.ConnectionString);
                    await admin.OpenAsync();
                    await using var kill = new NpgsqlCommand($"SELECT pg_terminate_backend({e.BackendProcessId})", admin);
                    (await kill.ExecuteScalarAsync()).Should().Be(true);
                }
            },
        };
        var report = await new SyncEngine(null, hooks).RunAsync(
            bed.Job("big", 1, 2, bed.Options(blocksPerChunk: 64), props: new Dictionary<string, object?> { ["batch_size"] = 1000 }));

        terminated.Should().Be(1);
        report.Outcome.Should().Be(SyncOutcome.Succeeded);
        report.Retries.Should().BeGreaterThan(0, "the replica reconnected");
        report.DocsIndexed.Should().Be(50000);
        var ids = bed.ReadOutput().Select(d => d.Id).ToList();
        ids.Should().HaveCount(50000).And.OnlyHaveUniqueItems();
    }

    [Fact]
    public async Task Cancellation_drains_saves_checkpoints_and_a_rerun_resumes_to_exactly_the_rows()
    {
        await using var bed = await SyncTestBed.CreateAsync("cancel", Table50k);
        var job = bed.Job("big", 2, 2, bed.Options(blocksPerChunk: 8), props: new Dictionary<string, object?> { ["batch_size"] = 500 });
        using var cts = new CancellationTokenSource();
        var hooks = new SyncTestHooks { AfterDispatch = e => { if (e.BatchNumber == 10) { cts.Cancel(); } return ValueTask.CompletedTask; } };
        var first = await new SyncEngine(null, hooks).RunAsync(job, null, cts.Token);
        first.Outcome.Should().Be(SyncOutcome.Cancelled);
        first.Summary.Should().Contain("run again to resume");
        first.DocsIndexed.Should().BeLessThan(50000);

        var second = await new SyncEngine().RunAsync(job);
        second.Outcome.Should().Be(SyncOutcome.Succeeded);
        second.DocsIndexed.Should().Be(50000);
        bed.ReadOutput().Select(d => d.Id).Should().HaveCount(50000).And.OnlyHaveUniqueItems();

        // A completed run is not resumed again: the next run is a fresh full sync that rewrites the files.
        var third = await new SyncEngine().RunAsync(job);
        third.Replicas.Should().OnlyContain(r => !r.Resumed);
        bed.ReadOutput().Should().HaveCount(50000);
    }

    [Fact]
    public async Task Replicas_read_one_exported_snapshot_so_rows_changed_after_it_are_not_in_the_output()
    {
        await using var bed = await SyncTestBed.CreateAsync("snap",
            "CREATE TABLE s(id int PRIMARY KEY, v text); INSERT INTO s SELECT g, 'before' FROM generate_series(1, 20000) g;");
        var changed = 0;
        var hooks = new SyncTestHooks
        {
            AfterDispatch = async _ =>
            {
                if (Interlocked.Exchange(ref changed, 1) == 0)
                {
                    await bed.ExecuteAsync(
                        "INSERT INTO s SELECT g, 'after' FROM generate_series(20001, 25000) g; " +
                        "UPDATE s SET v = 'after' WHERE id % 2 = 0; DELETE FROM s WHERE id % 5 = 0;");
                }
            },
        };
        // One replica at a time, so most replicas open their transactions after the change committed.
        var options = bed.Options(blocksPerChunk: 4) with { MaxConcurrency = 1 };
        var report = await new SyncEngine(null, hooks).RunAsync(bed.Job("s", 2, 3, options, props: new Dictionary<string, object?> { ["batch_size"] = 200 }));

        report.Outcome.Should().Be(SyncOutcome.Succeeded);
        var docs = bed.ReadOutput();
        docs.Should().HaveCount(20000);
        docs.Select(d => d.Id).Should().OnlyHaveUniqueItems();
        docs.Should().OnlyContain(d => d.Source.GetProperty("v").GetString() == "before");
    }

    [Fact]
    public async Task Partition_reads_use_a_tid_range_scan_not_a_sequential_scan()
    {
        await using var bed = await SyncTestBed.CreateAsync("tid", "CREATE TABLE t(id int PRIMARY KEY, x text); INSERT INTO t SELECT g, 'x' FROM generate_series(1, 5000) g; ANALYZE t;");
        var layout = new Sync.Postgres.TableLayout("public.t", [new Sync.Postgres.ColumnInfo("id", "int4", Sync.Postgres.ColumnKind.Int32), new Sync.Postgres.ColumnInfo("x", "text", Sync.Postgres.ColumnKind.Text)],
            ["id"], [new Sync.Postgres.LeafRelation("public.t", 27)]);
        var copy = new Sync.Postgres.PartitionReader(layout, null).CopyCommand(new Sync.Postgres.BlockChunk("public.t", 5, 12));
        var select = copy["COPY (".Length..copy.LastIndexOf(") TO STDOUT", StringComparison.Ordinal)];
        await using var conn = new NpgsqlConnection(bed.ConnectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("EXPLAIN (FORMAT JSON) " + select, conn);
        var plan = JsonDocument.Parse((string)(await cmd.ExecuteScalarAsync())!).RootElement[0].GetProperty("Plan");
        plan.GetProperty("Node Type").GetString().Should().Be("Tid Range Scan", select);
        plan.GetProperty("TID Cond").GetString().Should().Contain("(5,0)").And.Contain("(12,0)");
    }

    private static long CheckpointedRows(string stateDir)
    {
        if (!Directory.Exists(stateDir))
        {
            return 0;
        }

        long rows = 0;
        foreach (var f in Directory.EnumerateFiles(stateDir, "*.json", SearchOption.AllDirectories).Where(f => !f.EndsWith("run.json", StringComparison.Ordinal)))
        {
            try
            {
                using var doc = JsonDocument.Parse(File.ReadAllBytes(f));
                rows += doc.RootElement.GetProperty("RowsRead").GetInt64();
            }
            catch (Exception ex) when (ex is IOException or JsonException)
            {
            }
        }

        return rows;
    }
}
