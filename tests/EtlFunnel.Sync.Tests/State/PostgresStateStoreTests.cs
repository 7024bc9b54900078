using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using EtlFunnel.Destinations;
using EtlFunnel.Sync.Runtime;
using EtlFunnel.Sync.State;
using EtlFunnel.Sync.Tests.Support;
using EtlFunnel.Testing.Elasticsearch;
using EtlFunnel.Testing.Postgres;
using Npgsql;

namespace EtlFunnel.Sync.Tests.State;

/// <summary>The checkpoint store in a PostgreSQL table: the crash/resume guarantees of the folder store (see FaultTests), against the real server.</summary>
public sealed class PostgresStateStoreTests
{
    private const string Table50k =
        "CREATE TABLE big(id int PRIMARY KEY, name text, amount numeric(12,2), at timestamptz); " +
        "INSERT INTO big SELECT g, 'name ' || g, g * 1.25, '2024-01-01'::timestamptz + g * interval '1 minute' FROM generate_series(1, 50000) g;";

    private const string Table20k =
        "CREATE TABLE big(id int PRIMARY KEY, name text, amount numeric(12,2), at timestamptz); " +
        "INSERT INTO big SELECT g, 'name ' || g, g * 1.25, '2024-01-01'::timestamptz + g * interval '1 minute' FROM generate_series(1, 20000) g;";

    private const string Orders =
        "CREATE TABLE orders(id int PRIMARY KEY, customer text, total numeric(14,2), placed timestamptz, tags text[]); " +
        "INSERT INTO orders SELECT g, 'cüstomer ' || (g % 300), g * 0.5, '2024-03-01'::timestamptz + g * interval '1 minute', ARRAY['t' || (g % 4)] FROM generate_series(1, 12000) g;";

    [Fact]
    public async Task A_run_killed_with_sigkill_and_started_again_writes_every_row_exactly_once_with_checkpoints_in_a_table()
    {
        await using var bed = await SyncTestBed.CreateAsync("pgkill", Table50k);
        var stateDb = await (await PostgresServer.GetAsync()).CreateDatabaseAsync("pgkillstate");
        var args = new ChildSyncArgs(bed.ConnectionString, "big", bed.OutputDirectory, bed.StateDirectory, bed.DeadLetterDirectory,
            Flows: 2, Pipelines: 2, BlocksPerChunk: 8, BatchSize: 500, DelayPerBatchMs: 40, StateTableConnectionString: stateDb);
        using (var child = ChildProcess.Start(args))
        {
            var watch = Stopwatch.StartNew();
            while (!child.HasExited && watch.Elapsed < TimeSpan.FromSeconds(60) && await CheckpointedRowsAsync(stateDb) < 4000)
            {
                await Task.Delay(50);
            }

            child.HasExited.Should().BeFalse($"the child must still be running when killed; stderr: {(child.HasExited ? await child.StandardError.ReadToEndAsync() : "")}");
            child.Kill(entireProcessTree: true);
            await child.WaitForExitAsync();
        }

        bed.ReadOutputLines().Should().BeLessThan(100000, "the child was killed part-way");
        Directory.Exists(bed.StateDirectory).Should().BeFalse("checkpoints went to the table, not the folder");

        var report = await new SyncEngine().RunAsync(ChildProcess.BuildJob(args with { DelayPerBatchMs = 0 }));
        report.Outcome.Should().Be(SyncOutcome.Succeeded);
        report.Replicas.Should().Contain(r => r.Resumed, "replicas continue from the checkpoints in the table");
        report.DocsIndexed.Should().Be(50000);
        var ids = bed.ReadOutput().Select(d => d.Id).ToList();
        ids.Should().HaveCount(50000, "no lost and no duplicated documents");
        ids.Should().OnlyHaveUniqueItems();
    }

