using EtlFunnel.Destinations;
using EtlFunnel.Sync.Cdc;
using EtlFunnel.Sync.Tests.Support;
using EtlFunnel.Testing.Elasticsearch;
using Npgsql;

namespace EtlFunnel.Sync.Tests.Cdc;

/// <summary>Snapshot then stream, on a real PostgreSQL (logical decoding) into the Elasticsearch test server or files.</summary>
[Collection("cdc")]
public sealed class CdcEngineTests
{
    private const string Items = """
        CREATE TABLE items(id int PRIMARY KEY, name text, qty numeric, big text, at timestamptz);
        ALTER TABLE items ALTER big SET STORAGE EXTERNAL;
        INSERT INTO items SELECT g, 'n' || g, g * 1.5, CASE WHEN g % 10 = 0 THEN repeat('toast' || g, 1000) END, '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 minute'
        FROM generate_series(1, 300) g;
        """;

    [Fact]
    public async Task Snapshot_then_stream_applies_inserts_updates_key_changes_deletes_and_unchanged_toast_so_the_index_equals_the_table()
    {
        await using var bed = await SyncTestBed.CreateAsync("cdcbasic", Items);
        await using var es = await ElasticsearchTestServer.StartAsync();
        try
        {
            var job = CdcTestKit.Job(bed, "items", 2, new ElasticsearchDestination(es.Uri), "items");

            var first = await new CdcEngine().RunAsync(job, CdcTestKit.UntilCaughtUp);

            first.Outcome.Should().Be(SyncOutcome.Succeeded, first.Error);
            first.Snapshot!.DocsIndexed.Should().Be(300);
            CdcTestKit.AssertSameDocuments(es.Documents("items"), await CdcTestKit.TableDocumentsAsync(bed, "items"));

            await bed.ExecuteAsync("""
                UPDATE items SET name = 'renamed ' || id WHERE id % 10 = 0;            -- big is unchanged TOAST: not sent by pgoutput
                UPDATE items SET big = 'small now' WHERE id = 20;
                UPDATE items SET id = id + 1000 WHERE id BETWEEN 1 AND 5;              -- key changes
                DELETE FROM items WHERE id BETWEEN 100 AND 120;
                INSERT INTO items VALUES (5000, 'new', 1e-3, repeat('z', 9000), now());
                BEGIN; INSERT INTO items VALUES (6000, 'twice', 1, NULL, NULL); UPDATE items SET name = 'thrice' WHERE id = 6000; COMMIT;
                """);

            var second = await new CdcEngine().RunAsync(job, CdcTestKit.UntilCaughtUp);

            second.Outcome.Should().Be(SyncOutcome.Succeeded, second.Error);
            second.Snapshot.Should().BeNull("the slot and its completed snapshot are reused: only changes are streamed");
            // 30 renames, but the 3 renamed rows deleted later are skipped (their unchanged TOAST value cannot be read back); 1 update,
            // 5 key changes (delete + index each), 21 deletes, 1 insert, 2 changes in one transaction.
            second.ChangesApplied.Should().Be(27 + 1 + 10 + 21 + 1 + 2);
            var docs = es.Documents("items");
            CdcTestKit.AssertSameDocuments(docs, await CdcTestKit.TableDocumentsAsync(bed, "items"));
            docs["10"].Should().Contain("toast10toast10", "an unchanged TOAST value is kept, not overwritten with null");
            docs.Should().NotContainKey("1").And.ContainKey("1001");
            docs["6000"].Should().Contain("\"thrice\"", "two changes of one row in one transaction share a version and apply in order");
            es.VersionOf("items", "6000").Should().BeGreaterThan(es.VersionOf("items", "299")!.Value, "stream versions (commit LSN) are above the snapshot's consistent point");
        }
        finally
        {
            await CdcTestKit.DropSlotsAsync(bed);
        }
    }

