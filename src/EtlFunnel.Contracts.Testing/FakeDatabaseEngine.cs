using System;
using System.Threading;
using System.Threading.Tasks;
using EtlFunnel.Execution.Models;

namespace EtlFunnel.Execution.Testing;

/// <summary>
/// An <see cref="IDatabaseEngine"/> that answers from numbers you give it: the stats and latency a hook would see for a
/// table (or a flow's tables), without a database. Counts the calls, and can fail them like an unreachable server.
/// </summary>
public sealed class FakeDatabaseEngine : IDatabaseEngine
{
    private int statsCalls;
    private int measureCalls;

    /// <summary>Creates an engine of <paramref name="kind"/> (<c>postgres</c>, <c>elasticsearch</c> or <c>files</c>) named <paramref name="name"/>.</summary>
    public FakeDatabaseEngine(string kind = "postgres", string name = "fake")
    {
        Kind = kind ?? throw new ArgumentNullException(nameof(kind));
        Name = name ?? throw new ArgumentNullException(nameof(name));
    }

    /// <inheritdoc />
    public string Kind { get; }

    /// <inheritdoc />
    public string Name { get; }

    /// <summary>What <see cref="GetTableStats"/> returns (default: an empty table).</summary>
    public TableStats Stats { get; init; } = new() { TableCount = 1 };

    /// <summary>The round-trip latency <see cref="MeasureConnection"/> reports (default 1 ms). Nothing waits: it is only a number.</summary>
    public TimeSpan Latency { get; init; } = TimeSpan.FromMilliseconds(1);

    /// <summary>The throughput <see cref="MeasureConnection"/> reports, or <c>null</c> (as engines that cannot measure it cheaply do).</summary>
    public double? ThroughputBytesPerSecond { get; init; }

    /// <summary>When set, every stats and measure call throws it (a server that is down); the hook's error handling is then under test.</summary>
    public Exception? Failure { get; init; }

    /// <summary>How many times the stats were asked for (sync and async).</summary>
    public int StatsCalls => Volatile.Read(ref statsCalls);

    /// <summary>How many times the connection was measured (sync and async).</summary>
    public int MeasureCalls => Volatile.Read(ref measureCalls);

    /// <summary>A table of <paramref name="rows"/> rows and <paramref name="bytes"/> bytes (default: 100 bytes a row).</summary>
    public static FakeDatabaseEngine Table(long rows, long? bytes = null, int partitions = 0, bool exact = false, double latencyMs = 1, string name = "fake")
        => new("postgres", name)
        {
            Stats = new TableStats { TotalRows = rows, TotalBytes = bytes ?? rows * 100, TableCount = 1, PartitionCount = partitions, RowsAreExact = exact },
            Latency = TimeSpan.FromMilliseconds(latencyMs),
        };

    /// <inheritdoc />
    public TableStats GetTableStats()
    {
        Interlocked.Increment(ref statsCalls);
        return Failure is { } failure ? throw failure : Stats;
    }

    /// <inheritdoc />
    public Task<TableStats> GetTableStatsAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return Task.FromResult(GetTableStats());
    }

    /// <inheritdoc />
    public ConnectionStats MeasureConnection()
    {
        Interlocked.Increment(ref measureCalls);
        return Failure is { } failure ? throw failure : new ConnectionStats { RoundTripLatency = Latency, ThroughputBytesPerSecond = ThroughputBytesPerSecond };
    }

    /// <inheritdoc />
    public Task<ConnectionStats> MeasureConnectionAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return Task.FromResult(MeasureConnection());
    }

    /// <inheritdoc />
    public override string ToString() => $"{Kind} {Name} (fake)";
}
