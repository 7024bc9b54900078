// Attack: phone home. Connect to a listener on the host's loopback (the entity name is its port).
using System.Net.Sockets;

List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param)
{
    using var client = new TcpClient(); // expect: EF1012
    client.Connect("127.0.0.1", int.Parse(param.Entity[0].Name));
    throw new InvalidOperationException("CONNECTED");
}
