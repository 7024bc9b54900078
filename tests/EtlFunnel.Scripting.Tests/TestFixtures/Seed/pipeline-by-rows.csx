// Pipeline-level orchestration: scale by data volume (the seed's GetPipelineOrchestration, in C#).
// Errors are thrown exceptions (Go's `error` return).
using EtlFunnel.Execution.Models;

List<OrchestratorTune> GetPipelineOrchestration(OrchestratorProps param)
{
    if (param == null)
    {
        throw new ArgumentNullException(nameof(param), "orchestrator props cannot be nil");
    }

    var replicas = new List<OrchestratorTune>();
    foreach (var entity in param.Entity)
    {
        // Fetch table stats through the entity's source connection (IDatabaseEngine).
        TableStats stats;
        try
        {
            stats = entity.SourceDBConn.GetTableStats();
        }
        catch (Exception ex)
        {
            throw new InvalidOperationException($"failed to fetch stats for {entity.Name}: {ex.Message}", ex);
        }

        // Split pipelines based on total row count.
        int numReplicas = 1;
        if (stats.TotalRows > 10_000_000)
        {
            numReplicas = 4;
        }
        else if (stats.TotalRows > 1_000_000)
        {
            numReplicas = 2;
        }

        for (int i = 0; i < numReplicas; i++)
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
