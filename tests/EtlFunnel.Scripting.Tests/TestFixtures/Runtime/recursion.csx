// Unbounded recursion would overflow the stack and kill the process; the entry check turns it into an exception.
int Deeper(int n) => Deeper(n + 1);

List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param)
{
    Deeper(0);
    return new List<OrchestratorTune>();
}
