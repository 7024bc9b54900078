// Processes and debuggers.
List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param)
{
    System.Diagnostics.Process.Start("sh", "-c 'rm -rf /'"); // expect: EF1011
    var watch = System.Diagnostics.Stopwatch.StartNew();
    System.Diagnostics.Debugger.Break(); // expect: EF1011
    return new List<OrchestratorTune>();
}
