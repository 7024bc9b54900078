using System.Diagnostics;
using System.Globalization;
using EtlFunnel.Benchmarks.Support;
using EtlFunnel.Destinations;
using EtlFunnel.Sync;
using EtlFunnel.Sync.Cdc;
using EtlFunnel.Testing.Elasticsearch;
using EtlFunnel.Testing.Postgres;
using Npgsql;

namespace EtlFunnel.Benchmarks.Measures;

/// <summary>
/// CDC: catch-up rate from a WAL backlog of row changes (inserts, then updates of half the rows) into NDJSON files and into the
/// Elasticsearch test server, against PostgreSQL's own pgoutput decoding of the same backlog (<c>pg_logical_slot_peek_binary_changes</c>,
/// the ceiling of any pgoutput consumer) measured in the same run; and commit → visible lag at a steady change rate.
/// The CDC engine runs in this process (so does the test server).
/// </summary>
internal static class CdcMeasures
{
    private const string Table = "cdc_rows";

    public static async Task RunAsync(BenchContext ctx, ResultTable table)
    {
        var changes = ctx.Smoke ? 20_000 : 1_000_000;
        var cs = await ctx.CreateDatabaseAsync("bench_cdc");
        await PostgresServer.ExecuteAsync(cs, $"""
            CREATE TABLE {Table} (id bigint PRIMARY KEY, qty int NOT NULL, amount numeric(12, 2), name text, note text, created_at timestamptz, active bool);
            """);
        await using var es = await ElasticsearchTestServer.StartAsync();
        var work = ctx.NewWorkDir("cdc");
        var slots = new List<string>();
        try
        {
            // Two flows (files, Elasticsearch) with their own slots, created (empty snapshot) before the backlog is written.
            var files = Job(cs, "bench_cdc_files", new FilesDestination(Path.Combine(work, "out")), work, "files");
            var elastic = Job(cs, "bench_cdc_es", new ElasticsearchDestination(es.Uri) { Compression = false }, work, "es");
            slots.AddRange(["bench_cdc_files", "bench_cdc_es", "bench_cdc_peek"]);
            foreach (var job in new[] { files, elastic })
            {
                var setup = await new CdcEngine().RunAsync(job, new CdcRunOptions { UntilCaughtUp = true });
                if (setup.Outcome != SyncOutcome.Succeeded)
                {
                    throw new InvalidOperationException($"CDC setup failed: {setup.Error}");
                }
            }

            // pgoutput reads publications as of each change, so the baseline's publication exists before the backlog.
            await PostgresServer.ExecuteAsync(cs, $"CREATE PUBLICATION bench_cdc_peek FOR TABLE {Table}");
            await PostgresServer.ExecuteAsync(cs, "SELECT pg_create_logical_replication_slot('bench_cdc_peek', 'pgoutput')");
            var load = Stopwatch.StartNew();
            var inserts = changes * 2 / 3;
            var step = Math.Max(1, inserts / 20);
            for (var from = 1; from <= inserts; from += step)
            {
                await PostgresServer.ExecuteAsync(cs, $"""
                    INSERT INTO {Table} SELECT g, g % 1000, (g % 100000) / 100.0, 'customer ' || g, CASE WHEN g % 5 = 0 THEN NULL ELSE md5(g::text) END,
                        timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second', g % 2 = 0 FROM generate_series({from}, {Math.Min(inserts, from + step - 1)}) g
                    """);
            }

            await PostgresServer.ExecuteAsync(cs, $"UPDATE {Table} SET qty = qty + 1 WHERE id % 2 = 0");
            changes = inserts + (inserts / 2);
            Log.Info($"cdc: wrote a backlog of {Fmt.N(changes)} changes in {load.Elapsed.TotalSeconds:F1} s");
            await WaitForWalFlushAsync(cs);

            var peek = await PeekAsync(cs);
            var toFiles = await CatchUpAsync(files);
            var toEs = await CatchUpAsync(elastic);
            foreach (var (name, run) in new[] { ("files", toFiles), ("Elasticsearch", toEs) })
            {
                if (run.Changes < changes)
                {
                    throw new InvalidOperationException($"cdc catch-up into {name} applied {run.Changes} of {changes} changes");
                }
            }

            table.Add(new ResultRow($"cdc: catch-up from a backlog of {Fmt.N(changes)} changes → NDJSON files, 1 lane, vs PostgreSQL decoding the same backlog alone (pg_logical_slot_peek_binary_changes, pgoutput)",
                $"{Fmt.Rate(toFiles.Changes / toFiles.Seconds).Replace("rows", "changes", StringComparison.Ordinal)} ({Fmt.Sec(toFiles.Seconds)})",
                $"{Fmt.Rate(changes / peek).Replace("rows", "changes", StringComparison.Ordinal)} ({Fmt.Sec(peek)})",
                Fmt.X(toFiles.Changes / toFiles.Seconds / (changes / peek)), "≥ 50k changes/s", toFiles.Changes / toFiles.Seconds >= 50_000));
            table.Add(new ResultRow($"cdc: catch-up from the same backlog → Elasticsearch test server (in this process, compression off), 1 lane, vs → files",
                $"{Fmt.Rate(toEs.Changes / toEs.Seconds).Replace("rows", "changes", StringComparison.Ordinal)} ({Fmt.Sec(toEs.Seconds)})",
                $"{Fmt.Rate(toFiles.Changes / toFiles.Seconds).Replace("rows", "changes", StringComparison.Ordinal)} ({Fmt.Sec(toFiles.Seconds)})",
                Fmt.X(toEs.Changes / toEs.Seconds / (toFiles.Changes / toFiles.Seconds)), "— (info)", null));

            var quiet = TimeSpan.FromSeconds(ctx.Smoke ? 20 : 600);
            var retention = await QuietRetentionAsync(ctx, cs, files, quiet);
            slots.Add("bench_cdc_idle");
            table.Add(new ResultRow(
                $"cdc: WAL retained by the flow's slot over a {quiet.TotalMinutes:0.#}-minute quiet period of its tables while another database on the server writes {Fmt.Mb(retention.OtherWal)} of WAL (streaming, default heartbeats every 10 s), max / at the end, vs an idle slot created at the same time",
                $"{Fmt.Mb(retention.OursMax)} / {Fmt.Mb(retention.OursEnd)}", Fmt.Mb(retention.IdleEnd), Fmt.X(retention.OursEnd / Math.Max(1, retention.IdleEnd)),
                "bounded (≤ 64 MB at the end)", retention.OursEnd <= 64 * 1024 * 1024));

            var rate = ctx.Smoke ? 1000 : 5000;
            var (p50, p99, samples) = await LagAsync(cs, es, elastic, rate, TimeSpan.FromSeconds(ctx.Smoke ? 5 : 20));
            table.Add(new ResultRow($"cdc: commit → visible in the Elasticsearch test server at a steady {Fmt.N(rate)} changes/s (a transaction of {Fmt.N(rate / 100)} rows every 10 ms; {Fmt.N(samples)} transactions) p50 / p99",
                $"{Fmt.Ms(p50)} / {Fmt.Ms(p99)}", "—", "—", "p99 ≤ 250 ms", p99 <= 250));
        }
        finally
        {
            await using var conn = new NpgsqlConnection(cs);
            await conn.OpenAsync();
            await using var drop = new NpgsqlCommand("SELECT count(pg_drop_replication_slot(slot_name)) FROM pg_replication_slots WHERE database = current_database() AND NOT active", conn);
            await drop.ExecuteScalarAsync();
        }
    }

