namespace EtlFunnel.Execution.Models;

/// <summary>A checkpoint hook's answer: go on, or stop the replica here (its checkpoint is kept; a later run resumes from it).</summary>
public sealed class CheckpointDecision
{
    private CheckpointDecision(bool stops, string? reason)
    {
        Stops = stops;
        Reason = reason;
    }

    /// <summary>Go on reading.</summary>
    public static CheckpointDecision Continue { get; } = new(false, null);

    /// <summary>True when the replica stops at this checkpoint.</summary>
    public bool Stops { get; }

    /// <summary>Why it stops (printed in the run's report).</summary>
    public string? Reason { get; }

    /// <summary>Stops the replica at this checkpoint, saying why.</summary>
    public static CheckpointDecision Stop(string reason) => new(true, reason);
}