    [Fact]
    public async Task Streamed_documents_equal_the_snapshot_documents_byte_for_byte_for_every_common_type()
    {
        await using var bed = await SyncTestBed.CreateAsync("cdctypes", DocumentMappingTests.AllTypes + "CREATE TABLE all_types_seed AS SELECT * FROM all_types; DELETE FROM all_types;");
        try
        {
            var outDir = Path.Combine(bed.Root, "cdc-out");
            var job = CdcTestKit.Job(bed, "all_types", 1, new FilesDestination(outDir), "types");
            var snapshot = await new CdcEngine().RunAsync(job, CdcTestKit.UntilCaughtUp);
            snapshot.Outcome.Should().Be(SyncOutcome.Succeeded, snapshot.Error);

            await bed.ExecuteAsync("""
                INSERT INTO all_types SELECT * FROM all_types_seed;
                INSERT INTO all_types SELECT id + 10, i2, i4, i8, f4 * 3.3, f8 / 7, num, num_scaled, b, t || '
                line', vc, ch, ci, u, ts, tstz, d, tm, iv, j, jb, ai, at, an, by, m, ip FROM all_types_seed;
                """);
            var streamed = await new CdcEngine().RunAsync(job, CdcTestKit.UntilCaughtUp);

            streamed.Outcome.Should().Be(SyncOutcome.Succeeded, streamed.Error);
            streamed.ChangesApplied.Should().Be(6);
            var docs = CdcTestKit.LoadVersionedFiles(outDir);
            var expected = await CdcTestKit.TableDocumentsAsync(bed, "all_types");
            expected.Should().HaveCount(6);
            foreach (var (id, source) in expected)
            {
                docs[id].Should().Be(source, $"row {id} streamed through pgoutput's text values renders as the binary snapshot path does");
            }

            var compared = await RowOracle.AssertAllTypesRowsEqualAsync(bed.ConnectionString, docs.ToDictionary(d => d.Key, d => System.Text.Json.JsonDocument.Parse(d.Value).RootElement));
            compared.Should().BeGreaterThan(70, "row_to_json (UTC) agrees with the streamed documents as well");
        }
        finally
        {
            await CdcTestKit.DropSlotsAsync(bed);
        }
    }

    [Fact]
    public async Task A_transaction_open_before_the_slot_and_committed_after_is_captured_exactly_once()
    {
        await using var bed = await SyncTestBed.CreateAsync("cdclong", "CREATE TABLE lt(id int PRIMARY KEY, v text); INSERT INTO lt SELECT g, 'v' || g FROM generate_series(1, 100) g;");
        try
        {
            var outDir = Path.Combine(bed.Root, "out-long");
            var slot = "t_" + Guid.NewGuid().ToString("N")[..20];
            var job = CdcTestKit.Job(bed, "lt", 1, new FilesDestination(outDir), "lt", slot: slot);
            await using var writer = new NpgsqlConnection(bed.ConnectionString);
            await writer.OpenAsync();
            await using var tx = await writer.BeginTransactionAsync();
            await using (var cmd = new NpgsqlCommand("INSERT INTO lt VALUES (1000, 'long'); UPDATE lt SET v = 'changed in long tx' WHERE id = 7", writer, tx))
            {
                await cmd.ExecuteNonQueryAsync();
            }

            // Slot creation waits for transactions that hold an xid; commit the long one while it waits.
            var run = new CdcEngine().RunAsync(job, CdcTestKit.UntilCaughtUp);
            await WaitUntilAsync(bed, $"SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = '{slot}')");
            await tx.CommitAsync();
            var report = await run;

            report.Outcome.Should().Be(SyncOutcome.Succeeded, report.Error);
            var lines = Directory.EnumerateFiles(outDir, "*.ndjson", SearchOption.AllDirectories).SelectMany(File.ReadLines).ToList();
            lines.Count(l => l.Contains("\"_id\":\"1000\"", StringComparison.Ordinal)).Should().Be(1, "the long transaction's insert is in the snapshot or in the stream, not both, not neither");
            lines.Count(l => l.Contains("changed in long tx", StringComparison.Ordinal)).Should().Be(1);
            CdcTestKit.AssertSameDocuments(CdcTestKit.LoadVersionedFiles(outDir), await CdcTestKit.TableDocumentsAsync(bed, "lt"));
        }
        finally
        {
            await CdcTestKit.DropSlotsAsync(bed);
        }
    }

