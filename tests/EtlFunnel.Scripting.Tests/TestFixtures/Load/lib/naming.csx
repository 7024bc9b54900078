// Shared helper, #load-ed by by-region.csx; not a hook itself.
static class Naming
{
    public static OrchestratorTune Replica(string parent, string region, int id, int total) => new OrchestratorTune
    {
        ParentEntityName = parent,
        NewEntityName = $"{parent}_{region.ToLowerInvariant()}_{id}",
        ReplicaProps = new Dictionary<string, object> { [ReplicaPropKeys.ReplicaId] = id, [ReplicaPropKeys.TotalReplicas] = total },
    };

    public static void Fail(string why) => throw new InvalidOperationException(why);
}
