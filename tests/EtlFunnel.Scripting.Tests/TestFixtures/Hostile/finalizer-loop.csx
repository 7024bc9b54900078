// Attack: an endless loop on the runtime's finalizer thread, outside any call and its budget.
class Spinner
{
    ~Spinner() // expect: EF1022
    {
        while (true) { }
    }
}

List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param)
{
    MakeGarbage();
    return new List<OrchestratorTune>();
}

void MakeGarbage() => new Spinner();
