using System.Diagnostics;
using EtlFunnel.Sync.Runtime;
using EtlFunnel.Sync.Tests.Support;
using Npgsql;

namespace EtlFunnel.Sync.Tests.Postgres;

/// <summary>The coordinator's locks and pinned settings, against a real server with real concurrent sessions.</summary>
public sealed class SourceSnapshotTests
{
    // Holes (every other row deleted and vacuumed away before the run) so a rewrite really moves rows to other blocks.
    private const string Table =
        "CREATE TABLE s(id int PRIMARY KEY, v text, pad text); " +
        "INSERT INTO s SELECT g, 'before', repeat('x', 200) FROM generate_series(1, 40000) g; DELETE FROM s WHERE id % 2 = 0;";

    [Theory]
    [InlineData("TRUNCATE later; INSERT INTO later SELECT g, 'reloaded', '' FROM generate_series(1, 100) g", 100)]
    [InlineData("VACUUM FULL later", 20000)]
    [InlineData("CLUSTER later USING later_pkey", 20000)]
    public async Task A_rewrite_started_during_a_run_waits_for_the_run_and_no_row_is_lost(string rewrite, long rowsAfter)
    {
        // Two tables; the rewrite hits the one no replica has read yet, so only the locks taken at the start protect it.
        await using var bed = await SyncTestBed.CreateAsync("rewrite", Table + Table.Replace(" s", " later", StringComparison.Ordinal));
        await bed.ExecuteAsync("VACUUM s");
        await bed.ExecuteAsync("VACUUM later");
        Task? rewriting = null;
        var waited = false;
        var hooks = new SyncTestHooks
        {
            AfterDispatch = async e =>
            {
                if (e.BatchNumber != 1 || rewriting is not null)
                {
                    return;
                }

                rewriting = bed.ExecuteAsync(rewrite);
                // The rewrite must be queued behind the run's ACCESS SHARE lock before the run goes on.
                waited = await WaitUntilWaitingForLockAsync(bed.ConnectionString, rewrite);
            },
        };
        // One replica reads at a time, in job order: every replica of `later` starts after the rewrite was issued.
        var options = bed.Options(blocksPerChunk: 8) with { MaxConcurrency = 1 };
        var props = new Dictionary<string, object?> { ["batch_size"] = 500 };
        var first = bed.Job("s", 1, 3, options, index: "s", props: props).Flows[0];
        var second = bed.Job("later", 1, 3, options, index: "later", props: props).Flows[0] with { Name = "flow_1" };
        var report = await new SyncEngine(null, hooks).RunAsync(new SyncJob { Options = options, Flows = [first, second] });

        waited.Should().BeTrue("the rewrite waits for the run's lock");
        report.Outcome.Should().Be(SyncOutcome.Succeeded, report.Summary);
        var docs = bed.ReadOutput().Where(d => d.Index == "later").ToList();
        docs.Select(d => d.Id).Should().OnlyHaveUniqueItems();
        docs.Should().HaveCount(20000, "every row of the snapshot is read although the table was rewritten while the run was going");
        docs.Should().OnlyContain(d => d.Source.GetProperty("v").GetString() == "before");

        await rewriting!;
        (await CountAsync(bed.ConnectionString, "SELECT count(*) FROM later")).Should().Be(rowsAfter, "the rewrite ran once the run released its locks");
    }

    [Fact]
    public async Task A_table_locked_by_another_session_fails_the_run_after_the_lock_timeout_naming_the_table()
    {
        await using var bed = await SyncTestBed.CreateAsync("locked", Table);
        await using var holder = new NpgsqlConnection(bed.ConnectionString);
        await holder.OpenAsync();
        await using var tx = await holder.BeginTransactionAsync();
        await using (var lockCmd = new NpgsqlCommand("LOCK TABLE s IN ACCESS EXCLUSIVE MODE", holder, tx))
        {
            await lockCmd.ExecuteNonQueryAsync();
        }

        var options = bed.Options() with { LockTimeout = TimeSpan.FromMilliseconds(200) };
        var run = () => new SyncEngine().RunAsync(bed.Job("s", 1, 2, options));

        var error = (await run.Should().ThrowAsync<SyncConfigurationException>()).Which;
        error.Message.Should().Contain("\"public\".\"s\"").And.Contain("ACCESS SHARE").And.Contain("LockTimeout");
        bed.ReadOutput().Should().BeEmpty("no data moves before the locks are held");
    }