    [Fact]
    public async Task Truncate_with_policy_stop_stops_the_flow_and_delete_all_empties_the_index_before_later_inserts()
    {
        await using var bed = await SyncTestBed.CreateAsync("cdctrunc", "CREATE TABLE tr(id int PRIMARY KEY, v text); INSERT INTO tr SELECT g, 'v' || g FROM generate_series(1, 50) g;");
        await using var es = await ElasticsearchTestServer.StartAsync();
        try
        {
            var slot = "t_" + Guid.NewGuid().ToString("N")[..20];
            var stopJob = CdcTestKit.Job(bed, "tr", 1, new ElasticsearchDestination(es.Uri), "tr", CdcTruncatePolicy.Stop, slot);
            (await new CdcEngine().RunAsync(stopJob, CdcTestKit.UntilCaughtUp)).Outcome.Should().Be(SyncOutcome.Succeeded);
            await bed.ExecuteAsync("INSERT INTO tr VALUES (51, 'before'); TRUNCATE tr; INSERT INTO tr VALUES (1, 'after'), (2, 'after');");

            var stopped = await new CdcEngine().RunAsync(stopJob, CdcTestKit.UntilCaughtUp);

            stopped.Outcome.Should().Be(SyncOutcome.Failed);
            stopped.Error.Should().Contain("TRUNCATE").And.Contain("truncate: delete_all").And.Contain("slots drop");
            es.Documents("tr").Should().HaveCount(51, "the insert before the TRUNCATE is applied; nothing after it");

            var deleteAll = CdcTestKit.Job(bed, "tr", 1, new ElasticsearchDestination(es.Uri), "tr", CdcTruncatePolicy.DeleteAll, slot);
            var applied = await new CdcEngine().RunAsync(deleteAll, CdcTestKit.UntilCaughtUp);

            applied.Outcome.Should().Be(SyncOutcome.Succeeded, applied.Error);
            CdcTestKit.AssertSameDocuments(es.Documents("tr"), await CdcTestKit.TableDocumentsAsync(bed, "tr"));
            es.Documents("tr").Keys.Should().BeEquivalentTo(["1", "2"]);
        }
        finally
        {
            await CdcTestKit.DropSlotsAsync(bed);
        }
    }

    [Fact]
    public async Task Stopping_while_a_truncate_lists_the_index_is_a_cancel_and_the_next_run_applies_the_truncate()
    {
        await using var bed = await SyncTestBed.CreateAsync("cdctrstop", "CREATE TABLE ts(id int PRIMARY KEY, v text); INSERT INTO ts SELECT g, 'v' || g FROM generate_series(1, 20) g;");
        await using var es = await ElasticsearchTestServer.StartAsync();
        try
        {
            var job = CdcTestKit.Job(bed, "ts", 1, new ElasticsearchDestination(es.Uri), "ts", CdcTruncatePolicy.DeleteAll);
            using var cts = new CancellationTokenSource();
            var run = new CdcEngine().RunAsync(job, new CdcRunOptions { HeartbeatInterval = TimeSpan.FromMilliseconds(100) }, cancellationToken: cts.Token);
            await WaitForAsync(() => es.IndexNames.Contains("ts") && es.Documents("ts").Count == 20);

            // The TRUNCATE's listing of the index hangs in a slow _search; stopping then is a stop, not a failed listing.
            es.Faults.DelaySearchCalls(TimeSpan.FromMinutes(2));
            await bed.ExecuteAsync("TRUNCATE ts; INSERT INTO ts VALUES (7, 'after');");
            await WaitForAsync(() => es.Faults.DelayedSearches > 0);
            await cts.CancelAsync();
            var stopped = await run;

            stopped.Outcome.Should().Be(SyncOutcome.Cancelled, stopped.Error);
            es.Documents("ts").Should().HaveCount(20, "the TRUNCATE was not applied (nor acknowledged) before the stop");

            es.Faults.Clear();
            var rerun = await new CdcEngine().RunAsync(job, CdcTestKit.UntilCaughtUp);

            rerun.Outcome.Should().Be(SyncOutcome.Succeeded, rerun.Error);
            es.Documents("ts").Keys.Should().BeEquivalentTo(["7"], "the rerun receives the TRUNCATE again and applies it before the later insert");
        }
        finally
        {
            await CdcTestKit.DropSlotsAsync(bed);
        }
    }

