using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.RegularExpressions;
using EtlFunnel.Cli.Tests.Support;
using EtlFunnel.Orchestration.Tests.Support;
using EtlFunnel.Testing.Postgres;
using Npgsql;

namespace EtlFunnel.Cli.Tests.Commands;

/// <summary><c>etlfunnel run</c> and <c>watch</c> with checkpoints in a PostgreSQL table (<c>state:</c> / <c>--state postgres://</c>).</summary>
[Collection(SmallShopCollection.Name)]
public sealed class StateTableCliTests
{
    private readonly SmallShopDatabase _db;
    private readonly string _root = Directory.CreateTempSubdirectory("etlfunnel-pgstate-").FullName;

    public StateTableCliTests(SmallShopDatabase db) => _db = db;

    private string Out => Path.Combine(_root, "out");

    private string Config(string state, string flows = "") => CliRunner.WriteConfig($$"""
        {{state}}
        flows:
          - name: shop
            source: {postgres: "{{_db.ConnectionString}}"}
            destination: {files: {{Out}}}
            pipelines:
              - schema: shop
                table: customers
        {{flows}}
        """);

    private static Task<CliResult> RunAsync(string config, params string[] extra) =>
        CliRunner.RunAsync(["run", "--config", config, "--machine", CliRunner.Region("eu"), "--hooks", CliRunner.HooksDir, .. extra], SeedHooks.Both());

    [Fact]
    public async Task State_source_keeps_the_checkpoints_in_the_flows_source_database_and_a_second_run_starts_fresh()
    {
        var scope = "cli-" + Guid.NewGuid().ToString("N");
        var config = Config($"state: {{source: shop, scope: {scope}}}");

        var first = await RunAsync(config);

        first.ExitCode.Should().Be(0, first.Err);
        first.Err.Should().Contain($"table etlfunnel.checkpoints (scope '{scope}')", "the log names where the checkpoints are");
        var runId = await ManifestRunIdAsync(_db.ConnectionString, scope);
        (await CountAsync(_db.ConnectionString, scope, "replica")).Should().Be(8, "the EU plan has 8 flow replicas of one customers replica each");
        Directory.Exists(Path.Combine(Path.GetDirectoryName(config)!, ".etlfunnel", "state")).Should().BeFalse("no checkpoint folder is written");

        var second = await RunAsync(config);

        second.ExitCode.Should().Be(0, second.Err);
        (await ManifestRunIdAsync(_db.ConnectionString, scope)).Should().NotBe(runId, "a completed run is not resumed: the next run is a new one");
        Directory.GetFiles(Path.Combine(Out, "shop_customers"), "*.ndjson").Sum(f => File.ReadLines(f).Count() / 2).Should().Be(SmallShopDatabase.Customers);
    }

    [Fact]
    public async Task A_state_url_option_overrides_the_configured_folder()
    {
        var stateDb = await (await PostgresServer.GetAsync()).CreateDatabaseAsync("cli_state_url");
        var config = Config($"state: {Path.Combine(_root, "state")}");

        var result = await RunAsync(config, "--state", Url(stateDb));

        result.ExitCode.Should().Be(0, result.Err);
        (await CountAsync(stateDb, "default", "run")).Should().Be(1);
        (await CountAsync(stateDb, "default", "replica")).Should().Be(8);
        Directory.Exists(Path.Combine(_root, "state")).Should().BeFalse();
    }

    [Fact]
    public async Task An_unreachable_state_server_exits_1_naming_the_config_line_and_what_to_do()
    {
        var config = Config($"state: postgres://etl:s3cret@127.0.0.1:{ClosedPort()}/state");

        var result = await RunAsync(config);

        result.ExitCode.Should().Be(1);
        result.Err.Should().MatchRegex(@"flows\.yaml\(1,8\): cannot reach the checkpoint table etlfunnel\.checkpoints in 127\.0\.0\.1:\d+/state")
            .And.Contain("Start that PostgreSQL server or fix the connection in 'state:'")
            .And.Contain("nothing was synced")
            .And.NotContain("s3cret");
        Directory.Exists(Out).Should().BeFalse();
    }