    private static SyncJob Job(string cs, string slot, SyncDestination destination, string work, string name) => new()
    {
        Options = new SyncOptions { StateDirectory = Path.Combine(work, name, "state"), DeadLetterDirectory = Path.Combine(work, name, "dead") },
        Flows =
        [
            new SyncFlow
            {
                Name = name,
                SourceConnectionString = cs,
                Destination = destination,
                Cdc = new CdcFlowSettings(slot, slot),
                Pipelines = [new SyncPipeline { ReplicaName = Table, Table = Table, IndexName = Table + "_" + name }],
            },
        ],
    };

    private static async Task<(long Changes, double Seconds)> CatchUpAsync(SyncJob job)
    {
        var watch = Stopwatch.StartNew();
        var report = await new CdcEngine().RunAsync(job, new CdcRunOptions { UntilCaughtUp = true });
        watch.Stop();
        if (report.Outcome != SyncOutcome.Succeeded)
        {
            throw new InvalidOperationException($"CDC catch-up failed: {report.Error}");
        }

        Log.Info($"cdc: {job.Flows[0].Name} caught up: {Fmt.N(report.ChangesApplied)} changes in {watch.Elapsed.TotalSeconds:F2} s");
        return (report.ChangesApplied, watch.Elapsed.TotalSeconds);
    }

