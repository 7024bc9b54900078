// Interop: P/Invoke and Marshal.
using System.Runtime.InteropServices;

[DllImport("libc")] // expect: EF1016
static extern int getpid(); // expect: EF1016

List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param)
{
    var p = Marshal.AllocHGlobal(16); // expect: EF1016
    return new List<OrchestratorTune>();
}
