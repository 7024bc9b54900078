namespace EtlFunnel.Execution.Models;

/// <summary>One failed record of a batch, given to a backlog hook (<c>BacklogDecision OnBacklog(BacklogRecord r)</c>).</summary>
public sealed class BacklogRecord
{
    /// <summary>The pipeline replica.</summary>
    public PipelineInfo Pipeline { get; init; } = new();

    /// <summary>The record's document id.</summary>
    public string Id { get; init; } = "";

    /// <summary>Where it failed.</summary>
    public FailureStage Stage { get; init; }

    /// <summary>Why (the transformer's <c>file(line,col)</c> and message, or the destination's error).</summary>
    public string Reason { get; init; } = "";

    /// <summary>1 for the first failure; one more after each retry.</summary>
    public int Attempt { get; init; }

    /// <summary>The most retries the engine allows per record; a Retry past it counts as Skip.</summary>
    public int MaxAttempts { get; init; }

    /// <summary>The record's document as JSON (the engine's document before the transformers).</summary>
    public string Document { get; init; } = "";
}
