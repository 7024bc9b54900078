using System;

namespace EtlFunnel.Execution.Models;

/// <summary>What a checkpoint hook (<c>CheckpointDecision OnCheckpoint(CheckpointInfo c)</c>) sees: the replica's progress at a durable checkpoint.</summary>
public sealed class CheckpointInfo
{
    /// <summary>The pipeline replica.</summary>
    public PipelineInfo Pipeline { get; init; } = new();

    /// <summary>Rows read and confirmed so far (including rows an interrupted run of the same job had read).</summary>
    public long RowsRead { get; init; }

    /// <summary>Documents the destination confirmed so far.</summary>
    public long DocsIndexed { get; init; }

    /// <summary>Destination batches this replica wrote in this run.</summary>
    public long Batches { get; init; }

    /// <summary>Checkpoints this replica wrote in this run (this one included).</summary>
    public long Checkpoints { get; init; }

    /// <summary>Rows dead-lettered so far.</summary>
    public long DeadLettered { get; init; }

    /// <summary>Time since the replica started in this run.</summary>
    public TimeSpan Elapsed { get; init; }

    /// <summary>The last checkpointed position, e.g. <c>public.products block 1024</c> (the next block to read).</summary>
    public string Position { get; init; } = "";
}
