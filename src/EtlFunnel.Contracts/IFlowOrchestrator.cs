using System.Collections.Generic;

namespace EtlFunnel.Execution.Models;

/// <summary>A flow-level hook in a plugin DLL: decides how many replicas of each flow run.</summary>
public interface IFlowOrchestrator
{
    /// <summary>Returns the flow replicas; throw to report an error.</summary>
    IEnumerable<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param);
}
