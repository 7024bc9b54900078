using System.Collections.Generic;
using System.Threading;

namespace EtlFunnel.Execution.Models;

/// <summary>What a hook is given: the entities of one level and the machine the plan is made for.</summary>
public sealed class OrchestratorProps
{
    /// <summary>The entities to replicate: the flows (flow level) or the pipelines of one flow replica (pipeline level).</summary>
    public required IReadOnlyList<OrchestratorEntityDef> Entity { get; init; }

    /// <summary>The machine the plan is for: the real one, or the profile passed with <c>--machine</c>.</summary>
    public required MachineInfo Machine { get; init; }

    /// <summary>At pipeline level, the flow replica whose pipelines these are (its name and props); <c>null</c> at flow level.</summary>
    public OrchestratorTune? Parent { get; init; }

    /// <summary>Signalled when the hook's time budget runs out or the run is cancelled; pass it to async calls.</summary>
    public CancellationToken CancellationToken { get; init; }
}
