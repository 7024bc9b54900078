using System.Collections.Immutable;
using System.Text.Json;

namespace EtlFunnel.Orchestration.Plans;

/// <summary>The validated plan: every flow replica and, inside it, every pipeline replica with its partition. Immutable; see <see cref="PlanJson"/>.</summary>
public sealed record ExecutionPlan
{
    /// <summary>The machine the plan was made for.</summary>
    public required PlanMachine Machine { get; init; }

    /// <summary>The hook files that shaped the plan, per level.</summary>
    public required PlanHooks Hooks { get; init; }

    /// <summary>Flow replicas, in config order then by replica id.</summary>
    public required ImmutableArray<FlowReplicaPlan> Flows { get; init; }

    /// <summary>Every pipeline replica of the plan with its flow replica.</summary>
    public IEnumerable<(FlowReplicaPlan Flow, PipelineReplicaPlan Pipeline)> AllPipelines() =>
        Flows.SelectMany(f => f.Pipelines.Select(p => (f, p)));
}

/// <summary>The machine section of a plan.</summary>
public sealed record PlanMachine
{
    /// <summary>Region, or <c>null</c>.</summary>
    public string? Region { get; init; }

    /// <summary>Logical cores.</summary>
    public required int Cores { get; init; }

    /// <summary>Memory in bytes.</summary>
    public required long MemoryBytes { get; init; }

    /// <summary>Host or profile name.</summary>
    public string HostName { get; init; } = "";

    /// <summary>Profile labels.</summary>
    public ImmutableSortedDictionary<string, string> Labels { get; init; } = ImmutableSortedDictionary<string, string>.Empty;
}

/// <summary>Which hook files ran at each level (display paths).</summary>
public sealed record PlanHooks
{
    /// <summary>Flow-level hooks in invocation order; empty means one replica per flow.</summary>
    public ImmutableArray<string> Flow { get; init; } = [];

    /// <summary>Pipeline-level hooks in invocation order; empty means one replica per table.</summary>
    public ImmutableArray<string> Pipeline { get; init; } = [];
}

/// <summary>A source or destination as the plan names it (never with a password).</summary>
public sealed record PlanEndpoint(string Kind, string Name);

/// <summary>One flow replica.</summary>
public sealed record FlowReplicaPlan
{
    /// <summary>The replica's name (the tune's <c>NewEntityName</c>), unique in the plan.</summary>
    public required string Name { get; init; }

    /// <summary>The configured flow it replicates.</summary>
    public required string Parent { get; init; }

    /// <summary>0 to <see cref="TotalReplicas"/> - 1.</summary>
    public required int ReplicaId { get; init; }

    /// <summary>How many replicas the flow has.</summary>
    public required int TotalReplicas { get; init; }

    /// <summary>The hook's props as a JSON object.</summary>
    public required JsonElement Props { get; init; }

    /// <summary>The source database (host:port/database).</summary>
    public required PlanEndpoint Source { get; init; }

    /// <summary>The destination (Elasticsearch URL or files folder).</summary>
    public required PlanEndpoint Destination { get; init; }

    /// <summary>This flow replica's pipeline replicas, by table then replica id.</summary>
    public required ImmutableArray<PipelineReplicaPlan> Pipelines { get; init; }
}

/// <summary>One pipeline replica: a partition of one table, read by one worker.</summary>
public sealed record PipelineReplicaPlan
{
    /// <summary>The replica's name, unique within its flow replica; the plan-wide id is <c>flow replica/pipeline replica</c>.</summary>
    public required string Name { get; init; }

    /// <summary>The table entity it replicates (<c>schema.table</c>, see <see cref="TableRef.Display"/>).</summary>
    public required string Parent { get; init; }

    /// <summary>The source table: schema and name apart, so dotted and quoted identifiers survive plan to run.</summary>
    public required TableRef Table { get; init; }

    /// <summary>The target index.</summary>
    public required string Index { get; init; }

    /// <summary>Key columns (document id).</summary>
    public required ImmutableArray<string> Key { get; init; }

    /// <summary>The incremental column, or <c>null</c>.</summary>
    public string? Incremental { get; init; }

    /// <summary>The re-read window behind the watermark (<c>incremental_margin:</c>, or the default for the column's type); <c>null</c> without an incremental column or for a text column.</summary>
    public IncrementalMargin? IncrementalMargin { get; init; }

    /// <summary>0 to <see cref="TotalReplicas"/> - 1 within the flow replica.</summary>
    public required int ReplicaId { get; init; }

    /// <summary>How many replicas the table has within this flow replica.</summary>
    public required int TotalReplicas { get; init; }

    /// <summary>The hook's props as a JSON object.</summary>
    public required JsonElement Props { get; init; }

    /// <summary>The part of the table this replica reads.</summary>
    public required PlanPartition Partition { get; init; }

    /// <summary>The table's stats when planned.</summary>
    public required PlanTableStats Stats { get; init; }
}

/// <summary>The half-open interval [<see cref="Start"/>, <see cref="End"/>) of the table this replica reads; <see cref="Index"/> of <see cref="Count"/> partitions of the table.</summary>
public sealed record PlanPartition(Fraction Start, Fraction End, int Index, int Count);

/// <summary>A table's stats as the planner saw them.</summary>
public sealed record PlanTableStats(long Rows, bool RowsAreExact, long Bytes, int Partitions);

/// <summary>A source table by schema and name (never one dotted string that has to be split again).</summary>
[System.Text.Json.Serialization.JsonConverter(typeof(PlanJson.TableConverter))]
public sealed record TableRef(string Schema, string Name)
{
    /// <summary><c>schema.table</c>; a part holding a dot, a quote or nothing is double-quoted (<c>"a.b".c</c>, quotes doubled), so distinct tables never print alike.</summary>
    public static string Display(string schema, string name) => Part(schema) + "." + Part(name);

    /// <summary>See <see cref="Display"/>.</summary>
    public override string ToString() => Display(Schema, Name);

    private static string Part(string identifier) =>
        identifier.Length == 0 || identifier.Contains('.', StringComparison.Ordinal) || identifier.Contains('"', StringComparison.Ordinal)
            ? "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\""
            : identifier;
}
