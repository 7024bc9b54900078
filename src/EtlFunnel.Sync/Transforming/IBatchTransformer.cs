using System.Collections.Concurrent;

namespace EtlFunnel.Sync.Transforming;

/// <summary>
/// One row of a batch as a transformer receives it: the engine's document id and JSON source. <see cref="Deleted"/> marks a CDC
/// delete (the transformer sees <c>RowOperation.Delete</c>): <see cref="Json"/> then holds what the delete carried (the key
/// columns, or the whole old row under REPLICA IDENTITY FULL).
/// </summary>
public readonly record struct BatchRow(string Id, ReadOnlyMemory<byte> Json, bool Deleted = false);

/// <summary>
/// What a transformer made of one row (<see cref="Json"/> is empty unless <see cref="Written"/>; it is always empty for a
/// delete, which <see cref="Written"/> sends to <see cref="Id"/> in <see cref="Index"/>). A document the transformer did not
/// edit may be the input's own memory: the engine then writes the row as it came.
/// </summary>
public readonly record struct TransformedRow(bool Written, string Id, string? Index, ReadOnlyMemory<byte> Json, string? Error);

/// <summary>
/// A data-plane transformer as the sync engine sees it (the runtime adapts the hook host's transformers, which run in the
/// hook worker). One call per batch; an exception fails the whole batch (nothing of it is written or checkpointed).
/// </summary>
public interface IBatchTransformer
{
    /// <summary>The hook's file name, for messages and the report.</summary>
    string Name { get; }

    /// <summary>The hook's loaded version: documents are counted per version.</summary>
    string VersionKey { get; }

    /// <summary>True when it applies to this flow's table.</summary>
    bool AppliesTo(string flow, string schema, string table);

    /// <summary>Transforms one batch; results in input order. A row it threw on comes back with <see cref="TransformedRow.Error"/>.</summary>
    Task<IReadOnlyList<TransformedRow>> TransformAsync(string flow, string schema, string table, IReadOnlyList<BatchRow> rows, TimeSpan budget, CancellationToken ct);
}

/// <summary>Documents written under each transformer version during a run ("name@version" → count).</summary>
public sealed class TransformerCounts
{
    private readonly ConcurrentDictionary<string, long> counts = new(StringComparer.Ordinal);

    /// <summary>A copy of the counts so far.</summary>
    public IReadOnlyDictionary<string, long> Snapshot() => new Dictionary<string, long>(counts, StringComparer.Ordinal);

    internal void Add(string key, long n) => counts.AddOrUpdate(key, n, (_, c) => c + n);
}
