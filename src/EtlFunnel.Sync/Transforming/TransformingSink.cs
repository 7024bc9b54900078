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
        IReadOnlyList<BatchRow> rows = batch.Items.Select(i => new BatchRow(i.Id, batch.Source(i))).ToList();
        IReadOnlyList<TransformedRow> current = rows.Select(r => new TransformedRow(true, r.Id, null, r.Json, null)).ToList();
        long dead = 0;
        foreach (var transformer in transformers)
        {
            var input = current.Where(r => r.Written).ToList();
            IReadOnlyList<TransformedRow> output;
            try
            {
                output = await transformer.TransformAsync(flow, schema, table, input.Select(r => new BatchRow(r.Id, r.Json)).ToList(), budget, ct).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                throw new TransformBatchException(
                    $"Flow '{flow}' replica '{replica}' ({schema}.{table}): a batch of {input.Count} rows was not written or checkpointed: {ex.Message}", ex);
            }

            var next = new List<TransformedRow>(output.Count);
            for (var i = 0; i < output.Count; i++)
            {
                var row = output[i];
                if (row.Error is { } error)
                {
                    await deadLetters.WriteAsync(flow, replica, batch.Index, input[i].Id, null, error, input[i].Json, ct).ConfigureAwait(false);
                    dead++;
                    continue;
                }

                next.Add(row with { Index = row.Index ?? input[i].Index });
            }

            counts?.Add($"{transformer.Name}@{transformer.VersionKey}", next.Count(r => r.Written));
            current = next;
        }

        long indexed = 0, dlq = dead, retries = 0;
        foreach (var group in current.Where(r => r.Written).GroupBy(r => r.Index ?? batch.Index, StringComparer.Ordinal))
        {
            var routed = new DocumentBatch(group.Key, batch.Bytes, batch.Version);
            foreach (var row in group)
            {
                var start = routed.Bytes;
                var span = routed.Writer.GetSpan(row.Json.Length);
                row.Json.Span.CopyTo(span);
                routed.Writer.Advance(row.Json.Length);
                routed.Add(row.Id, start);
            }

            var outcome = await inner.WriteAsync(routed, ct).ConfigureAwait(false);
            (indexed, dlq, retries) = (indexed + outcome.Indexed, dlq + outcome.DeadLettered, retries + outcome.Retries);
        }

        if (dead > 0)
        {
            await deadLetters.FlushAsync(CancellationToken.None).ConfigureAwait(false);
        }

        return new BatchOutcome(indexed, dlq, retries);
    }

    public Task<long> FlushAsync(CancellationToken ct) => inner.FlushAsync(ct);

    public Task RewindAsync(long position, CancellationToken ct) => inner.RewindAsync(position, ct);

    public ValueTask DisposeAsync() => inner.DisposeAsync();
}

/// <summary>A transformer failed a whole batch (e.g. ran past its per-batch budget): nothing of it was written or checkpointed.</summary>
public sealed class TransformBatchException(string message, Exception inner) : Exception(message, inner);
