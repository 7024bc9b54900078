using System.Globalization;
using System.Text;
using EtlFunnel.Sync.Cdc;
using EtlFunnel.Sync.Tests.Support;
using EtlFunnel.Testing.Elasticsearch;
using Npgsql;

namespace EtlFunnel.Sync.Tests.Cdc;

/// <summary>
/// Differential tests: a seeded random workload (inserts, updates incl. key changes, TOASTed values, deletes, a TRUNCATE, an
/// ADD COLUMN) runs while the snapshot and the stream run; at the end the index equals the table, document by document.
/// </summary>
[Collection("cdc")]
public sealed class CdcDifferentialTests
{
    private const string Seed = """
        CREATE TABLE diff(id int PRIMARY KEY, k int NOT NULL, v text, big text, n numeric, at timestamptz);
        ALTER TABLE diff ALTER big SET STORAGE EXTERNAL;
        INSERT INTO diff SELECT g, g % 97, 'v' || g, CASE WHEN g % 7 = 0 THEN repeat(md5(g::text), 200) END, g / 3.0, '2025-01-01'::timestamptz + g * interval '1 second'
        FROM generate_series(1, 3000) g;
        """;

    [Fact]
    public async Task Random_workload_while_snapshot_and_stream_run_leaves_the_index_equal_to_the_table()
    {
        await using var bed = await SyncTestBed.CreateAsync("cdcdiff", Seed);
        await using var es = await ElasticsearchTestServer.StartAsync();
        try
        {
            var a = new CdcChildArgs(bed.ConnectionString, "diff", "t_" + Guid.NewGuid().ToString("N")[..20], es.Uri.ToString(), bed.StateDirectory, bed.DeadLetterDirectory, 3, 0);
            var job = CdcChild.Job(a);
            using var stop = new CancellationTokenSource();
            var streamingStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var streaming = new CdcEngine().RunAsync(job, new CdcRunOptions
            {
                HeartbeatInterval = TimeSpan.FromMilliseconds(100),
                MaxBatchSize = 50,
                OnStatus = s =>
                {
                    if (s.Phase == CdcPhase.Streaming)
                    {
                        streamingStarted.TrySetResult();
                    }
                },
            }, cancellationToken: stop.Token);

            var workload = new Workload(bed.ConnectionString, seed: 12);
            // No DDL while the snapshot may still be taken: a TRUNCATE or ADD COLUMN that meets the snapshot's locks can wait out
            // lock_timeout (a known gap, docs/cdc.md "Not done yet").
            await workload.RunAsync(400, truncateAt: null, addColumnAt: null);
            await workload.RunAsync(400, truncateAt: null, addColumnAt: null);
            // Once it streams, the same random mix with an ADD COLUMN (later updates set it) and a TRUNCATE (delete_all) in it.
            await streamingStarted.Task.WaitAsync(TimeSpan.FromSeconds(120));
            await workload.RunAsync(300, truncateAt: 200, addColumnAt: 60);
            await stop.CancelAsync();
            var first = await streaming;
            first.Outcome.Should().Be(SyncOutcome.Cancelled, first.Error);

            var last = await new CdcEngine().RunAsync(job, CdcTestKit.UntilCaughtUp);

            last.Outcome.Should().Be(SyncOutcome.Succeeded, last.Error);
            // How many of the first 800 transactions commit after the slot's consistent point (and so come through the stream rather
            // than the snapshot) depends on when the slot was created; the exact check is the document comparison below.
            (first.ChangesApplied + last.ChangesApplied).Should().BePositive();
            CdcTestKit.AssertSameDocuments(es.Documents("diff"), await CdcTestKit.TableDocumentsAsync(bed, "diff"), "extra");
        }
        finally
        {
            await CdcTestKit.DropSlotsAsync(bed);
        }
    }

    [Fact]
    public async Task Kill_9_of_the_sync_mid_stream_then_a_rerun_still_leaves_the_index_equal_to_the_table()
    {
        await using var bed = await SyncTestBed.CreateAsync("cdckill", Seed);
        await using var es = await ElasticsearchTestServer.StartAsync();
        try
        {
            var a = new CdcChildArgs(bed.ConnectionString, "diff", "t_" + Guid.NewGuid().ToString("N")[..20], es.Uri.ToString(), bed.StateDirectory, bed.DeadLetterDirectory, 3, 15);
            using var child = CdcChild.Start(a);
            var stderr = child.StandardError.ReadToEndAsync();
            var stdout = child.StandardOutput.ReadToEndAsync();
            try
            {
                var workload = new Workload(bed.ConnectionString, seed: 34);
                await workload.RunAsync(300, truncateAt: 120, addColumnAt: null);
                // Mid-stream: the stream got past the TRUNCATE (documents written after it are in), while the changes after those still
                // queue up (15 ms per lane batch of at most 20 changes).
                await CdcEngineTests.WaitForAsync(() => child.HasExited || (es.IndexNames.Contains("diff") && es.Documents("diff").Values.Any(d => d.Contains("after truncate", StringComparison.Ordinal))));
                child.HasExited.Should().BeFalse("the child streams until it is killed");
            }
            finally
            {
                child.Kill(entireProcessTree: true);
                await child.WaitForExitAsync();
            }

            var more = new Workload(bed.ConnectionString, seed: 56);
            await more.RunAsync(300, truncateAt: null, addColumnAt: 50);
            await CdcEngineTests.WaitUntilAsync(bed, $"SELECT NOT active FROM pg_replication_slots WHERE slot_name = '{a.Slot}'");

            var rerun = await new CdcEngine().RunAsync(CdcChild.Job(a), CdcTestKit.UntilCaughtUp);

            rerun.Outcome.Should().Be(SyncOutcome.Succeeded, rerun.Error + await stdout + await stderr);
            CdcTestKit.AssertSameDocuments(es.Documents("diff"), await CdcTestKit.TableDocumentsAsync(bed, "diff"), "extra");
        }
        finally
        {
            await CdcTestKit.DropSlotsAsync(bed);
        }
    }

