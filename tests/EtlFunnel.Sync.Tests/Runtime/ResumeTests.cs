using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using EtlFunnel.Sync.Tests.Support;
using EtlFunnel.Testing.Elasticsearch;
using Npgsql;
using Xunit.Abstractions;

namespace EtlFunnel.Sync.Tests.Runtime;

/// <summary>
/// A full run killed with SIGKILL loses its exported snapshot; the resumed run reads under a new one while writers keep
/// moving rows and a VACUUM FULL rewrites the heap in between. Nothing may be lost or left stale.
/// </summary>
public sealed class ResumeTests(ITestOutputHelper output)
{
    private const int Accounts = 20000;
    private const int Tellers = 50;
    private const int Branches = 5;
    private const long AccountStart = 1000;

    // TPC-B shaped (pgbench's tables, fillfactor 100 so an update moves its row to another block), every balance
    // changed only by transfers, so the sum of each table's balances is the same at every consistent point.
    private static readonly string Schema =
        "CREATE TABLE accounts(aid int PRIMARY KEY, bid int, abalance bigint, filler char(84)); " +
        $"INSERT INTO accounts SELECT g, 1 + g % {Branches}, {AccountStart}, '' FROM generate_series(1, {Accounts}) g; " +
        "CREATE TABLE tellers(tid int PRIMARY KEY, bid int, tbalance bigint, filler char(84)); " +
        $"INSERT INTO tellers SELECT g, 1 + g % {Branches}, 100, '' FROM generate_series(1, {Tellers}) g; " +
        "CREATE TABLE branches(bid int PRIMARY KEY, bbalance bigint, filler char(88)); " +
        $"INSERT INTO branches SELECT g, 10000, '' FROM generate_series(1, {Branches}) g;";

    [Theory]
    [InlineData("VACUUM FULL accounts")]
    [InlineData("VACUUM accounts")]
    public async Task Resume_after_sigkill_with_concurrent_transfers_and_a_vacuum_loses_no_account_and_keeps_every_balance_sum(string vacuum)
    {
        await using var bed = await SyncTestBed.CreateAsync("tpcb", Schema);
        await using var es = await ElasticsearchTestServer.StartAsync();
        var args = new ChildSyncArgs(bed.ConnectionString, "accounts", bed.OutputDirectory, bed.StateDirectory, bed.DeadLetterDirectory,
            Flows: 1, Pipelines: 3, BlocksPerChunk: 4, BatchSize: 200, DelayPerBatchMs: 40, ElasticsearchUrl: es.Uri.ToString(),
            MoreTables: ["tellers", "branches"]);

        using var stop = new CancellationTokenSource();
        var writers = Enumerable.Range(0, 2).Select(w => Task.Run(() => TransferUntilAsync(bed.ConnectionString, 1000 + w, stop.Token))).ToList();
        using (var child = ChildProcess.Start(args))
        {
            var watch = Stopwatch.StartNew();
            while (!child.HasExited && watch.Elapsed < TimeSpan.FromSeconds(90) && Written() < 5000)
            {
                await Task.Delay(50);
            }

            child.HasExited.Should().BeFalse($"the child must be killed mid-run; stderr: {(child.HasExited ? await child.StandardError.ReadToEndAsync() : "")}");
            child.Kill(entireProcessTree: true);
            await child.WaitForExitAsync();
        }

        Written().Should().BeLessThan(Accounts, "the child was killed part-way");
        // While the sync is down: many more transfers, then either a rewrite that compacts the heap (block numbers now
        // mean other rows) or a plain VACUUM that frees space in the blocks already read, which the next transfers'
        // new row versions fill: rows move from unread ranges into read ones.
        await TransferAsync(bed.ConnectionString, new Random(7), 3000, CancellationToken.None);
        await bed.ExecuteAsync(vacuum);
        await TransferAsync(bed.ConnectionString, new Random(8), 3000, CancellationToken.None);

        var report = await new SyncEngine().RunAsync(ChildProcess.BuildJob(args with { DelayPerBatchMs = 0 }));
        await stop.CancelAsync();
        var transfers = (await Task.WhenAll(writers)).Sum();

        report.Outcome.Should().Be(SyncOutcome.Succeeded, report.Summary);
        report.Replicas.Should().Contain(r => r.Resumed);
        transfers.Should().BeGreaterThan(0, "the writers ran concurrently with the sync");
        // Every document was written from a row the resumed run read, or (for a row unchanged since the first snapshot)
        // one the first run read; so each index holds exactly the table at the resumed run's snapshot, a consistent
        // point. Transfers keep each table's balance sum, so every sum must equal the initial one; a lost row or a
        // stale balance (one leg of a transfer seen, the other not) changes it.
        AssertTable(es.Documents("idx"), "aid", "abalance", Accounts, Accounts * AccountStart);
        AssertTable(es.Documents("tellers"), "tid", "tbalance", Tellers, Tellers * 100);
        AssertTable(es.Documents("branches"), "bid", "bbalance", Branches, Branches * 10000);
        (await SumAsync(bed.ConnectionString, "SELECT sum(abalance) FROM accounts")).Should().Be(Accounts * AccountStart, "transfers keep the sum");

        // What the catch-up cost: rows re-read in ranges read before the kill (from the replicas' checkpoints).
        var reRead = Directory.EnumerateFiles(bed.StateDirectory, "*.json", SearchOption.AllDirectories)
            .Where(f => !f.EndsWith("run.json", StringComparison.Ordinal))
            .Select(f => JsonDocument.Parse(File.ReadAllBytes(f)).RootElement)
            .Select(e => (Replica: e.GetProperty("RunId").GetString(), ReRead: e.GetProperty("ReReadAfterResume").GetInt64(), Rows: e.GetProperty("RowsRead").GetInt64()))
            .ToList();
        output.WriteLine($"{vacuum}: transfers={transfers + 6000} rows read={reRead.Sum(r => r.Rows)} of which re-read after resume={reRead.Sum(r => r.ReRead)}");
        reRead.Sum(r => r.ReRead).Should().BeGreaterThan(0, "rows moved into ranges read before the kill, and the catch-up read them");

        // Documents written so far into the run's physical index of idx (the alias exists only once the run completed).
        int Written() => es.IndexNames.Where(n => n.StartsWith("idx-", StringComparison.Ordinal)).Sum(n => es.Documents(n).Count);
    }

