// Attack: block in a call the budget cannot interrupt (no loop, no method entry to check at).
List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param)
{
    Thread.Sleep(Timeout.Infinite); // expect: EF1013
    return new List<OrchestratorTune>();
}
