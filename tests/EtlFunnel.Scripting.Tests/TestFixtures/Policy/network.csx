// Network.
using System.Net.Http;

List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param)
{
    using var client = new HttpClient(); // expect: EF1012
    var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp); // expect: EF1012
    var text = System.Net.WebUtility.HtmlEncode("<ok>");
    return new List<OrchestratorTune>();
}