    [Fact]
    public async Task Database_level_settings_change_neither_documents_nor_ids_and_an_idle_timeout_does_not_kill_the_run()
    {
        await using var bed = await SyncTestBed.CreateAsync("settings",
            "CREATE TABLE st(id int, f double precision, fa double precision[], iv interval, iva interval[], by bytea, bya bytea[], " +
            "ts timestamptz, tsa timestamptz[], d date, da date[], PRIMARY KEY (id, f)); " +
            "INSERT INTO st SELECT g, g / 3.0, ARRAY[g / 7.0, 0.1], make_interval(days => g, secs => 1.5), ARRAY[make_interval(hours => g)], " +
            "'\\x00ff'::bytea, ARRAY['\\x0102'::bytea], '2024-02-29 13:14:15.5+02', ARRAY['2024-02-29 13:14:15.5+02'::timestamptz], " +
            "'2024-02-29', ARRAY['2024-03-01'::date] FROM generate_series(1, 3000) g;");
        var job = bed.Job("st", 1, 3, bed.Options(blocksPerChunk: 4), props: new Dictionary<string, object?> { ["batch_size"] = 200 });
        (await new SyncEngine().RunAsync(job)).Outcome.Should().Be(SyncOutcome.Succeeded);
        var expected = bed.ReadOutput().ToDictionary(d => d.Id, d => d.Source.GetRawText());
        expected.Should().HaveCount(3000);
        expected.Keys.Should().Contain("1|0.3333333333333333", "a float key part has its shortest exact text");

        var database = new NpgsqlConnectionStringBuilder(bed.ConnectionString).Database;
        await bed.ExecuteAsync(
            $"ALTER DATABASE \"{database}\" SET extra_float_digits = -10; ALTER DATABASE \"{database}\" SET IntervalStyle = 'sql_standard'; " +
            $"ALTER DATABASE \"{database}\" SET bytea_output = 'escape'; ALTER DATABASE \"{database}\" SET DateStyle = 'SQL, DMY'; " +
            $"ALTER DATABASE \"{database}\" SET TimeZone = 'Asia/Kolkata'; ALTER DATABASE \"{database}\" SET statement_timeout = '20s'; " +
            $"ALTER DATABASE \"{database}\" SET idle_in_transaction_session_timeout = '100ms';");
        NpgsqlConnection.ClearAllPools();
        await using (var check = new NpgsqlConnection(bed.ConnectionString))
        {
            await check.OpenAsync();
            await using var cmd = new NpgsqlCommand("SELECT current_setting('extra_float_digits') || ' ' || current_setting('idle_in_transaction_session_timeout')", check);
            (await cmd.ExecuteScalarAsync()).Should().Be("-10 100ms", "the database settings are in effect for new sessions");
        }

        // Batches 300 ms apart: every session of the run is idle in its transaction far longer than the database allows.
        var hooks = new SyncTestHooks { AfterDispatch = _ => new ValueTask(Task.Delay(300)) };
        Directory.Delete(bed.StateDirectory, recursive: true);
        var report = await new SyncEngine(null, hooks).RunAsync(job with { Options = job.Options with { MaxConcurrency = 1 } });

        report.Outcome.Should().Be(SyncOutcome.Succeeded, report.Summary);
        report.Retries.Should().Be(0, "no session was killed");
        var actual = bed.ReadOutput().ToDictionary(d => d.Id, d => d.Source.GetRawText());
        actual.Should().BeEquivalentTo(expected, "pinned session settings make documents and ids independent of database settings");
    }

    private static async Task<bool> WaitUntilWaitingForLockAsync(string connectionString, string statement)
    {
        await using var admin = new NpgsqlConnection(connectionString);
        await admin.OpenAsync();
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < TimeSpan.FromSeconds(30))
        {
            await using var cmd = new NpgsqlCommand(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query = $1", admin);
            cmd.Parameters.AddWithValue(statement.Split(';')[0]);
            if ((long)(await cmd.ExecuteScalarAsync())! > 0)
            {
                return true;
            }

            await Task.Delay(20);
        }

        return false;
    }

    private static async Task<long> CountAsync(string connectionString, string sql)
    {
        await using var conn = new NpgsqlConnection(connectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, conn);
        return (long)(await cmd.ExecuteScalarAsync())!;
    }
}