    [Theory]
    [InlineData("UPDATE big SET name = 'moved ' || id WHERE id % 7 = 0; VACUUM big; UPDATE big SET name = 'moved again ' || id WHERE id % 7 = 0", true)]
    [InlineData("VACUUM FULL big", true)]
    [InlineData("SELECT 1", false)]
    public async Task A_files_run_resumed_after_a_kill_holds_each_row_once_with_its_current_value(string whileDown, bool startsOver)
    {
        await using var bed = await SyncTestBed.CreateAsync("fileresume",
            "CREATE TABLE big(id int PRIMARY KEY, name text); INSERT INTO big SELECT g, 'name ' || g FROM generate_series(1, 30000) g;");
        var args = new ChildSyncArgs(bed.ConnectionString, "big", bed.OutputDirectory, bed.StateDirectory, bed.DeadLetterDirectory,
            Flows: 1, Pipelines: 3, BlocksPerChunk: 8, BatchSize: 500, DelayPerBatchMs: 40);
        using (var child = ChildProcess.Start(args))
        {
            var watch = Stopwatch.StartNew();
            while (!child.HasExited && watch.Elapsed < TimeSpan.FromSeconds(60) && bed.ReadOutputLines() < 12000)
            {
                await Task.Delay(50);
            }

            child.HasExited.Should().BeFalse("the child must be killed mid-run");
            child.Kill(entireProcessTree: true);
            await child.WaitForExitAsync();
        }

        await bed.ExecuteAsync(whileDown.Split(';')[0]);
        foreach (var statement in whileDown.Split(';').Skip(1))
        {
            await bed.ExecuteAsync(statement);
        }

        var report = await new SyncEngine().RunAsync(ChildProcess.BuildJob(args with { DelayPerBatchMs = 0 }));

        report.Outcome.Should().Be(SyncOutcome.Succeeded, report.Summary);
        report.Replicas.Any(r => r.Resumed).Should().Be(!startsOver, startsOver ? "rows changed while the run was down: files cannot replace documents" : "nothing changed: the run continues");
        var docs = bed.ReadOutput();
        docs.Select(d => d.Id).Should().OnlyHaveUniqueItems().And.HaveCount(30000);
        var table = new Dictionary<string, string>();
        await using var conn = new NpgsqlConnection(bed.ConnectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT id::text, name FROM big", conn);
        await using (var r = await cmd.ExecuteReaderAsync())
        {
            while (await r.ReadAsync())
            {
                table[r.GetString(0)] = r.GetString(1);
            }
        }

        docs.ToDictionary(d => d.Id, d => d.Source.GetProperty("name").GetString()!).Should().Equal(table, "the files hold the table as it is now");
    }

    [Fact]
    public async Task A_full_run_with_a_smaller_plan_removes_the_files_of_the_earlier_plan_so_deleted_rows_do_not_come_back()
    {
        await using var bed = await SyncTestBed.CreateAsync("plans",
            "CREATE TABLE p(id int PRIMARY KEY, v text); INSERT INTO p SELECT g, 'v' FROM generate_series(1, 20000) g;");
        (await new SyncEngine().RunAsync(bed.Job("p", 2, 3, bed.Options(blocksPerChunk: 8)))).Outcome.Should().Be(SyncOutcome.Succeeded);
        bed.ReadOutput().Should().HaveCount(20000);
        await bed.ExecuteAsync("DELETE FROM p WHERE id > 10000");

        var report = await new SyncEngine().RunAsync(bed.Job("p", 1, 2, bed.Options(blocksPerChunk: 8)));

        report.Outcome.Should().Be(SyncOutcome.Succeeded);
        Directory.EnumerateFiles(bed.OutputDirectory, "*.ndjson", SearchOption.AllDirectories).Should().HaveCount(2, "only this plan's replica files remain");
        bed.ReadOutput().Select(d => int.Parse(d.Id, CultureInfo.InvariantCulture)).Order().Should().Equal(Enumerable.Range(1, 10000));
    }

    private static void AssertTable(IReadOnlyDictionary<string, string> docs, string key, string balance, int rows, long sum)
    {
        docs.Keys.Order(StringComparer.Ordinal).Should().Equal(
            Enumerable.Range(1, rows).Select(i => i.ToString(CultureInfo.InvariantCulture)).Order(StringComparer.Ordinal), $"every {key} exactly once");
        long total = 0;
        foreach (var (id, json) in docs)
        {
            using var doc = JsonDocument.Parse(json);
            doc.RootElement.GetProperty(key).GetInt32().ToString(CultureInfo.InvariantCulture).Should().Be(id);
            total += doc.RootElement.GetProperty(balance).GetInt64();
        }

        total.Should().Be(sum, $"the {balance} sum of a consistent point");
    }

    private static async Task<int> TransferUntilAsync(string connectionString, int seed, CancellationToken stop)
    {
        var random = new Random(seed);
        var done = 0;
        while (!stop.IsCancellationRequested)
        {
            done += await TransferAsync(connectionString, random, 50, stop);
        }

        return done;
    }

    /// <summary>Moves money between two accounts, two tellers and two branches in each of <paramref name="count"/> transactions.</summary>
    private static async Task<int> TransferAsync(string connectionString, Random random, int count, CancellationToken stop)
    {
        await using var conn = new NpgsqlConnection(connectionString);
        await conn.OpenAsync(CancellationToken.None);
        var done = 0;
        for (var i = 0; i < count && !stop.IsCancellationRequested; i++)
        {
            var amount = random.Next(1, 500);
            await using var tx = await conn.BeginTransactionAsync(CancellationToken.None);
            try
            {
                foreach (var (table, key, column, n) in new[] { ("accounts", "aid", "abalance", Accounts), ("tellers", "tid", "tbalance", Tellers), ("branches", "bid", "bbalance", Branches) })
                {
                    var from = random.Next(1, n + 1);
                    var to = 1 + (from % n);
                    // Lower id first, so concurrent writers mostly lock rows in one order (a deadlock is rolled back and skipped).
                    var (first, second, sign) = from < to ? (from, to, -1) : (to, from, 1);
                    await using var cmd = new NpgsqlCommand(
                        $"UPDATE {table} SET {column} = {column} + CASE WHEN {key} = $1 THEN $2 ELSE -$2 END WHERE {key} IN ($1, $3)", conn, tx);
                    cmd.Parameters.AddWithValue(first);
                    cmd.Parameters.AddWithValue((long)(sign * amount));
                    cmd.Parameters.AddWithValue(second);
                    await cmd.ExecuteNonQueryAsync(CancellationToken.None);
                }

                await tx.CommitAsync(CancellationToken.None);
                done++;
            }
            catch (PostgresException ex) when (ex.SqlState is PostgresErrorCodes.DeadlockDetected or PostgresErrorCodes.SerializationFailure)
            {
                await tx.RollbackAsync(CancellationToken.None);
            }
        }

        return done;
    }

    private static async Task<long> SumAsync(string connectionString, string sql)
    {
        await using var conn = new NpgsqlConnection(connectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, conn);
        return Convert.ToInt64(await cmd.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
    }
}
