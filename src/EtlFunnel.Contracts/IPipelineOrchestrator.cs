using System.Collections.Generic;

namespace EtlFunnel.Execution.Models;

/// <summary>A pipeline-level hook in a plugin DLL: decides how many partitions each table of a flow replica is split into.</summary>
public interface IPipelineOrchestrator
{
    /// <summary>Returns the pipeline replicas; throw to report an error.</summary>
    IEnumerable<OrchestratorTune> GetPipelineOrchestration(OrchestratorProps param);
}
