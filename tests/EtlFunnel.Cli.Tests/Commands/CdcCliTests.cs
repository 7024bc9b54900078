using EtlFunnel.Cli.Tests.Support;
using EtlFunnel.Testing.Postgres;
using Npgsql;

namespace EtlFunnel.Cli.Tests.Commands;

/// <summary><c>etlfunnel run --mode cdc</c> and <c>etlfunnel slots</c> end to end on real PostgreSQL into files.</summary>
public sealed class CdcCliTests
{
    private readonly string _root = Directory.CreateTempSubdirectory("etlfunnel-cdc-cli-").FullName;

    [Fact]
    public async Task Run_mode_cdc_until_caught_up_exits_0_streams_deletes_and_slots_drop_removes_the_flow()
    {
        var server = await PostgresServer.GetAsync();
        var cs = await server.CreateDatabaseAsync("cli_cdc");
        await PostgresServer.ExecuteAsync(cs, "CREATE TABLE orders(id int PRIMARY KEY, total numeric); INSERT INTO orders SELECT g, g FROM generate_series(1, 200) g;");
        var slot = "cli_" + Guid.NewGuid().ToString("N")[..16];
        var config = CliRunner.WriteConfig($"""
            state: {Path.Combine(_root, "state")}
            flows:
              - name: orders
                mode: cdc
                slot: {slot}
                source: {"{"}postgres: "{cs}"{"}"}
                destination: {"{"}files: {Path.Combine(_root, "out")}{"}"}
                pipelines:
                  - table: orders
            """);
        try
        {
            var first = await CliRunner.RunAsync(["run", "--config", config, "--hooks", CliRunner.HooksDir, "--until-caught-up"]);
            first.ExitCode.Should().Be(0, first.Err);
            first.Out.Should().Contain("CDC Succeeded").And.Contain("snapshot 200 document(s)");

            await PostgresServer.ExecuteAsync(cs, "DELETE FROM orders WHERE id <= 10; UPDATE orders SET total = 0 WHERE id = 50;");
            var second = await CliRunner.RunAsync(["run", "--config", config, "--hooks", CliRunner.HooksDir, "--mode", "cdc", "--until-caught-up"]);
            second.ExitCode.Should().Be(0, second.Err);
            second.Out.Should().Contain("11 change(s) applied");
            var lines = Directory.EnumerateFiles(Path.Combine(_root, "out"), "orders.cdc-*.ndjson", SearchOption.AllDirectories).SelectMany(File.ReadLines).ToList();
            lines.Count(l => l.StartsWith("{\"delete\":", StringComparison.Ordinal)).Should().Be(10);

            var list = await CliRunner.RunAsync(["slots", "list", "--config", config]);
            list.ExitCode.Should().Be(0, list.Err);
            list.Out.Should().Contain(slot).And.Contain("orders").And.Contain("reserved");
            if (await ShowAsync(cs, "max_slot_wal_keep_size") == "-1")
            {
                list.Err.Should().Contain("has max_slot_wal_keep_size = -1 (unlimited)").And.Contain("set a bound");
            }
            else
            {
                list.Err.Should().NotContain("max_slot_wal_keep_size");
            }

            var drop = await CliRunner.RunAsync(["slots", "drop", "orders", "--config", config]);
            drop.ExitCode.Should().Be(0, drop.Err);
            drop.Out.Should().Contain($"Dropped slot {slot}");
            (await SlotCountAsync(cs, slot)).Should().Be(0);
        }
        finally
        {
            await using var conn = new NpgsqlConnection(cs);
            await conn.OpenAsync();
            await using var cmd = new NpgsqlCommand("SELECT count(pg_drop_replication_slot(slot_name)) FROM pg_replication_slots WHERE database = current_database() AND NOT active", conn);
            await cmd.ExecuteScalarAsync();
        }
    }

    [Fact]
    public async Task Run_mode_cdc_names_the_table_without_a_replica_identity_and_syncs_nothing()
    {
        // A unique key the planner accepts, but no primary key: REPLICA IDENTITY DEFAULT then identifies nothing.
        var server = await PostgresServer.GetAsync();
        var cs = await server.CreateDatabaseAsync("cli_cdc_ri");
        await PostgresServer.ExecuteAsync(cs, "CREATE TABLE logs(id int NOT NULL, msg text); CREATE UNIQUE INDEX logs_id ON logs(id); INSERT INTO logs VALUES (1, 'a');");
        var config = CliRunner.WriteConfig($"""
            state: {Path.Combine(_root, "state")}
            flows:
              - name: logs
                mode: cdc
                source: {"{"}postgres: "{cs}"{"}"}
                destination: {"{"}files: {Path.Combine(_root, "out")}{"}"}
                pipelines:
                  - table: logs
                    key: [id]
            """);

        var result = await CliRunner.RunAsync(["run", "--config", config, "--hooks", CliRunner.HooksDir, "--until-caught-up"]);

        result.ExitCode.Should().Be(1);
        result.Err.Should().Contain("\"public\".\"logs\" has no replica identity").And.Contain("REPLICA IDENTITY FULL");
        (await SlotCountAsync(cs, "etlfunnel_logs")).Should().Be(0, "nothing is created before the checks pass");
    }

    [Fact]
    public async Task Slot_and_truncate_keys_without_mode_cdc_are_refused_with_their_line()
    {
        var config = CliRunner.WriteConfig("""
            flows:
              - name: x
                source: {postgres: "Host=127.0.0.1;Database=x"}
                destination: {files: ./out}
                truncate: delete_all
                pipelines:
                  - table: t
            """);

        var result = await CliRunner.RunAsync(["run", "--config", config, "--hooks", CliRunner.HooksDir]);

        result.ExitCode.Should().Be(2);
        result.Err.Should().Contain("flows.yaml(5,").And.Contain("'truncate:' of flow 'x' only applies to 'mode: cdc'");
    }

    private static async Task<string> ShowAsync(string cs, string setting)
    {
        await using var conn = new NpgsqlConnection(cs);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand($"SHOW {setting}", conn);
        return (string)(await cmd.ExecuteScalarAsync())!;
    }

    private static async Task<long> SlotCountAsync(string cs, string slot)
    {
        await using var conn = new NpgsqlConnection(cs);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1", conn);
        cmd.Parameters.AddWithValue(slot);
        return (long)(await cmd.ExecuteScalarAsync())!;
    }
}
