namespace EtlFunnel.Destinations;

/// <summary>What the destination confirmed for one batch.</summary>
internal readonly record struct BatchOutcome(long Indexed, long DeadLettered, long Retries);

/// <summary>One replica's writer into a destination.</summary>
internal interface IReplicaSink : IAsyncDisposable
{
    /// <summary>Upper bound on concurrent <see cref="WriteAsync"/> calls this sink allows.</summary>
    int MaxInFlight { get; }

    /// <summary>Prepares the destination; <paramref name="position"/> is where a resumed replica continues (files: byte offset), null for a fresh start.</summary>
    Task OpenAsync(long? position, bool append, CancellationToken ct);

    /// <summary>Writes a batch and returns only once the destination confirmed (or dead-lettered) every document.</summary>
    Task<BatchOutcome> WriteAsync(DocumentBatch batch, CancellationToken ct);

    /// <summary>Makes everything written so far durable against a process crash and returns the position to checkpoint.</summary>
    Task<long> FlushAsync(CancellationToken ct);

    /// <summary>Drops what was written after <paramref name="position"/> (a chunk that will be read again).</summary>
    Task RewindAsync(long position, CancellationToken ct);
}
