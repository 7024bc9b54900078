using System.Collections.Generic;

namespace EtlFunnel.Execution.Models;

/// <summary>One unit a hook can replicate: a flow (flow level) or one source table (pipeline level).</summary>
public sealed class OrchestratorEntityDef
{
    private static readonly IReadOnlyDictionary<string, IDatabaseEngine> NoAuxiliary = new Dictionary<string, IDatabaseEngine>();

    /// <summary>The entity's name: the flow name, or <c>schema.table</c> for a pipeline. Tunes name it as their <see cref="OrchestratorTune.ParentEntityName"/>.</summary>
    public required string Name { get; init; }

    /// <summary>The source database, scoped to this entity: its stats cover the entity's table (pipeline) or all its tables (flow).</summary>
    public required IDatabaseEngine SourceDBConn { get; init; }

    /// <summary>The destination (Elasticsearch or files), scoped to this entity's target index or indices.</summary>
    public required IDatabaseEngine DestDBConn { get; init; }

    /// <summary>Extra connections the flow declares under <c>auxiliary:</c>, by name.</summary>
    public IReadOnlyDictionary<string, IDatabaseEngine> AuxiliaryDBConnMap { get; init; } = NoAuxiliary;
}
