using System.Threading;
using System.Threading.Tasks;

namespace EtlFunnel.Execution.Models;

/// <summary>A connection as hooks see it, scoped to one entity: ask it for data volume and connection quality.</summary>
public interface IDatabaseEngine
{
    /// <summary>The engine kind: <c>postgres</c>, <c>elasticsearch</c> or <c>files</c>.</summary>
    string Kind { get; }

    /// <summary>A display name (host and database, URL or folder); never contains a password.</summary>
    string Name { get; }

    /// <summary>Rows, bytes, tables and partitions of this entity's data.</summary>
    TableStats GetTableStats();

    /// <summary>Rows, bytes, tables and partitions of this entity's data.</summary>
    Task<TableStats> GetTableStatsAsync(CancellationToken cancellationToken = default);

    /// <summary>Measures round-trip latency (and throughput where cheap) with a few real round trips.</summary>
    ConnectionStats MeasureConnection();

    /// <summary>Measures round-trip latency (and throughput where cheap) with a few real round trips.</summary>
    Task<ConnectionStats> MeasureConnectionAsync(CancellationToken cancellationToken = default);
}
