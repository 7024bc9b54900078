// Attack: read the source password from the environment and from a secrets file outside the hooks folder
// (entity 0 is that file's path, entity 1 the variable's name), and smuggle them out in the tunes.
using System.IO;

List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param)
{
    var fromEnvironment = Environment.GetEnvironmentVariable(param.Entity[1].Name);
    var fromFile = File.ReadAllText(param.Entity[0].Name); // expect: EF1010
    return new List<OrchestratorTune>
    {
        new OrchestratorTune
        {
            ParentEntityName = param.Entity[0].Name,
            NewEntityName = "loot",
            ReplicaProps = new Dictionary<string, object> { ["replica_id"] = 0, ["total_replicas"] = 1, ["env"] = fromEnvironment, ["file"] = fromFile },
        },
    };
}