    [Fact]
    public async Task Cancellation_keeps_the_table_checkpoints_a_rerun_resumes_to_exactly_the_rows_and_a_run_after_completion_starts_fresh()
    {
        await using var bed = await SyncTestBed.CreateAsync("pgcancel", Table20k);
        var options = bed.Options(blocksPerChunk: 8) with { StateTable = new PostgresStateTable(bed.ConnectionString) };
        var job = bed.Job("big", 2, 2, options, props: new Dictionary<string, object?> { ["batch_size"] = 500 });
        using var cts = new CancellationTokenSource();
        var hooks = new SyncTestHooks { AfterDispatch = e => { if (e.BatchNumber == 10) { cts.Cancel(); } return ValueTask.CompletedTask; } };
        var first = await new SyncEngine(null, hooks).RunAsync(job, null, cts.Token);
        first.Outcome.Should().Be(SyncOutcome.Cancelled);
        first.DocsIndexed.Should().BeLessThan(20000);
        var saved = await CheckpointsAsync(bed.ConnectionString);
        saved.Should().ContainKey(("run", "", "")).WhoseValue.GetProperty("Completed").GetBoolean().Should().BeFalse();
        saved.Keys.Where(k => k.Kind == "replica").Should().NotBeEmpty();

        var second = await new SyncEngine().RunAsync(job);
        second.Outcome.Should().Be(SyncOutcome.Succeeded);
        second.Replicas.Should().Contain(r => r.Resumed);
        second.DocsIndexed.Should().Be(20000);
        bed.ReadOutput().Select(d => d.Id).Should().HaveCount(20000).And.OnlyHaveUniqueItems();
        var done = await CheckpointsAsync(bed.ConnectionString);
        done[("run", "", "")].GetProperty("Completed").GetBoolean().Should().BeTrue();
        done.Where(kv => kv.Key.Kind == "replica").Should().HaveCount(4).And.OnlyContain(kv => kv.Value.GetProperty("Completed").GetBoolean());

        var third = await new SyncEngine().RunAsync(job);
        third.Outcome.Should().Be(SyncOutcome.Succeeded);
        third.Replicas.Should().OnlyContain(r => !r.Resumed, "a completed run is not resumed: the next run is a fresh full sync");
        third.RowsRead.Should().Be(20000);
        bed.ReadOutput().Should().HaveCount(20000);
        (await CheckpointsAsync(bed.ConnectionString))[("run", "", "")].GetProperty("RunId").GetString()
            .Should().NotBe(done[("run", "", "")].GetProperty("RunId").GetString());
    }

    [Fact]
    public async Task When_the_checkpoint_database_goes_away_mid_run_the_replica_fails_on_its_last_saved_checkpoint_and_a_rerun_completes_exactly()
    {
        await using var bed = await SyncTestBed.CreateAsync("pglost", Table20k);
        var server = await PostgresServer.GetAsync();
        var stateDb = await server.CreateDatabaseAsync("pglost_state");
        var stateName = new NpgsqlConnectionStringBuilder(stateDb).Database!;
        var options = bed.Options(blocksPerChunk: 8) with { StateTable = new PostgresStateTable(stateDb) };
        var job = bed.Job("big", 1, 1, options, props: new Dictionary<string, object?> { ["batch_size"] = 500 });
        var cut = 0;
        var hooks = new SyncTestHooks
        {
            AfterDispatch = async e =>
            {
                if (e.BatchNumber == 10 && Interlocked.Exchange(ref cut, 1) == 0)
                {
                    await PostgresServer.ExecuteAsync(server.AdminConnectionString,
                        $"ALTER DATABASE \"{stateName}\" ALLOW_CONNECTIONS false; " +
                        $"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{stateName}' AND application_name = 'etlfunnel-state';");
                }
            },
        };

        var failed = await new SyncEngine(null, hooks).RunAsync(job);

        failed.Outcome.Should().Be(SyncOutcome.Failed);
        failed.Replicas.Single().Error.Should().StartWith("could not save the checkpoint of flow_0/big_0 to table etlfunnel.checkpoints (scope 'default')")
            .And.Contain("run again once the checkpoint database is reachable");
        failed.DocsIndexed.Should().BeLessThan(20000);

        await PostgresServer.ExecuteAsync(server.AdminConnectionString, $"ALTER DATABASE \"{stateName}\" ALLOW_CONNECTIONS true");
        var rerun = await new SyncEngine().RunAsync(job);
        rerun.Outcome.Should().Be(SyncOutcome.Succeeded);
        rerun.Replicas.Should().OnlyContain(r => r.Resumed, "the last checkpoint saved before the database went away is where the rerun starts");
        bed.ReadOutput().Select(d => d.Id).Should().HaveCount(20000).And.OnlyHaveUniqueItems();
    }