    [Fact]
    public async Task A_bad_state_url_option_exits_2()
    {
        var result = await RunAsync(Config(""), "--state", "postgres://h/db?nonsense=1");

        result.ExitCode.Should().Be(2);
        result.Err.Should().Contain("--state: URL parameter 'nonsense=1' is not understood");
    }

    [Fact]
    public async Task Watch_keeps_each_flow_in_its_own_scope_of_the_table_so_concurrent_flows_do_not_clobber_each_other()
    {
        var stateDb = await (await PostgresServer.GetAsync()).CreateDatabaseAsync("cli_watch_state");
        var hooks = Directory.CreateDirectory(Path.Combine(_root, "hooks")).FullName;
        var config = Config($"state: {{postgres: \"{stateDb}\", scope: eu}}\ninterval: 1s", $$"""
              - name: events
                source: {postgres: "{{_db.ConnectionString}}"}
                destination: {files: {{Out}}}
                pipelines:
                  - schema: shop
                    table: events
            """);

        using var watch = WatchProcess.Start(config, hooks);
        try
        {
            var guard = Stopwatch.StartNew();
            while (!(await CompletedRunsAsync(stateDb, "eu/watch/shop") && await CompletedRunsAsync(stateDb, "eu/watch/events")))
            {
                if (watch.HasExited || guard.Elapsed > TimeSpan.FromSeconds(90))
                {
                    throw new TimeoutException("both flows should complete a run with their checkpoints in the table:\n" + watch.Output);
                }

                await Task.Delay(100);
            }

            watch.Terminate();
            (await watch.WaitForExitAsync(TimeSpan.FromSeconds(90))).Should().Be(0, watch.Output);
        }
        finally
        {
            watch.KillIfRunning();
        }

        (await CountAsync(stateDb, "eu", "run")).Should().Be(0, "watch never writes the run scope itself");
        var replicas = await ReplicaRowsAsync(stateDb);
        replicas.Should().NotBeEmpty().And.OnlyContain(r => r.Scope == "eu/watch/" + r.Flow, "each flow's replicas live in that flow's scope only");
        replicas.Select(r => r.Flow).Distinct().Should().BeEquivalentTo("shop", "events");
    }

    internal static string Url(string connectionString)
    {
        var b = new NpgsqlConnectionStringBuilder(connectionString);
        var user = Uri.EscapeDataString(b.Username ?? "postgres") + (b.Password is null ? "" : ":" + Uri.EscapeDataString(b.Password));
        return $"postgres://{user}@{b.Host}:{b.Port}/{Uri.EscapeDataString(b.Database!)}";
    }

