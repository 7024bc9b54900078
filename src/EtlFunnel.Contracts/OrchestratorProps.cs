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

    /// <summary>
    /// Under <c>run --cluster</c>, the cluster's live members as they announced themselves (cores, memory, region, labels), oldest
    /// first; empty on a single machine. <see cref="Machine"/> stays the planning node. A hook can scale by their total cores
    /// and pin replicas with the <c>cluster_region</c> / <c>cluster_labels</c> replica props (docs/cluster.md).
    /// </summary>
    public IReadOnlyList<MachineInfo> ClusterMachines { get; init; } = [];

    /// <summary>At pipeline level, the flow replica whose pipelines these are (its name and props); <c>null</c> at flow level.</summary>
    public OrchestratorTune? Parent { get; init; }

    /// <summary>Signalled when the hook's time budget runs out or the run is cancelled; pass it to async calls.</summary>
    public CancellationToken CancellationToken { get; init; }

    /// <summary>
    /// The hook's logger: <c>param.Log.Info("...")</c> writes a line to the host's log (service log or stderr) with the hook's
    /// file and line, never to stdout. Props built by hand without one drop the lines.
    /// </summary>
    public IHookLog Log { get; init; } = NoHookLog.Instance;
}
