namespace EtlFunnel.Execution.Models;

/// <summary>The <see cref="OrchestratorTune.ReplicaProps"/> keys the runtime understands. Other keys are carried through to the plan untouched.</summary>
public static class ReplicaPropKeys
{
    /// <summary>Required. This replica's index among its siblings, 0 to <c>total_replicas - 1</c>.</summary>
    public const string ReplicaId = "replica_id";

    /// <summary>Required. How many replicas the parent entity has; every id below it must be present exactly once.</summary>
    public const string TotalReplicas = "total_replicas";

    /// <summary>Optional. Most documents per bulk request (default 5000).</summary>
    public const string BatchSize = "batch_size";

    /// <summary>Optional. Most bytes per bulk request (default 5 MB).</summary>
    public const string BatchBytes = "batch_bytes";

    /// <summary>Optional. Most bulk requests in flight per pipeline replica (default 2).</summary>
    public const string MaxInFlight = "max_in_flight";

    /// <summary>Optional. Rows fetched per read from PostgreSQL before they are turned into documents (default 10000).</summary>
    public const string FetchSize = "fetch_size";
}
