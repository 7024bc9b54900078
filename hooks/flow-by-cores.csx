// Flow-level hook (the seed's "scale by CPU"): one replica of every flow per core of the machine the plan is for.
// param.Machine is this machine, or the profile given with `etlfunnel plan --machine samples/regions/eu.yaml`.
using System.Collections.Generic;
using EtlFunnel.Execution.Models;

List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param)
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
