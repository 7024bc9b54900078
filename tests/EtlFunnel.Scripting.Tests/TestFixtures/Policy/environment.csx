// Process control through Environment.
List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param)
{
    var cores = Environment.ProcessorCount;
    var region = Environment.GetEnvironmentVariable("REGION");
    Environment.SetEnvironmentVariable("REGION", "EU"); // expect: EF1019
    if (cores < 0) Environment.Exit(1); // expect: EF1019
    if (cores < 0) Environment.FailFast("bye"); // expect: EF1019
    return new List<OrchestratorTune>();
}
