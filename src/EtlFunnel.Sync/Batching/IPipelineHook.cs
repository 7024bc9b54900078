using EtlFunnel.Execution.Models;

namespace EtlFunnel.Sync.Batching;

/// <summary>The batch-level hooks a script may declare.</summary>
public enum PipelineHookKind
{
    /// <summary><c>WriteRule WriteRule(PipelineInfo p)</c>, once per replica start.</summary>
    WriteRule,

    /// <summary><c>TerminationRule Termination(PipelineInfo p)</c>, once per replica start.</summary>
    Termination,

    /// <summary><c>CheckpointDecision OnCheckpoint(CheckpointInfo c)</c>, at checkpoints.</summary>
    Checkpoint,

    /// <summary><c>BacklogDecision OnBacklog(BacklogRecord r)</c>, for a batch's failed records (one call per batch).</summary>
    Backlog,
}

/// <summary>
/// A script's batch-level hooks as the sync engine sees them (the runtime adapts the hook host's, which run in the hook
/// worker). Each call looks the script's current version up, so a reload applies from the next call. Any exception is
/// the hook's failure; its message names the script's <c>file(line,col)</c>.
/// </summary>
public interface IPipelineHook
{
    /// <summary>The hook's file name, for messages and the report.</summary>
    string Name { get; }

    /// <summary>The hook's full path.</summary>
    string SourcePath { get; }

    /// <summary>True when it applies to this flow's table.</summary>
    bool AppliesTo(string flow, string schema, string table);

    /// <summary>True when the current version declares <paramref name="kind"/>.</summary>
    bool Declares(PipelineHookKind kind);

    /// <summary>Calls <c>WriteRule</c> (validated: a bad value throws at the hook's line).</summary>
    Task<WriteRule> WriteRuleAsync(PipelineInfo pipeline, TimeSpan budget, CancellationToken ct);

    /// <summary>Calls <c>Termination</c> (validated).</summary>
    Task<TerminationRule> TerminationAsync(PipelineInfo pipeline, TimeSpan budget, CancellationToken ct);

    /// <summary>Calls <c>OnCheckpoint</c>.</summary>
    Task<CheckpointDecision> CheckpointAsync(CheckpointInfo checkpoint, TimeSpan budget, CancellationToken ct);

    /// <summary>Calls <c>OnBacklog</c> for each record, in one call; one decision per record.</summary>
    Task<IReadOnlyList<BacklogDecision>> BacklogAsync(IReadOnlyList<BacklogRecord> records, TimeSpan budget, CancellationToken ct);
}

/// <summary>A batch-level hook stopped the replica (termination rule, checkpoint hook or backlog hook).</summary>
public sealed class PipelineStoppedException(string message) : Exception(message);
