// One file can serve both levels; top-level state is fresh on every call.
var calls = 0;

Task<List<OrchestratorTune>> GetFlowOrchestration(OrchestratorProps param)
{
    calls++;
    return Task.FromResult(param.Entity.Select(e => new OrchestratorTune { ParentEntityName = e.Name, NewEntityName = $"{e.Name}_call{calls}" }).ToList());
}

IEnumerable<OrchestratorTune> GetPipelineOrchestration(OrchestratorProps param)
{
    foreach (var e in param.Entity)
    {
        yield return new OrchestratorTune { ParentEntityName = e.Name, NewEntityName = e.Name + "_p" + param.Parent?.NewEntityName };
    }
}
