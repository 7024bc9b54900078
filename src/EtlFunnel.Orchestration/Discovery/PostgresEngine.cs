using System.Diagnostics;
using EtlFunnel.Destinations;
using EtlFunnel.Execution.Models;
using Npgsql;

namespace EtlFunnel.Orchestration.Discovery;

/// <summary>Measures a Postgres connection once per plan: the median of a few <c>SELECT 1</c> round trips, shared by every entity of the connection.</summary>
internal sealed class PostgresProbe
{
    private const int RoundTrips = 5;
    private readonly NpgsqlDataSource _dataSource;
    private readonly Once<ConnectionStats> _measured;

    public PostgresProbe(NpgsqlDataSource dataSource)
    {
        _dataSource = dataSource;
        _measured = new Once<ConnectionStats>(MeasureOnceAsync);
    }

    public Task<ConnectionStats> MeasureAsync(CancellationToken cancellationToken) => _measured.GetAsync(cancellationToken);

    private async Task<ConnectionStats> MeasureOnceAsync(CancellationToken cancellationToken)
    {
        await using var conn = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var cmd = new NpgsqlCommand("SELECT 1", conn);
        await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false); // warm-up: the first trip pays for preparation
        var samples = new TimeSpan[RoundTrips];
        for (var i = 0; i < RoundTrips; i++)
        {
            var start = Stopwatch.GetTimestamp();
            await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
            samples[i] = Stopwatch.GetElapsedTime(start);
        }

        Array.Sort(samples);
        return new ConnectionStats { RoundTripLatency = samples[RoundTrips / 2] };
    }
}

/// <summary>A Postgres <see cref="IDatabaseEngine"/> scoped to one entity; stats come from the flow's catalog snapshot.</summary>
internal sealed class PostgresEngine : IDatabaseEngine
{
    private readonly Func<CancellationToken, Task<TableStats>> _stats;
    private readonly PostgresProbe _probe;

    public PostgresEngine(string name, Func<CancellationToken, Task<TableStats>> stats, PostgresProbe probe)
    {
        Name = name;
        _stats = stats;
        _probe = probe;
    }

    public string Kind => "postgres";

    public string Name { get; }

    public TableStats GetTableStats() => GetTableStatsAsync().GetAwaiter().GetResult();

    public Task<TableStats> GetTableStatsAsync(CancellationToken cancellationToken = default) => _stats(cancellationToken);

    public ConnectionStats MeasureConnection() => MeasureConnectionAsync().GetAwaiter().GetResult();

    public Task<ConnectionStats> MeasureConnectionAsync(CancellationToken cancellationToken = default) => _probe.MeasureAsync(cancellationToken);
}
