using EtlFunnel.Execution.Models;

namespace EtlFunnel.Scripting.Tests.Support;

/// <summary>A hand-written <see cref="IDatabaseEngine"/> with fixed stats, standing in for a real connection in hook tests.</summary>
internal sealed class StaticDatabaseEngine(TableStats stats) : IDatabaseEngine
{
    public string Kind => "postgres";

    public string Name => "test";

    public TableStats GetTableStats() => stats;

    public Task<TableStats> GetTableStatsAsync(CancellationToken cancellationToken = default) => Task.FromResult(stats);

    public ConnectionStats MeasureConnection() => new() { RoundTripLatency = TimeSpan.FromMilliseconds(1) };

    public Task<ConnectionStats> MeasureConnectionAsync(CancellationToken cancellationToken = default) => Task.FromResult(MeasureConnection());
}
