// A hook sharing helpers with #load (files inside the hooks folder only).
#load "lib/naming.csx"

async Task<IEnumerable<OrchestratorTune>> GetFlowOrchestration(OrchestratorProps param)
{
    await Task.Yield();
    return param.Entity.Select((e, i) => Naming.Replica(e.Name, param.Machine.Region ?? "none", 0, 1));
}