    [Fact]
    public async Task The_schema_and_table_are_created_when_missing_with_one_row_per_replica_plus_the_manifest()
    {
        await using var bed = await SyncTestBed.CreateAsync("pgcreate", "CREATE TABLE t(id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'x' FROM generate_series(1, 3000) g;");
        var stateDb = await (await PostgresServer.GetAsync()).CreateDatabaseAsync("pgcreatestate");
        var options = bed.Options() with { StateTable = new PostgresStateTable(stateDb) { Table = "ops.etl_checkpoints", Scope = "eu" } };

        var report = await new SyncEngine().RunAsync(bed.Job("t", 2, 3, options));

        report.Outcome.Should().Be(SyncOutcome.Succeeded);
        await using var conn = new NpgsqlConnection(stateDb);
        await conn.OpenAsync();
        await using (var cmd = new NpgsqlCommand(
            "SELECT string_agg(column_name || ':' || data_type, ',' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_schema = 'ops' AND table_name = 'etl_checkpoints'", conn))
        {
            (await cmd.ExecuteScalarAsync()).Should().Be("scope:text,kind:text,flow:text,replica:text,state:jsonb,updated_at:timestamp with time zone");
        }

        var rows = await CheckpointsAsync(stateDb, "ops.etl_checkpoints", "eu");
        rows.Keys.Should().BeEquivalentTo(
            new[] { ("run", "", "") }.Concat(from f in new[] { "flow_0", "flow_1" } from p in new[] { "t_0", "t_1", "t_2" } select ("replica", f, p)));
        rows.Where(r => r.Key.Kind == "replica").Sum(r => r.Value.GetProperty("RowsRead").GetInt64()).Should().Be(3000);
        Directory.Exists(bed.StateDirectory).Should().BeFalse();
    }

    [Fact]
    public async Task Jobs_in_different_scopes_share_one_table_without_clobbering_each_other()
    {
        await using var bed = await SyncTestBed.CreateAsync("pgscope",
            "CREATE TABLE a(id int PRIMARY KEY); INSERT INTO a SELECT generate_series(1, 2000); CREATE TABLE b(id int PRIMARY KEY); INSERT INTO b SELECT generate_series(1, 3000);");
        var stateDb = await (await PostgresServer.GetAsync()).CreateDatabaseAsync("pgscopestate");
        SyncJob Job(string table, string scope) => bed.Job(table, 1, 2, bed.Options() with
        {
            StateTable = new PostgresStateTable(stateDb) { Scope = scope },
        }, destination: new FilesDestination(Path.Combine(bed.Root, "out-" + table)), index: table);

        // Both open the (missing) table at the same time: the creation is serialised, neither fails.
        var reports = await Task.WhenAll(new SyncEngine().RunAsync(Job("a", "default/watch/a")), new SyncEngine().RunAsync(Job("b", "default/watch/b")));

        reports.Should().OnlyContain(r => r.Outcome == SyncOutcome.Succeeded);
        reports.Select(r => r.RowsRead).Should().Equal(2000, 3000);
        (await CheckpointsAsync(stateDb, scope: "default/watch/a")).Should().HaveCount(3);
        (await CheckpointsAsync(stateDb, scope: "default/watch/b")).Should().HaveCount(3);

        // An interrupted run in one scope is resumed there, whatever the other scope does meanwhile.
        await PostgresServer.ExecuteAsync(stateDb,
            "UPDATE etlfunnel.checkpoints SET state = jsonb_set(state, '{Completed}', 'false') WHERE scope = 'default/watch/a' AND kind = 'run'");
        (await new SyncEngine().RunAsync(Job("b", "default/watch/b"))).Replicas.Should().OnlyContain(r => !r.Resumed);
        var resumed = await new SyncEngine().RunAsync(Job("a", "default/watch/a"));
        resumed.Replicas.Should().OnlyContain(r => r.Resumed, "scope a's manifest is still the interrupted run, untouched by scope b");
    }

