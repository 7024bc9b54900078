// Never returns: the host must stop it within its budget.
List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param)
{
    long spins = 0;
    while (true) { spins++; } // stopped here
}
