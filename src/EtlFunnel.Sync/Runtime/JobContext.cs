using EtlFunnel.Destinations;
using EtlFunnel.Sync.State;
using Microsoft.Extensions.Logging;

namespace EtlFunnel.Sync.Runtime;

/// <summary>Test seams: called by the engine at points where real faults happen, so tests can cause them deterministically.</summary>
internal sealed class SyncTestHooks
{
    /// <summary>After a batch was handed to the sink, while the COPY of its chunk is still open.</summary>
    public Func<BatchDispatched, ValueTask>? AfterDispatch { get; init; }
}

internal readonly record struct BatchDispatched(string Flow, string Replica, int BackendProcessId, long BatchNumber);

/// <summary>What every replica of one run shares.</summary>
internal sealed record JobContext
{
    public required SyncOptions Options { get; init; }

    public required IStateStore Store { get; init; }

    public required string RunId { get; init; }

    public required DeadLetterWriter DeadLetters { get; init; }

    public required ILogger Log { get; init; }

    public IProgress<SyncProgress>? Progress { get; init; }

    public SyncTestHooks? Hooks { get; init; }

    /// <summary>CDC snapshot: the external version (slot consistent point) every document is written with; null otherwise.</summary>
    public long? ExternalVersion { get; init; }
}