    [Fact]
    public async Task An_incremental_run_after_a_completed_one_reads_only_rows_above_the_watermark_kept_in_the_table()
    {
        await using var bed = await SyncTestBed.CreateAsync("pgincr",
            "CREATE TABLE v(id int PRIMARY KEY, version bigint NOT NULL); INSERT INTO v SELECT g, g FROM generate_series(1, 5000) g;");
        var options = bed.Options(SyncMode.Incremental) with { IncrementalNumericMargin = 10, StateTable = new PostgresStateTable(bed.ConnectionString) };
        var job = bed.Job("v", 1, 3, options, incremental: "version");
        (await new SyncEngine().RunAsync(job)).RowsRead.Should().Be(5000);
        await bed.ExecuteAsync("UPDATE v SET version = 6000 + id WHERE id <= 100");

        var second = await new SyncEngine().RunAsync(job);

        second.RowsRead.Should().Be(100 + 10, "rows above 5000 - 10, that is the 100 updated plus versions 4991..5000");
        (await CheckpointsAsync(bed.ConnectionString)).Where(r => r.Key.Kind == "replica").Select(r => r.Value.GetProperty("WatermarkValue").GetProperty("Value").GetString()).Should().OnlyContain(w => w == "6100");
    }

    [Fact]
    public async Task An_unreachable_checkpoint_server_fails_before_any_data_moves_naming_where_it_is_configured()
    {
        await using var bed = await SyncTestBed.CreateAsync("pgdown", "CREATE TABLE t(id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 100);");
        var closedPort = ClosedPort();
        var options = bed.Options() with
        {
            StateTable = new PostgresStateTable($"Host=127.0.0.1;Port={closedPort};Username=etl;Password=s3cret;Database=state;Timeout=5") { ConfiguredAt = "flows.yaml(1,8)" },
        };

        var act = () => new SyncEngine().RunAsync(bed.Job("t", 1, 1, options));

        var error = (await act.Should().ThrowAsync<SyncConfigurationException>()).Which.Message;
        error.Should().StartWith("flows.yaml(1,8): cannot reach the checkpoint table etlfunnel.checkpoints in 127.0.0.1:" + closedPort + "/state")
            .And.Contain("Start that PostgreSQL server or fix the connection in 'state:'")
            .And.NotContain("s3cret");
        bed.ReadOutputLines().Should().Be(0, "nothing was read or written");
    }

    [Fact]
    public async Task A_table_of_that_name_that_is_not_a_checkpoint_table_is_refused_with_what_to_do()
    {
        await using var bed = await SyncTestBed.CreateAsync("pgforeign", "CREATE TABLE t(id int PRIMARY KEY); CREATE SCHEMA etlfunnel; CREATE TABLE etlfunnel.checkpoints(id int);");
        var options = bed.Options() with { StateTable = new PostgresStateTable(bed.ConnectionString) };

        var act = () => new SyncEngine().RunAsync(bed.Job("t", 1, 1, options));

        (await act.Should().ThrowAsync<SyncConfigurationException>()).Which.Message
            .Should().Contain("SyncOptions.StateTable: etlfunnel.checkpoints in").And.Contain("is not an etlfunnel checkpoint table").And.Contain("name another table in 'table:'");
    }