    [Fact]
    public async Task Added_and_dropped_columns_show_in_the_next_documents_without_a_restart()
    {
        await using var bed = await SyncTestBed.CreateAsync("cdcddl", "CREATE TABLE dd(id int PRIMARY KEY, a text, gone int); INSERT INTO dd VALUES (1, 'x', 1);");
        await using var es = await ElasticsearchTestServer.StartAsync();
        try
        {
            var job = CdcTestKit.Job(bed, "dd", 1, new ElasticsearchDestination(es.Uri), "dd");
            using var cts = new CancellationTokenSource();
            var run = new CdcEngine().RunAsync(job, new CdcRunOptions { HeartbeatInterval = TimeSpan.FromMilliseconds(100) }, cancellationToken: cts.Token);
            await WaitForAsync(() => es.IndexNames.Contains("dd") && es.Documents("dd").Count == 1);

            await bed.ExecuteAsync("INSERT INTO dd VALUES (2, 'y', 2); ALTER TABLE dd ADD COLUMN added int; ALTER TABLE dd DROP COLUMN gone; INSERT INTO dd VALUES (3, 'z', 33); UPDATE dd SET a = 'x2' WHERE id = 1;");
            await WaitForAsync(() => es.Documents("dd").Count == 3 && es.Documents("dd")["1"].Contains("x2", StringComparison.Ordinal));
            await cts.CancelAsync();
            var report = await run;

            report.Outcome.Should().Be(SyncOutcome.Cancelled);
            var docs = es.Documents("dd");
            docs["2"].Should().Be("{\"id\":2,\"a\":\"y\",\"gone\":2}");
            docs["3"].Should().Be("{\"id\":3,\"a\":\"z\",\"added\":33}");
            docs["1"].Should().Be("{\"id\":1,\"a\":\"x2\",\"added\":null}");
        }
        finally
        {
            await CdcTestKit.DropSlotsAsync(bed);
        }
    }

    [Fact]
    public async Task A_user_without_the_replication_privilege_gets_an_error_that_says_how_to_grant_it()
    {
        var role = "norep_" + Guid.NewGuid().ToString("N")[..12];
        await using var bed = await SyncTestBed.CreateAsync("cdcpriv", $"CREATE TABLE p(id int PRIMARY KEY); CREATE ROLE {role} LOGIN; GRANT SELECT ON p TO {role};");
        var cs = new NpgsqlConnectionStringBuilder(bed.ConnectionString) { Username = role }.ConnectionString;
        var job = CdcTestKit.Job(bed, "p", 1, new FilesDestination(bed.OutputDirectory), "p");
        job = job with { Flows = [.. job.Flows.Select(f => f with { SourceConnectionString = cs })] };

        var run = () => new CdcEngine().RunAsync(job, CdcTestKit.UntilCaughtUp);

        (await run.Should().ThrowAsync<SyncConfigurationException>()).Which.Message.Should()
            .Contain($"user \"{role}\" has no REPLICATION privilege").And.Contain($"ALTER ROLE \"{role}\" REPLICATION");
    }

    [Fact]
    public async Task A_slot_streaming_in_another_session_is_refused_with_the_pid_that_holds_it()
    {
        await using var bed = await SyncTestBed.CreateAsync("cdcbusy", "CREATE TABLE b(id int PRIMARY KEY); INSERT INTO b VALUES (1);");
        try
        {
            var job = CdcTestKit.Job(bed, "b", 1, new FilesDestination(bed.OutputDirectory), "b");
            using var stop = new CancellationTokenSource();
            var first = new CdcEngine().RunAsync(job, new CdcRunOptions(), cancellationToken: stop.Token);
            // The walsender that creates the slot releases it once the slot exists (the slot is inactive while the snapshot is
            // read), so wait until the first run streams from it: only then is "active in another session" the refusal to expect.
            await WaitUntilAsync(bed, "SELECT EXISTS (SELECT 1 FROM pg_replication_slots s JOIN pg_stat_replication r ON r.pid = s.active_pid " +
                $"WHERE s.slot_name = '{job.Flows[0].Cdc!.Slot}' AND r.state IN ('catchup', 'streaming'))");

            var second = () => new CdcEngine().RunAsync(job, CdcTestKit.UntilCaughtUp);

            (await second.Should().ThrowAsync<SyncConfigurationException>()).Which.Message.Should()
                .Contain("is already active in another session (pid").And.Contain("is this flow running elsewhere?");
            await stop.CancelAsync();
            (await first).Outcome.Should().Be(SyncOutcome.Cancelled);
        }
        finally
        {
            await CdcTestKit.DropSlotsAsync(bed);
        }
    }

