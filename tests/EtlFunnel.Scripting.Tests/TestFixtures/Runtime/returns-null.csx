List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param) => null;
