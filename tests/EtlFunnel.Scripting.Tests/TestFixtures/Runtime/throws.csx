// Reports an error the Go way: by failing (here, by throwing).
List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param)
{
    if (param.Entity.Count > 0)
    {
        throw new InvalidOperationException("no stats for " + param.Entity[0].Name); // line 6
    }

    return new List<OrchestratorTune>();
}
