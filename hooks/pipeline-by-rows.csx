// Pipeline-level hook (the seed's "scale by data volume"): split big tables.
// 1 replica under 1M rows, 2 above 1M, 4 above 10M. Each flow replica's share of a table is split this way.
using System.Collections.Generic;
using EtlFunnel.Execution.Models;

List<OrchestratorTune> GetPipelineOrchestration(OrchestratorProps param)
{
    var replicas = new List<OrchestratorTune>();

    foreach (var entity in param.Entity)
    {
        var stats = entity.SourceDBConn.GetTableStats();

        var numReplicas = 1;
        if (stats.TotalRows > 10_000_000)
        {
            numReplicas = 4;
        }
        else if (stats.TotalRows > 1_000_000)
        {
            numReplicas = 2;
        }

        for (var i = 0; i < numReplicas; i++)
        {
            replicas.Add(new OrchestratorTune
            {
                ParentEntityName = entity.Name,
                NewEntityName = $"{entity.Name}_partition_{i}",
                ReplicaProps = new Dictionary<string, object>
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
}