    [Fact]
    public async Task A_user_without_create_rights_gets_the_sql_to_run_and_then_uses_the_table_made_for_it()
    {
        var server = await PostgresServer.GetAsync();
        await using var bed = await SyncTestBed.CreateAsync("pgpriv", "CREATE TABLE t(id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 500);");
        var role = "etl_state_" + Guid.NewGuid().ToString("N")[..12];
        await PostgresServer.ExecuteAsync(server.AdminConnectionString, $"CREATE ROLE {role} LOGIN PASSWORD 'pw'");
        try
        {
            var asRole = new NpgsqlConnectionStringBuilder(bed.ConnectionString) { Username = role, Password = "pw" }.ConnectionString;
            var options = bed.Options() with { StateTable = new PostgresStateTable(asRole) { ConfiguredAt = "flows.yaml(2,8)" } };

            var act = () => new SyncEngine().RunAsync(bed.Job("t", 1, 1, options));

            var message = (await act.Should().ThrowAsync<SyncConfigurationException>()).Which.Message;
            message.Should().StartWith("flows.yaml(2,8): not allowed to create or use the checkpoint table etlfunnel.checkpoints").And.Contain("Create it once as a privileged user:");
            bed.ReadOutputLines().Should().Be(0);

            // The SQL the message gives, run as is by an administrator, is all the role needs.
            await bed.ExecuteAsync(message[(message.IndexOf("privileged user:\n", StringComparison.Ordinal) + "privileged user:\n".Length)..]);
            await bed.ExecuteAsync($"GRANT SELECT ON t TO {role}");
            var report = await new SyncEngine().RunAsync(bed.Job("t", 1, 1, options));
            report.Outcome.Should().Be(SyncOutcome.Succeeded, string.Join("; ", report.Replicas.Select(r => r.Error)));
            (await CheckpointsAsync(bed.ConnectionString)).Should().HaveCount(2);
        }
        finally
        {
            await bed.ExecuteAsync($"DROP OWNED BY {role}");
            await PostgresServer.ExecuteAsync(server.AdminConnectionString, $"DROP ROLE {role}");
        }
    }

    [Theory]
    [InlineData("Etl.Checkpoints")]
    [InlineData("a.b.c")]
    [InlineData("bad-name")]
    public async Task A_bad_table_name_is_refused_before_connecting(string name)
    {
        var options = new SyncOptions { StateTable = new PostgresStateTable("Host=127.0.0.1;Port=1") { Table = name } };

        var act = () => StateStores.OpenAsync(options, CancellationToken.None);

        (await act.Should().ThrowAsync<SyncConfigurationException>()).Which.Message.Should().Contain($"'{name}' must be 'schema.table' or 'table' in lower-case");
    }

    [Fact]
    public void The_description_never_shows_the_password()
    {
        var table = new PostgresStateTable("Host=db.example;Port=5433;Database=etl;Username=u;Password=hunter2") { Scope = "us" };

        table.ToString().Should().Be("table etlfunnel.checkpoints (scope 'us') in db.example:5433/etl");
    }

    private static int ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static async Task<Dictionary<(string Kind, string Flow, string Replica), JsonElement>> CheckpointsAsync(
        string connectionString, string table = "etlfunnel.checkpoints", string scope = "default")
    {
        await using var conn = new NpgsqlConnection(connectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand($"SELECT kind, flow, replica, state::text FROM {table} WHERE scope = $1", conn);
        cmd.Parameters.AddWithValue(scope);
        await using var r = await cmd.ExecuteReaderAsync();
        var rows = new Dictionary<(string, string, string), JsonElement>();
        while (await r.ReadAsync())
        {
            using var doc = JsonDocument.Parse(r.GetString(3));
            rows[(r.GetString(0), r.GetString(1), r.GetString(2))] = doc.RootElement.Clone();
        }

        return rows;
    }

    private static async Task<long> CheckpointedRowsAsync(string connectionString)
    {
        try
        {
            return (await CheckpointsAsync(connectionString)).Where(r => r.Key.Kind == "replica").Sum(r => r.Value.GetProperty("RowsRead").GetInt64());
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UndefinedTable)
        {
            return 0;
        }
    }
}
