// A lazy, endless result: enumerating it happens inside the budget too.
IEnumerable<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param)
{
    var i = 0;
    while (true)
    {
        yield return new OrchestratorTune { ParentEntityName = "x", NewEntityName = $"x_{i++}" };
    }
}
