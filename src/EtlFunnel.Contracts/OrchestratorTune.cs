using System.Collections.Generic;

namespace EtlFunnel.Execution.Models;

/// <summary>One replica a hook asks for: which entity it copies, its own name and its tuning props.</summary>
public sealed class OrchestratorTune
{
    /// <summary>The <see cref="OrchestratorEntityDef.Name"/> of the entity this replica copies.</summary>
    public string ParentEntityName { get; set; } = "";

    /// <summary>The replica's unique name, e.g. <c>catalog_core_3</c>.</summary>
    public string NewEntityName { get; set; } = "";

    /// <summary>Tuning props; <see cref="ReplicaPropKeys.ReplicaId"/> and <see cref="ReplicaPropKeys.TotalReplicas"/> are required, see <see cref="ReplicaPropKeys"/> for the rest.</summary>
    public IDictionary<string, object?> ReplicaProps { get; set; } = new Dictionary<string, object?>();
}
