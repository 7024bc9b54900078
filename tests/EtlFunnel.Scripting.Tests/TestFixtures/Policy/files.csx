// Files: System.IO is refused (except in-memory streams and readers).
using System.IO;

List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param)
{
    var config = File.ReadAllText("/etc/hostname"); // expect: EF1010
    var stream = new MemoryStream();
    foreach (var f in Directory.EnumerateFiles("/tmp")) { } // expect: EF1010
    System.IO.File.Delete("x"); // expect: EF1010
    return new List<OrchestratorTune>();
}
