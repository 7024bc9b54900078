using EtlFunnel.Execution.Models;
using EtlFunnel.Scripting;

namespace EtlFunnel.Orchestration.Tests.Support;

/// <summary>The seed's two hooks, hand-written with the same logic as hooks/*.csx, so region plans are tested without the script host.</summary>
internal static class SeedHooks
{
    public static TestHook FlowByCores() => TestHook.Flow("hooks/flow-by-cores.csx", param =>
    {
        var numThreads = param.Machine.LogicalCores;
        var replicas = new List<OrchestratorTune>();
        foreach (var entity in param.Entity)
        {
            for (var i = 0; i < numThreads; i++)
            {
                replicas.Add(new OrchestratorTune
                {
                    ParentEntityName = entity.Name,
                    NewEntityName = $"{entity.Name}_core_{i}",
                    ReplicaProps = new Dictionary<string, object?>
                    {
                        ["replica_id"] = i,
                        ["thread_id"] = i,
                        ["total_replicas"] = numThreads,
                        ["cpu_optimized"] = true,
                    },
                });
            }
        }

        return replicas;
    });

    public static TestHook PipelineByRows() => TestHook.Pipeline("hooks/pipeline-by-rows.csx", param =>
    {
        var replicas = new List<OrchestratorTune>();
        foreach (var entity in param.Entity)
        {
            var stats = entity.SourceDBConn.GetTableStats();
            var numReplicas = stats.TotalRows > 10_000_000 ? 4 : stats.TotalRows > 1_000_000 ? 2 : 1;
            for (var i = 0; i < numReplicas; i++)
            {
                replicas.Add(new OrchestratorTune
                {
                    ParentEntityName = entity.Name,
                    NewEntityName = $"{entity.Name}_partition_{i}",
                    ReplicaProps = new Dictionary<string, object?>
                    {
                        ["replica_id"] = i,
                        ["total_replicas"] = numReplicas,
                        ["partition_hint"] = $"split_{i}",
                        ["data_driven"] = true,
                    },
                });
            }
        }

        return replicas;
    });

    public static TestHooks Both() => new(FlowByCores(), PipelineByRows());

    public static TestHooks None() => new();

    public static IOrchestrationHooks Only(params IOrchestrationHook[] hooks) => new TestHooks(hooks);
}
