using EtlFunnel.Sync.Documents;
using EtlFunnel.Destinations;

namespace EtlFunnel.Sync.Transforming;

/// <summary>
/// Runs a pipeline's transformers over each batch before its sink: one call per transformer per batch, then the
/// documents written grouped by target index (routing), rows a transformer threw on dead-lettered with its
/// <c>file(line,col)</c> and message, skipped rows left out. A transformer that fails the batch (time budget) makes
/// the write fail, so the batch is never checkpointed and the run reports the replica as failed.
/// </summary>
internal sealed class TransformingSink(IReplicaSink inner, IReadOnlyList<IBatchTransformer> transformers, DeadLetterWriter deadLetters,
    string flow, string schema, string table, string replica, TimeSpan budget, TransformerCounts? counts) : IReplicaSink
{
    public int MaxInFlight => inner.MaxInFlight;

    public Task OpenAsync(long? position, bool append, CancellationToken ct) => inner.OpenAsync(position, append, ct);

    public async Task<BatchOutcome> WriteAsync(DocumentBatch batch, CancellationToken ct)
    {
        var rows = new List<ChainRow>(batch.Count);
        for (var i = 0; i < batch.Items.Count; i++)
        {
            var item = batch.Items[i];
            rows.Add(new ChainRow(i, item.Id, null, batch.Source(item), false));
        }

        var (written, dead) = await TransformChain.RunAsync(transformers, flow, schema, table, rows, budget, counts,
            (row, error, token) => deadLetters.WriteAsync(flow, replica, batch.Index, row.Id, null, error, row.Json, token),
            (count, ex) => new TransformBatchException($"Flow '{flow}' replica '{replica}' ({schema}.{table}): a batch of {count} rows was not written or checkpointed: {ex.Message}", ex),
            ct).ConfigureAwait(false);

        long indexed = 0, dlq = dead, retries = 0;
        foreach (var routed in Regroup(batch, written))
        {
            var outcome = await inner.WriteAsync(routed, ct).ConfigureAwait(false);
            (indexed, dlq, retries) = (indexed + outcome.Indexed, dlq + outcome.DeadLettered, retries + outcome.Retries);
        }

        if (dead > 0)
        {
            await deadLetters.FlushAsync(CancellationToken.None).ConfigureAwait(false);
        }

        return new BatchOutcome(indexed, dlq, retries);
    }

    // The written rows as batches per target index, in the order each index first appears. When every row came out as it went
    // in (same id, the pipeline's index, the input's own bytes: an identity transformer), that is the batch itself, uncopied.
    private static List<DocumentBatch> Regroup(DocumentBatch batch, List<ChainRow> written)
    {
        if (written.Count == batch.Count)
        {
            var same = true;
            for (var i = 0; i < written.Count && same; i++)
            {
                var row = written[i];
                var item = batch.Items[i];
                same = row.Position == i && row.Index is null && string.Equals(row.Id, item.Id, StringComparison.Ordinal) && row.Json.Equals(batch.Source(item));
            }

            if (same)
            {
                return written.Count == 0 ? [] : [batch];
            }
        }

        var batches = new List<DocumentBatch>(1);
        Dictionary<string, DocumentBatch>? byIndex = null;
        DocumentBatch? last = null;
        foreach (var row in written)
        {
            var index = row.Index ?? batch.Index;
            if (last is null || !string.Equals(last.Index, index, StringComparison.Ordinal))
            {
                byIndex ??= new Dictionary<string, DocumentBatch>(StringComparer.Ordinal);
                if (!byIndex.TryGetValue(index, out last))
                {
                    byIndex[index] = last = new DocumentBatch(index, batch.Bytes, batch.Version);
                    batches.Add(last);
                }
            }

            var start = last.Bytes;
            row.Json.Span.CopyTo(last.Writer.GetSpan(row.Json.Length));
            last.Writer.Advance(row.Json.Length);
            last.Add(row.Id, start);
        }

        return batches;
    }

    public Task<long> FlushAsync(CancellationToken ct) => inner.FlushAsync(ct);

    public Task RewindAsync(long position, CancellationToken ct) => inner.RewindAsync(position, ct);

    public ValueTask DisposeAsync() => inner.DisposeAsync();
}

/// <summary>A transformer failed a whole batch (e.g. ran past its per-batch budget): nothing of it was written or checkpointed.</summary>
public sealed class TransformBatchException(string message, Exception inner) : Exception(message, inner);
