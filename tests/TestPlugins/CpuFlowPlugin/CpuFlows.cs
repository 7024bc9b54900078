using EtlFunnel.Execution.Models;

namespace CpuFlowPlugin;

/// <summary>One replica of every flow per core, named with this build's version tag.</summary>
public sealed class CpuFlows : IFlowOrchestrator
{
#if VARIANT2
    private const string Tag = "v2";
#else
    private const string Tag = "v1";
#endif

    public IEnumerable<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param)
    {
        ArgumentNullException.ThrowIfNull(param);
        foreach (var entity in param.Entity)
        {
            if (entity.Name == "explode")
            {
                throw new InvalidOperationException("cannot plan " + entity.Name); // line 21
            }

            for (var i = 0; i < param.Machine.LogicalCores; i++)
            {
                yield return new OrchestratorTune
                {
                    ParentEntityName = entity.Name,
                    NewEntityName = $"{entity.Name}_{Tag}_core_{i}",
                    ReplicaProps = new Dictionary<string, object?>
                    {
                        [ReplicaPropKeys.ReplicaId] = i,
                        [ReplicaPropKeys.TotalReplicas] = param.Machine.LogicalCores,
                    },
                };
            }
        }
    }
}
