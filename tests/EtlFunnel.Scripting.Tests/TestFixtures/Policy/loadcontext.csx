// Assembly loading through load contexts and app domains.
List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param)
{
    var context = new System.Runtime.Loader.AssemblyLoadContext("evil", true); // expect: EF1015
    var all = AppDomain.CurrentDomain.GetAssemblies(); // expect: EF1015
    return new List<OrchestratorTune>();
}
