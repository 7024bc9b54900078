// Unsafe code and stackalloc.
List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param)
{
    unsafe // expect: EF1017
    {
        int x = 1;
        int* p = &x; // expect: EF1017
    }

    Span<int> big = stackalloc int[1024]; // expect: EF1017
    return new List<OrchestratorTune>();
}