    /// <summary>A seeded mix of row changes in small transactions (some with several changes to one row).</summary>
    private sealed class Workload(string connectionString, int seed)
    {
        private readonly Random _random = new(seed);
        private int _nextId = 100_000 + (seed * 10_000);
        private bool _hasExtra;

        public async Task RunAsync(int operations, int? truncateAt, int? addColumnAt)
        {
            await using var conn = new NpgsqlConnection(connectionString);
            await conn.OpenAsync();
            _hasExtra = await ScalarAsync<bool>(conn, "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'diff'::regclass AND attname = 'extra' AND NOT attisdropped)");
            for (var op = 0; op < operations; op++)
            {
                if (op == truncateAt)
                {
                    await ExecuteAsync(conn, "TRUNCATE diff; INSERT INTO diff SELECT g, g % 97, 'after truncate ' || g, NULL, g, now() FROM generate_series(1, 500) g;");
                    continue;
                }

                if (op == addColumnAt)
                {
                    await ExecuteAsync(conn, "ALTER TABLE diff ADD COLUMN extra int");
                    _hasExtra = true;
                    continue;
                }

                var sql = new StringBuilder();
                var several = _random.Next(10) == 0;
                sql.Append(several ? "BEGIN;" : "");
                for (var i = 0; i < (several ? 1 + _random.Next(5) : 1); i++)
                {
                    sql.Append(Statement()).Append(';');
                }

                sql.Append(several ? "COMMIT;" : "");
                await ExecuteAsync(conn, sql.ToString());
            }
        }

        private string Statement()
        {
            var id = $"(SELECT id FROM diff ORDER BY id OFFSET {_random.Next(400)} LIMIT 1)";
            var text = string.Create(CultureInfo.InvariantCulture, $"'r{_random.Next(1_000_000)} ü\"\\'");
            return _random.Next(100) switch
            {
                < 25 => string.Create(CultureInfo.InvariantCulture, $"INSERT INTO diff(id, k, v, n, at) VALUES ({_nextId++}, {_random.Next(97)}, {text}, {_random.Next(100000)}.{_random.Next(100)}, now())"),
                < 45 => $"UPDATE diff SET v = {text}{(_hasExtra ? ", extra = " + _random.Next(50).ToString(CultureInfo.InvariantCulture) : "")} WHERE id = {id}",
                < 50 => $"UPDATE diff SET big = repeat(md5({text}), {_random.Next(50, 300)}) WHERE id = {id}",
                // A row whose big value is TOASTed, changed elsewhere: pgoutput does not send the unchanged TOAST value.
                < 55 => $"UPDATE diff SET v = {text} WHERE id = (SELECT id FROM diff WHERE big IS NOT NULL ORDER BY id OFFSET {_random.Next(20)} LIMIT 1)",
                < 65 => $"UPDATE diff SET id = {_nextId++} WHERE id = {id}",
                < 80 => $"DELETE FROM diff WHERE id = {id}",
                < 90 => string.Create(CultureInfo.InvariantCulture, $"UPDATE diff SET n = n + 1, at = at + interval '1 hour' WHERE k = {_random.Next(97)}"),
                _ => $"INSERT INTO diff(id, k, v) VALUES ({_nextId}, 1, 'ins') ; UPDATE diff SET v = 'upd' WHERE id = {_nextId}; DELETE FROM diff WHERE id = {_nextId++}",
            };
        }

        private static async Task ExecuteAsync(NpgsqlConnection conn, string sql)
        {
            await using var cmd = new NpgsqlCommand(sql, conn);
            await cmd.ExecuteNonQueryAsync();
        }

        private static async Task<T> ScalarAsync<T>(NpgsqlConnection conn, string sql)
        {
            await using var cmd = new NpgsqlCommand(sql, conn);
            return (T)(await cmd.ExecuteScalarAsync())!;
        }
    }
}