    internal static async Task<long> CountAsync(string connectionString, string scope, string kind)
    {
        await using var conn = new NpgsqlConnection(connectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT count(*) FROM etlfunnel.checkpoints WHERE scope = $1 AND kind = $2", conn);
        cmd.Parameters.AddWithValue(scope);
        cmd.Parameters.AddWithValue(kind);
        return (long)(await cmd.ExecuteScalarAsync())!;
    }

    private static async Task<string?> ManifestRunIdAsync(string connectionString, string scope)
    {
        await using var conn = new NpgsqlConnection(connectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT state->>'RunId' FROM etlfunnel.checkpoints WHERE scope = $1 AND kind = 'run'", conn);
        cmd.Parameters.AddWithValue(scope);
        return (string?)await cmd.ExecuteScalarAsync();
    }

    private static async Task<bool> CompletedRunsAsync(string connectionString, string scope)
    {
        await using var conn = new NpgsqlConnection(connectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(
            "SELECT coalesce(bool_or((state->>'Completed')::bool), false) FROM etlfunnel.checkpoints WHERE scope = $1 AND kind = 'run'", conn);
        cmd.Parameters.AddWithValue(scope);
        try
        {
            return (bool)(await cmd.ExecuteScalarAsync())!;
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UndefinedTable)
        {
            return false;
        }
    }

    private static async Task<List<(string Scope, string Flow)>> ReplicaRowsAsync(string connectionString)
    {
        await using var conn = new NpgsqlConnection(connectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT scope, flow FROM etlfunnel.checkpoints WHERE kind = 'replica'", conn);
        await using var r = await cmd.ExecuteReaderAsync();
        var rows = new List<(string, string)>();
        while (await r.ReadAsync())
        {
            rows.Add((r.GetString(0), r.GetString(1)));
        }

        return rows;
    }

    private static int ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>Ctrl-C during <c>etlfunnel run</c> on the quickstart data with checkpoints in a table, then the resumed run (RunInterruptTests for the folder store).</summary>
[Collection(QuickstartCollection.Name)]
public sealed class StateTableInterruptTests
{
    private readonly QuickstartDatabase _db;

    public StateTableInterruptTests(QuickstartDatabase db) => _db = db;

    [Fact]
    public async Task A_run_interrupted_mid_sync_exits_130_and_the_next_run_resumes_from_the_table_to_every_row_once()
    {
        var root = Directory.CreateTempSubdirectory("etlfunnel-pginterrupt-").FullName;
        var stateDb = await (await PostgresServer.GetAsync()).CreateDatabaseAsync("cli_interrupt_state");
        var config = CliRunner.WriteConfig($$"""
            state: {postgres: "{{stateDb}}"}
            flows:
              - name: shop
                source: {postgres: "{{_db.ConnectionString}}"}
                destination: {files: {{Path.Combine(root, "out")}}}
                pipelines:
                  - schema: sales
                    table: orders
            """);
        var report = Path.Combine(root, "report.json");
        string[] args = ["run", "--config", config, "--hooks", CliRunner.HooksDir, "--machine", CliRunner.Region("eu"), "--report", report];

        // Ctrl-C once a chunk is checkpointed in the table, so the second run has real progress to resume from.
        using var ctrlC = new CancellationTokenSource();
        var run = CliRunner.RunAsync(args, new TestLoadedHooks(SeedHooks.Both()), cancellationToken: ctrlC.Token);
        while (!run.IsCompleted && await CheckpointedRowsAsync(stateDb) == 0)
        {
            await Task.Delay(20);
        }

        await ctrlC.CancelAsync();
        var interrupted = await run;
        interrupted.ExitCode.Should().Be(130, interrupted.Err);
        interrupted.Err.Should().Contain("checkpoints are saved in table etlfunnel.checkpoints (scope 'default')").And.Contain("run again");

        var resumed = await CliRunner.RunAsync(args, SeedHooks.Both());

        resumed.ExitCode.Should().Be(0, resumed.Err);
        var sources = Directory.GetFiles(Path.Combine(root, "out", "sales_orders"), "*.ndjson").Sum(f => File.ReadLines(f).Count()) / 2;
        sources.Should().Be(1_200_000, "every row of sales.orders is in the output exactly once after the resume");
        using var json = JsonDocument.Parse(await File.ReadAllTextAsync(report));
        json.RootElement.GetProperty("replicas").EnumerateArray().Should().Contain(r => r.GetProperty("resumed").GetBoolean(), "replicas continued from their checkpoints");
    }

    private static async Task<long> CheckpointedRowsAsync(string connectionString)
    {
        await using var conn = new NpgsqlConnection(connectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(
            "SELECT coalesce(sum((state->>'RowsRead')::bigint), 0)::bigint FROM etlfunnel.checkpoints WHERE kind = 'replica'", conn);
        try
        {
            return (long)(await cmd.ExecuteScalarAsync())!;
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UndefinedTable)
        {
            return 0;
        }
    }
}