    [Fact]
    public async Task Lag_in_bytes_and_seconds_grows_while_a_lane_is_held_and_falls_to_zero_seconds_once_it_applied_everything()
    {
        await using var bed = await SyncTestBed.CreateAsync("cdclag", "CREATE TABLE l(id int PRIMARY KEY, v text); INSERT INTO l SELECT g, 'v' FROM generate_series(1, 10) g;");
        try
        {
            var job = CdcTestKit.Job(bed, "l", 1, new FilesDestination(bed.OutputDirectory), "l");
            CdcStreamStatus? latest = null;
            var held = 0;
            var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var options = new CdcRunOptions
            {
                HeartbeatInterval = TimeSpan.FromMilliseconds(200),
                StatusInterval = TimeSpan.FromMilliseconds(50),
                OnStatus = s => Volatile.Write(ref latest, s),
                // Once held, the lane stops after its next batch: later changes wait, unapplied.
                AfterLaneBatch = async () =>
                {
                    if (Volatile.Read(ref held) == 1)
                    {
                        await release.Task;
                    }
                },
            };
            using var stop = new CancellationTokenSource();
            var run = new CdcEngine().RunAsync(job, options, cancellationToken: stop.Token);
            await WaitForAsync(() => Volatile.Read(ref latest) is { Phase: CdcPhase.Streaming, LagSeconds: 0, Lanes: 1 });

            Volatile.Write(ref held, 1);
            await bed.ExecuteAsync("INSERT INTO l VALUES (11, 'first');");          // applied, then the lane waits
            await WaitForAsync(() => Volatile.Read(ref latest)!.ChangesApplied == 1);
            await bed.ExecuteAsync("INSERT INTO l SELECT g, repeat('x', 200) FROM generate_series(12, 211) g;"); // 200 changes, held back
            var afterHeld = await CurrentLsnAsync(bed);
            await WaitForAsync(() => Volatile.Read(ref latest) is { LagSeconds: > 0, LagBytes: > 0 } s && NpgsqlTypes.NpgsqlLogSequenceNumber.Parse(s.CurrentWalLsn!) >= afterHeld);
            var lagging = Volatile.Read(ref latest)!;
            NpgsqlTypes.NpgsqlLogSequenceNumber.Parse(lagging.AppliedLsn!).Should().BeLessThan(afterHeld, "the held transaction is not applied");
            lagging.LagBytes.Should().BeGreaterThan(200 * 200, "at least the held transaction's WAL is behind");
            lagging.ChangesApplied.Should().Be(1);

            release.SetResult();
            await WaitForAsync(() => Volatile.Read(ref latest) is { LagSeconds: 0, ChangesApplied: 201 } s && NpgsqlTypes.NpgsqlLogSequenceNumber.Parse(s.AppliedLsn!) >= afterHeld);
            var caughtUp = Volatile.Read(ref latest)!;
            caughtUp.LagBytes.Should().Be((long)((ulong)NpgsqlTypes.NpgsqlLogSequenceNumber.Parse(caughtUp.CurrentWalLsn!) - (ulong)NpgsqlTypes.NpgsqlLogSequenceNumber.Parse(caughtUp.AppliedLsn!)));

            await stop.CancelAsync();
            (await run).Outcome.Should().Be(SyncOutcome.Cancelled);
        }
        finally
        {
            await CdcTestKit.DropSlotsAsync(bed);
        }
    }

