namespace EtlFunnel.Execution.Models;

/// <summary>Data volume of an entity: one table (pipeline) or the sum over a flow's tables.</summary>
public sealed class TableStats
{
    /// <summary>Rows: the catalog's estimate unless <see cref="RowsAreExact"/>.</summary>
    public long TotalRows { get; init; }

    /// <summary>On-disk bytes including TOAST and indexes.</summary>
    public long TotalBytes { get; init; }

    /// <summary>How many tables the entity covers (1 for a pipeline).</summary>
    public int TableCount { get; init; }

    /// <summary>Declarative partitions (0 for a plain table).</summary>
    public int PartitionCount { get; init; }

    /// <summary>True when <see cref="TotalRows"/> is an exact count rather than the planner's estimate.</summary>
    public bool RowsAreExact { get; init; }
}