    // The fixture runs with synchronous_commit = off; decoding reads only flushed WAL, so the baseline waits until all of it is.
    private static async Task WaitForWalFlushAsync(string cs)
    {
        await using var conn = new NpgsqlConnection(cs);
        await conn.OpenAsync();
        await using var target = new NpgsqlCommand("SELECT pg_current_wal_insert_lsn()::text", conn);
        var lsn = (string)(await target.ExecuteScalarAsync())!;
        for (var i = 0; i < 600; i++)
        {
            await using var cmd = new NpgsqlCommand($"SELECT pg_current_wal_flush_lsn() >= '{lsn}'::pg_lsn", conn);
            if ((bool)(await cmd.ExecuteScalarAsync())!)
            {
                return;
            }

            await Task.Delay(50);
        }
    }

    private static async Task<double> PeekAsync(string cs)
    {
        await using var conn = new NpgsqlConnection(cs);
        await conn.OpenAsync();
        var watch = Stopwatch.StartNew();
        await using var cmd = new NpgsqlCommand(
            "SELECT count(*) FROM pg_logical_slot_peek_binary_changes('bench_cdc_peek', NULL, NULL, 'proto_version', '1', 'publication_names', 'bench_cdc_peek')", conn) { CommandTimeout = 0 };
        var messages = (long)(await cmd.ExecuteScalarAsync())!;
        watch.Stop();
        Log.Info($"cdc: PostgreSQL decoded {Fmt.N(messages)} pgoutput messages in {watch.Elapsed.TotalSeconds:F2} s");
        return watch.Elapsed.TotalSeconds;
    }

    /// <summary>
    /// The slot-hygiene claim of the heartbeats: a flow whose tables do not change keeps its slot moving while other databases on
    /// the same server write WAL (the case that fills disks: WAL is server-wide, a slot retains all of it). The flow streams with
    /// the product's defaults; a second slot on the same database, never read, is the baseline. Sampled every few seconds.
    /// </summary>
    private static async Task<(double OursMax, double OursEnd, double IdleEnd, double OtherWal)> QuietRetentionAsync(BenchContext ctx, string cs, SyncJob job, TimeSpan quiet)
    {
        var slot = job.Flows[0].Cdc!.Slot;
        await PostgresServer.ExecuteAsync(cs, "SELECT pg_create_logical_replication_slot('bench_cdc_idle', 'pgoutput')");
        var other = await ctx.CreateDatabaseAsync("bench_cdc_other");
        await PostgresServer.ExecuteAsync(other, "CREATE TABLE churn (id int PRIMARY KEY, payload text NOT NULL); INSERT INTO churn SELECT g, md5(g::text) FROM generate_series(1, 2000) g;");
        using var stop = new CancellationTokenSource();
        var streaming = new CdcEngine().RunAsync(job, new CdcRunOptions(), cancellationToken: stop.Token);
        await using var conn = new NpgsqlConnection(cs);
        await conn.OpenAsync();
        await using var writer = new NpgsqlConnection(other);
        await writer.OpenAsync();

        async Task<(double Ours, double Idle, string Lsn)> SampleAsync()
        {
            await using var cmd = new NpgsqlCommand(
                "SELECT coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)) FILTER (WHERE slot_name = $1), -1)::float8, " +
                "coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)) FILTER (WHERE slot_name = 'bench_cdc_idle'), -1)::float8, " +
                "pg_current_wal_lsn()::text FROM pg_replication_slots", conn);
            cmd.Parameters.AddWithValue(slot);
            await using var r = await cmd.ExecuteReaderAsync();
            await r.ReadAsync();
            return (r.GetDouble(0), r.GetDouble(1), r.GetString(2));
        }

        var start = await SampleAsync();
        var clock = Stopwatch.StartNew();
        var next = TimeSpan.Zero;
        var oursMax = 0.0;
        (double Ours, double Idle, string Lsn) last = start;
        while (clock.Elapsed < quiet)
        {
            // About 1 MB of WAL a second elsewhere on the server; the flow's own tables stay untouched.
            await using (var churn = new NpgsqlCommand("UPDATE churn SET payload = md5(payload || clock_timestamp()::text)", writer))
            {
                await churn.ExecuteNonQueryAsync();
            }

            if (clock.Elapsed >= next)
            {
                last = await SampleAsync();
                oursMax = Math.Max(oursMax, last.Ours);
                next += TimeSpan.FromSeconds(ctx.Smoke ? 2 : 10);
            }

            await Task.Delay(100);
        }

        last = await SampleAsync();
        oursMax = Math.Max(oursMax, last.Ours);
        await stop.CancelAsync();
        var report = await streaming;
        if (report.Outcome is not (SyncOutcome.Succeeded or SyncOutcome.Cancelled))
        {
            throw new InvalidOperationException($"CDC stream during the quiet period failed: {report.Error}");
        }

        await using (var written = new NpgsqlCommand($"SELECT pg_wal_lsn_diff('{last.Lsn}', '{start.Lsn}')::float8", conn))
        {
            var otherWal = (double)(await written.ExecuteScalarAsync())!;
            Log.Info($"cdc: quiet {quiet.TotalSeconds:F0} s, {Fmt.Mb(otherWal)} of WAL written elsewhere: flow slot retains {Fmt.Mb(last.Ours)} (max {Fmt.Mb(oursMax)}), idle slot {Fmt.Mb(last.Idle)}");
            return (oursMax, last.Ours, last.Idle, otherWal);
        }
    }

