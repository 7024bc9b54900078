// Attack: exhaust the machine's memory with one 8 GB allocation.
List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param)
{
    var big = new long[1L << 30];
    big[big.Length - 1] = 1;
    return new List<OrchestratorTune>();
}
