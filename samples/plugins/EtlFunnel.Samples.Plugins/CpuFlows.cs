using EtlFunnel.Execution.Models;

namespace EtlFunnel.Samples.Plugins;

/// <summary>Flow-level hook: one replica of every flow per core of the machine the plan is for (hooks/flow-by-cores.csx as a plugin).</summary>
public sealed class CpuFlows : IFlowOrchestrator
{
    /// <inheritdoc />
    public IEnumerable<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param)
    {
        ArgumentNullException.ThrowIfNull(param);
        var numThreads = param.Machine.LogicalCores;
        foreach (var entity in param.Entity)
        {
            for (var i = 0; i < numThreads; i++)
            {
                yield return new OrchestratorTune
                {
                    ParentEntityName = entity.Name,
                    NewEntityName = $"{entity.Name}_core_{i}",
                    ReplicaProps = new Dictionary<string, object?>
                    {
                        [ReplicaPropKeys.ReplicaId] = i,
                        ["thread_id"] = i,
                        [ReplicaPropKeys.TotalReplicas] = numThreads,
                        ["cpu_optimized"] = true,
                    },
                };
            }
        }
    }
}
