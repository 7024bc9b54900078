using System.Collections.Concurrent;

namespace EtlFunnel.Sync.Tests.Support;

/// <summary>Records progress updates synchronously (unlike <see cref="Progress{T}"/>, which posts them later).</summary>
internal sealed class CollectingProgress : IProgress<SyncProgress>
{
    public ConcurrentQueue<SyncProgress> Updates { get; } = new();

    public void Report(SyncProgress value) => Updates.Enqueue(value);
}
