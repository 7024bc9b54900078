using System.Collections.Immutable;

namespace EtlFunnel.Orchestration.Discovery;

/// <summary>One source table as the catalog describes it (a partitioned table is one entry with its leaf partitions summed).</summary>
public sealed record TableInfo
{
    /// <summary>The schema.</summary>
    public required string Schema { get; init; }

    /// <summary>The table name.</summary>
    public required string Name { get; init; }

    /// <summary><c>schema.table</c>, a part in double quotes when it holds a dot or a quote (<c>"a.b".c</c>), so distinct tables never share a name.</summary>
    public string QualifiedName => Plans.TableRef.Display(Schema, Name);

    /// <summary>Rows: the catalog estimate (<c>reltuples</c>), or an exact count when <see cref="RowsAreExact"/>.</summary>
    public long Rows { get; init; }

    /// <summary>True when <see cref="Rows"/> comes from <c>count(*)</c>.</summary>
    public bool RowsAreExact { get; init; }

    /// <summary>True when the table (or one of its partitions) was never analyzed, so the estimate is unknown (reported as 0).</summary>
    public bool NeverAnalyzed { get; init; }

    /// <summary>Bytes on disk including TOAST and indexes (<c>pg_total_relation_size</c>, summed over partitions).</summary>
    public long Bytes { get; init; }

    /// <summary>Heap pages as of the last VACUUM/ANALYZE (<c>relpages</c>, summed over partitions).</summary>
    public long Pages { get; init; }

    /// <summary>Leaf partitions (0 for a plain table).</summary>
    public int PartitionCount { get; init; }

    /// <summary>Primary-key columns in key order; empty when the table has none.</summary>
    public ImmutableArray<string> PrimaryKey { get; init; } = [];

    /// <summary>The table as the plan names it.</summary>
    public Plans.TableRef Ref => new(Schema, Name);
}
