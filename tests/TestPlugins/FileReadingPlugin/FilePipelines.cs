using EtlFunnel.Execution.Models;

namespace FileReadingPlugin;

/// <summary>Reads a partition count from a file next to the process (a forbidden API for hooks).</summary>
public sealed class FilePipelines : IPipelineOrchestrator
{
    public IEnumerable<OrchestratorTune> GetPipelineOrchestration(OrchestratorProps param)
    {
        ArgumentNullException.ThrowIfNull(param);
        var partitions = File.Exists("partitions.txt") ? int.Parse(File.ReadAllText("partitions.txt"), System.Globalization.CultureInfo.InvariantCulture) : 2;
        return param.Entity.SelectMany(e => Enumerable.Range(0, partitions).Select(i => new OrchestratorTune
        {
            ParentEntityName = e.Name,
            NewEntityName = $"{e.Name}_file_{i}",
            ReplicaProps = new Dictionary<string, object?> { [ReplicaPropKeys.ReplicaId] = i, [ReplicaPropKeys.TotalReplicas] = partitions },
        })).ToList();
    }
}
