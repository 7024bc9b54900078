namespace EtlFunnel.Execution.Models;

/// <summary>What a backlog hook decided for a failed record.</summary>
public enum BacklogAction
{
    /// <summary>Write it to the dead letters with its reason and go on (what happens without a backlog hook).</summary>
    Skip = 0,

    /// <summary>Try the failed stage again (up to <see cref="BacklogRecord.MaxAttempts"/>; then it is skipped).</summary>
    Retry = 1,

    /// <summary>Stop the replica without checkpointing this batch: the next run reads it again.</summary>
    Stop = 2,
}

/// <summary>A backlog hook's answer for one failed record.</summary>
public sealed class BacklogDecision
{
    private BacklogDecision(BacklogAction action, string? reason)
    {
        Action = action;
        Reason = reason;
    }

    /// <summary>Dead-letter the record and go on.</summary>
    public static BacklogDecision Skip { get; } = new(BacklogAction.Skip, null);

    /// <summary>Try the failed stage again.</summary>
    public static BacklogDecision Retry { get; } = new(BacklogAction.Retry, null);

    /// <summary>What to do.</summary>
    public BacklogAction Action { get; }

    /// <summary>Why (for <see cref="BacklogAction.Stop"/>, printed in the run's report).</summary>
    public string? Reason { get; }

    /// <summary>Stops the replica without checkpointing the batch, saying why.</summary>
    public static BacklogDecision Stop(string reason) => new(BacklogAction.Stop, reason);
}
