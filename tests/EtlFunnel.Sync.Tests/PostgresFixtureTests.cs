using EtlFunnel.Testing.Postgres;
using Npgsql;

namespace EtlFunnel.Sync.Tests;

public sealed class PostgresFixtureTests
{
    [Fact]
    public async Task Throwaway_server_serves_sql_with_logical_wal()
    {
        var server = await PostgresServer.GetAsync();
        var cs = await server.CreateDatabaseAsync("fixture");
        await PostgresServer.ExecuteAsync(cs, "CREATE TABLE t(id int primary key, name text); INSERT INTO t SELECT g, 'n' || g FROM generate_series(1, 1000) g;");

        await using var conn = new NpgsqlConnection(cs);
        await conn.OpenAsync();
        await using (var count = new NpgsqlCommand("SELECT count(*), sum(id) FROM t", conn))
        await using (var reader = await count.ExecuteReaderAsync())
        {
            (await reader.ReadAsync()).Should().BeTrue();
            reader.GetInt64(0).Should().Be(1000);
            reader.GetInt64(1).Should().Be(500500);
        }

        if (server.IsThrowaway)
        {
            await using var wal = new NpgsqlCommand("SHOW wal_level", conn);
            (await wal.ExecuteScalarAsync()).Should().Be("logical");
        }
    }

    [Fact]
    public async Task Each_test_database_is_isolated()
    {
        var server = await PostgresServer.GetAsync();
        var a = await server.CreateDatabaseAsync("iso");
        var b = await server.CreateDatabaseAsync("iso");
        a.Should().NotBe(b);
        await PostgresServer.ExecuteAsync(a, "CREATE TABLE only_in_a(x int)");
        var act = () => PostgresServer.ExecuteAsync(b, "SELECT * FROM only_in_a");
        await act.Should().ThrowAsync<PostgresException>().Where(e => e.SqlState == "42P01");
    }
}
