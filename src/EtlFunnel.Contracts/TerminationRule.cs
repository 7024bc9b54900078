using System;

namespace EtlFunnel.Execution.Models;

/// <summary>
/// When a replica stops on its own, returned by a hook's <c>TerminationRule Termination(PipelineInfo p)</c> once per replica.
/// Each limit is optional; the first one reached stops the replica at the next check, after that checkpoint is written,
/// and a later run resumes from it.
/// </summary>
public sealed class TerminationRule
{
    /// <summary>Stop once this many rows were read by the replica in this run (checked at checkpoints, so it may read up to one chunk more).</summary>
    public long? MaxRecords { get; init; }

    /// <summary>Stop when no row was read for this long (in a snapshot: checks whose chunks had no rows).</summary>
    public TimeSpan? IdleTimeout { get; init; }

    /// <summary>Stop once the replica ran this long in this run.</summary>
    public TimeSpan? MaxPipelineTime { get; init; }
}
