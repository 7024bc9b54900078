namespace EtlFunnel.Execution.Models;

/// <summary>
/// A pipeline's destination write rule, returned by a hook's <c>WriteRule WriteRule(PipelineInfo p)</c> once per replica
/// start. A null value keeps the engine's (the plan's) setting.
/// </summary>
public sealed class WriteRule
{
    /// <summary>Documents per destination batch (1 to 100,000); null keeps the plan's <c>batch_size</c>.</summary>
    public int? BatchSize { get; init; }

    /// <summary>
    /// How often the checkpoint hook and the termination rule are checked: every N checkpoints (1 to 1,000,000; a
    /// checkpoint follows each chunk of the table once all its batches are confirmed). Null means every checkpoint.
    /// </summary>
    public int? CheckInterval { get; init; }
}
