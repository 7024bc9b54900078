namespace EtlFunnel.Execution.Models;

/// <summary>The pipeline replica a batch-level hook is called for (what its <c>AppliesTo</c> globs matched).</summary>
public sealed class PipelineInfo
{
    /// <summary>The configured flow (what <c>flow/schema.table</c> globs match).</summary>
    public string Flow { get; init; } = "";

    /// <summary>The flow replica's name (e.g. <c>shop_0</c>; the flow's name when it is not replicated).</summary>
    public string FlowReplica { get; init; } = "";

    /// <summary>The pipeline replica's name, unique within its flow replica (e.g. <c>products_1</c>).</summary>
    public string Replica { get; init; } = "";

    /// <summary>Schema of the source table.</summary>
    public string Schema { get; init; } = "";

    /// <summary>The source table.</summary>
    public string Table { get; init; } = "";

    /// <summary>The destination index (or file folder) of the pipeline.</summary>
    public string Index { get; init; } = "";

    /// <summary>The run's mode: <c>full</c>, <c>incremental</c> or <c>cdc</c>.</summary>
    public string Mode { get; init; } = "";
}
