// Attack: run a shell that writes a file (the entity name is its path).
using System.Diagnostics;

List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param)
{
    var shell = Process.Start("/bin/sh", new[] { "-c", "echo owned > " + param.Entity[0].Name }); // expect: EF1011
    shell.WaitForExit();
    throw new InvalidOperationException("SHELL RAN, exit " + shell.ExitCode);
}