    private static async Task<NpgsqlTypes.NpgsqlLogSequenceNumber> CurrentLsnAsync(SyncTestBed bed)
    {
        await using var conn = new NpgsqlConnection(bed.ConnectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT pg_current_wal_lsn()", conn);
        return (NpgsqlTypes.NpgsqlLogSequenceNumber)(await cmd.ExecuteScalarAsync())!;
    }

    [Theory]
    [InlineData("replica")]
    [InlineData("minimal")]
    public void A_source_without_wal_level_logical_gets_an_error_that_names_the_flow_the_setting_and_the_restart(string walLevel)
    {
        var problem = CdcSource.WalLevelProblem(walLevel, "flow 'orders' at flows.yaml(3,5)");

        problem.Should().StartWith($"flow 'orders' at flows.yaml(3,5): the source server runs with wal_level = {walLevel}; change data capture needs wal_level = logical.")
            .And.Contain("ALTER SYSTEM SET wal_level = logical").And.Contain("restart PostgreSQL");
        CdcSource.WalLevelProblem("logical", "x").Should().BeNull();
    }

    [Fact]
    public void Only_an_unlimited_max_slot_wal_keep_size_is_warned_about()
    {
        CdcSource.UnboundedWalWarning("-1").Should().Contain("max_slot_wal_keep_size is unlimited (-1)").And.Contain("can fill the disk")
            .And.Contain("ALTER SYSTEM SET max_slot_wal_keep_size");
        CdcSource.UnboundedWalWarning("50GB").Should().BeNull();
        CdcSource.UnboundedWalWarning("1024MB").Should().BeNull();
    }

    [Fact]
    public async Task A_run_warns_with_the_flow_when_the_server_keeps_unlimited_wal_for_slots_and_not_when_it_is_bounded()
    {
        await using var bed = await SyncTestBed.CreateAsync("cdckeep", "CREATE TABLE k(id int PRIMARY KEY); INSERT INTO k VALUES (1);");
        try
        {
            var job = CdcTestKit.Job(bed, "k", 1, new FilesDestination(bed.OutputDirectory), "k");
            job = job with { Flows = [.. job.Flows.Select(f => f with { Cdc = f.Cdc! with { ConfiguredAt = "flow 'k' at flows.yaml(2,5)" } })] };
            var log = new MessageSink();
            string keep;
            await using (var conn = new NpgsqlConnection(bed.ConnectionString))
            {
                await conn.OpenAsync();
                await using var cmd = new NpgsqlCommand("SHOW max_slot_wal_keep_size", conn);
                keep = (string)(await cmd.ExecuteScalarAsync())!;
            }

            var report = await new CdcEngine(new Serilog.Extensions.Logging.SerilogLoggerFactory(new Serilog.LoggerConfiguration().WriteTo.Sink(log).CreateLogger()).CreateLogger("CdcEngine")).RunAsync(job, CdcTestKit.UntilCaughtUp);

            report.Outcome.Should().Be(SyncOutcome.Succeeded, report.Error);
            var warnings = log.Messages.Where(m => m.Contains("max_slot_wal_keep_size is unlimited", StringComparison.Ordinal)).ToList();
            if (keep == "-1")
            {
                warnings.Should().ContainSingle().Which.Should().StartWith("flow 'k' at flows.yaml(2,5): max_slot_wal_keep_size is unlimited (-1)");
            }
            else
            {
                warnings.Should().BeEmpty($"the server bounds it ({keep})");
            }
        }
        finally
        {
            await CdcTestKit.DropSlotsAsync(bed);
        }
    }

    private sealed class MessageSink : Serilog.Core.ILogEventSink
    {
        private readonly List<string> _messages = [];

        public IReadOnlyList<string> Messages
        {
            get
            {
                lock (_messages)
                {
                    return [.. _messages];
                }
            }
        }

        public void Emit(Serilog.Events.LogEvent logEvent)
        {
            lock (_messages)
            {
                _messages.Add(logEvent.RenderMessage());
            }
        }
    }

    [Fact]
    public void An_invalidated_slot_is_reported_loudly_with_how_to_recover()
    {
        var lost = new SlotInfo("etlfunnel_orders", "shop", false, null, null, "0/16B3748", "lost", null, "pgoutput");

        var check = () => CdcSource.EnsureUsable(lost, "flow 'orders' at flows.yaml(3,5)");

        check.Should().Throw<SyncConfigurationException>().Which.Message.Should()
            .StartWith("flow 'orders' at flows.yaml(3,5): replication slot 'etlfunnel_orders' was INVALIDATED")
            .And.Contain("etlfunnel slots drop etlfunnel_orders").And.Contain("takes a new snapshot");
    }

    internal static async Task WaitUntilAsync(SyncTestBed bed, string sql)
    {
        await using var conn = new NpgsqlConnection(bed.ConnectionString);
        await conn.OpenAsync();
        for (var i = 0; i < 600; i++)
        {
            await using var cmd = new NpgsqlCommand(sql, conn);
            if ((bool)(await cmd.ExecuteScalarAsync())!)
            {
                return;
            }

            await Task.Delay(50);
        }

        throw new TimeoutException($"Condition never held: {sql}");
    }

    internal static async Task WaitForAsync(Func<bool> condition)
    {
        for (var i = 0; i < 600; i++)
        {
            if (condition())
            {
                return;
            }

            await Task.Delay(50);
        }

        throw new TimeoutException("The condition never held within 30 s.");
    }
}
