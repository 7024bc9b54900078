// dynamic (late binding goes around the policy).
List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param)
{
    dynamic d = param; // expect: EF1018
    return new List<OrchestratorTune>();
}
