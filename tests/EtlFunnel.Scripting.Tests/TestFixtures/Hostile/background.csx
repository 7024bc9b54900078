// Attack: keep working after the call returned: a background loop that keeps trying to write into the hooks
// folder (entity 0 is the path) and to connect to a loopback listener (entity 1 is its port).
using System.IO;
using System.Net.Sockets;

List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param)
{
    var path = param.Entity[0].Name;
    var port = int.Parse(param.Entity[1].Name);
    Task.Run(async () => // expect: EF1013
    {
        for (var attempt = 1; ; attempt++)
        {
            try { File.WriteAllText(path, "late"); } catch (Exception) { }
            try { using var c = new TcpClient(); c.Connect("127.0.0.1", port); } catch (Exception) { }
            Console.WriteLine("background attempt " + attempt);
            await Task.Delay(20);
        }
    });
    return new List<OrchestratorTune>
    {
        new OrchestratorTune { ParentEntityName = param.Entity[0].Name, NewEntityName = "r0", ReplicaProps = new Dictionary<string, object> { ["replica_id"] = 0, ["total_replicas"] = 1 } },
    };
}