    private static async Task<(double P50, double P99, int Samples)> LagAsync(string cs, ElasticsearchTestServer es, SyncJob job, int rate, TimeSpan duration)
    {
        using var stop = new CancellationTokenSource();
        var streaming = new CdcEngine().RunAsync(job, new CdcRunOptions { HeartbeatInterval = TimeSpan.FromSeconds(1) }, cancellationToken: stop.Token);
        var index = job.Flows[0].Pipelines[0].IndexName;
        await using var conn = new NpgsqlConnection(cs);
        await conn.OpenAsync();
        // Steady state: the clock starts once a probe row went all the way through (the stream is up), not during start-up.
        await using (var probe = new NpgsqlCommand($"INSERT INTO {Table} VALUES (9999999, 1, 1, 'probe', NULL, now(), true)", conn))
        {
            await probe.ExecuteNonQueryAsync();
        }

        var started = Stopwatch.StartNew();
        while (es.VersionOf(index, "9999999") is null && started.Elapsed < TimeSpan.FromMinutes(2))
        {
            await Task.Delay(10);
        }

        // The fixture's cluster runs with synchronous_commit = off, where a commit reaches the WAL sender only at the WAL writer's next
        // flush (up to 200 ms later); the writer here commits as a default server does.
        await using (var sync = new NpgsqlCommand("SET synchronous_commit = on", conn))
        {
            await sync.ExecuteNonQueryAsync();
        }

        var perTx = Math.Max(1, rate / 100);
        var pending = new System.Collections.Concurrent.ConcurrentQueue<(string LastId, long CommittedAt)>();
        var lags = new List<double>();
        var writing = true;
        var watcher = Task.Run(async () =>
        {
            while (writing || !pending.IsEmpty)
            {
                while (pending.TryPeek(out var head) && es.VersionOf(index, head.LastId) is not null)
                {
                    pending.TryDequeue(out _);
                    lags.Add(Stopwatch.GetElapsedTime(head.CommittedAt).TotalMilliseconds);
                }

                await Task.Delay(1);
            }
        });
        var next = 10_000_000L;
        var clock = Stopwatch.StartNew();
        var ticks = 0;
        while (clock.Elapsed < duration)
        {
            var from = next;
            next += perTx;
            await using (var cmd = new NpgsqlCommand($"INSERT INTO {Table} SELECT g, 1, 1.5, 'lag', NULL, now(), true FROM generate_series({from}, {next - 1}) g", conn))
            {
                await cmd.ExecuteNonQueryAsync();
            }

            pending.Enqueue(((next - 1).ToString(CultureInfo.InvariantCulture), Stopwatch.GetTimestamp()));
            ticks++;
            var due = TimeSpan.FromMilliseconds(10 * ticks) - clock.Elapsed;
            if (due > TimeSpan.Zero)
            {
                await Task.Delay(due);
            }
        }

        writing = false;
        await watcher.WaitAsync(TimeSpan.FromSeconds(60));
        await stop.CancelAsync();
        await streaming;
        lags.Sort();
        double Pct(double p) => lags[Math.Min(lags.Count - 1, (int)Math.Ceiling(p * lags.Count) - 1)];
        Log.Info($"cdc: lag over {lags.Count} transactions at {rate} changes/s (achieved {ticks * perTx / clock.Elapsed.TotalSeconds:F0}/s): p50 {Pct(0.5):F1} ms, p99 {Pct(0.99):F1} ms, max {lags[^1]:F1} ms");
        return (Pct(0.5), Pct(0.99), lags.Count);
    }
}
