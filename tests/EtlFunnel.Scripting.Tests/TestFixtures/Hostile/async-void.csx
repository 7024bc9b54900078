// Attack: crash the process from a background thread: an exception escaping an async void method.
async void Boom() // expect: EF1025
{
    await Task.Yield();
    throw new InvalidOperationException("boom from async void");
}

async Task<List<OrchestratorTune>> GetFlowOrchestration(OrchestratorProps param)
{
    Boom();
    await Task.Delay(Timeout.Infinite, param.CancellationToken);
    return new List<OrchestratorTune>();
}
