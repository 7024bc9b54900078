// Referencing assemblies is refused: hooks compile against a fixed reference set.
#r "System.Net.Http.dll" // expect: EF1002

List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param) => new List<OrchestratorTune>();
