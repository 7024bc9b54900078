// Flow-level orchestration: scale by CPU (the seed's GetFlowOrchestration, in C#).
// One replica of every flow per logical core of the machine the plan is made for.
using EtlFunnel.Execution.Models;

List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param)
{
    // The machine's cores (the real ones, or the profile's with --machine); Environment.ProcessorCount works too.
    int numThreads = param.Machine.LogicalCores;

    var replicas = new List<OrchestratorTune>();
    foreach (var entity in param.Entity)
    {
        for (int i = 0; i < numThreads; i++)
        {
            replicas.Add(new OrchestratorTune
            {
                ParentEntityName = entity.Name,
                NewEntityName = $"{entity.Name}_core_{i}",
                ReplicaProps = new Dictionary<string, object>
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
}
