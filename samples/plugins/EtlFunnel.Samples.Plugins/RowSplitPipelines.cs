using EtlFunnel.Execution.Models;

namespace EtlFunnel.Samples.Plugins;

/// <summary>Pipeline-level hook: 1 replica under 1M rows, 2 above, 4 above 10M (hooks/pipeline-by-rows.csx as a plugin).</summary>
public sealed class RowSplitPipelines : IPipelineOrchestrator
{
    /// <inheritdoc />
    public IEnumerable<OrchestratorTune> GetPipelineOrchestration(OrchestratorProps param)
    {
        ArgumentNullException.ThrowIfNull(param);
        foreach (var entity in param.Entity)
        {
            var rows = entity.SourceDBConn.GetTableStats().TotalRows;
            var numReplicas = rows > 10_000_000 ? 4 : rows > 1_000_000 ? 2 : 1;
            for (var i = 0; i < numReplicas; i++)
            {
                yield return new OrchestratorTune
                {
                    ParentEntityName = entity.Name,
                    NewEntityName = $"{entity.Name}_partition_{i}",
                    ReplicaProps = new Dictionary<string, object?>
                    {
                        [ReplicaPropKeys.ReplicaId] = i,
                        [ReplicaPropKeys.TotalReplicas] = numReplicas,
                        ["partition_hint"] = $"split_{i}",
                        ["data_driven"] = true,
                    },
                };
            }
        }
    }
}
