using EtlFunnel.Execution.Models;
using Npgsql;

namespace EtlFunnel.Scripting.Tests.Support;

/// <summary>
/// A host-side engine over a real <see cref="NpgsqlDataSource"/> (with a password in its connection string), the
/// kind of object a hostile hook wants to reach: stats are a real <c>count(*)</c> of one table.
/// </summary>
internal sealed class NpgsqlTableEngine(NpgsqlDataSource dataSource, string table) : IDatabaseEngine
{
    private readonly NpgsqlDataSource source = dataSource;

    public string Kind => "postgres";

    public string Name => table;

    public TableStats GetTableStats() => GetTableStatsAsync().GetAwaiter().GetResult();

    public async Task<TableStats> GetTableStatsAsync(CancellationToken cancellationToken = default)
    {
        await using var command = source.CreateCommand($"SELECT count(*) FROM {table}");
        var rows = (long)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
        return new TableStats { TotalRows = rows, TableCount = 1, RowsAreExact = true };
    }

    public ConnectionStats MeasureConnection() => new() { RoundTripLatency = TimeSpan.FromMilliseconds(1) };

    public Task<ConnectionStats> MeasureConnectionAsync(CancellationToken cancellationToken = default) => Task.FromResult(MeasureConnection());
}
