using System.Collections.Immutable;
using EtlFunnel.Execution.Models;
using EtlFunnel.Orchestration.Config;

namespace EtlFunnel.Orchestration.Discovery;

/// <summary>What the planner plans over: the configured flows with their discovered tables, each as a hook-visible entity.</summary>
public sealed class Workload : IAsyncDisposable
{
    private readonly IReadOnlyList<IAsyncDisposable> _resources;

    /// <summary>Creates a workload; <paramref name="resources"/> (data sources, clients) are disposed with it.</summary>
    public Workload(ImmutableArray<FlowEntity> flows, ImmutableArray<string> warnings, IReadOnlyList<IAsyncDisposable>? resources = null)
    {
        Flows = flows;
        Warnings = warnings;
        _resources = resources ?? [];
    }

    /// <summary>The flows, in config order.</summary>
    public ImmutableArray<FlowEntity> Flows { get; }

    /// <summary>Things the user should know that do not stop planning (an entry matching no table, a never-analyzed table).</summary>
    public ImmutableArray<string> Warnings { get; }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        foreach (var resource in _resources)
        {
            await resource.DisposeAsync().ConfigureAwait(false);
        }
    }
}

/// <summary>A configured flow as the flow hooks see it, with its pipelines.</summary>
public sealed record FlowEntity
{
    /// <summary>The flow's name (the entity name hooks use as <c>ParentEntityName</c>).</summary>
    public string Name => Entity.Name;

    /// <summary>The flow-level entity: its source stats sum over all its tables.</summary>
    public required OrchestratorEntityDef Entity { get; init; }

    /// <summary>The source's display name (<c>host:port/database</c>, no password).</summary>
    public required string SourceName { get; init; }

    /// <summary>The destination.</summary>
    public required DestinationConfig Destination { get; init; }

    /// <summary>This flow's cap on flow replicas, if it sets one.</summary>
    public int? MaxReplicas { get; init; }

    /// <summary>One entry per source table, in catalog order (schema, table).</summary>
    public required ImmutableArray<PipelineEntity> Pipelines { get; init; }
}

/// <summary>One source table of a flow as the pipeline hooks see it.</summary>
public sealed record PipelineEntity
{
    /// <summary><c>schema.table</c> (the entity name hooks use as <c>ParentEntityName</c>).</summary>
    public string Name => Entity.Name;

    /// <summary>The pipeline-level entity, scoped to this table and its target index.</summary>
    public required OrchestratorEntityDef Entity { get; init; }

    /// <summary>The catalog's view of the table.</summary>
    public required TableInfo Table { get; init; }

    /// <summary>The target index.</summary>
    public required string Index { get; init; }

    /// <summary>Key columns: the explicit <c>key:</c> or the primary key.</summary>
    public required ImmutableArray<string> Key { get; init; }

    /// <summary>The incremental column, if configured.</summary>
    public string? Incremental { get; init; }

    /// <summary>The incremental column's re-read margin (configured or the type's default); <c>null</c> without one or for a text column.</summary>
    public Plans.IncrementalMargin? IncrementalMargin { get; init; }

    /// <summary>The <c>pipelines:</c> entry that selected the table (for messages), or <c>null</c> when built by hand.</summary>
    public PipelineConfig? Entry { get; init; }
}
