using EtlFunnel.Destinations;
using EtlFunnel.Execution.Models;
using EtlFunnel.Sync.Batching;
using EtlFunnel.Sync.Documents;

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
    /// <summary>Backlog hooks that apply to this pipeline: the first one declaring <c>OnBacklog</c> decides for the rows a transformer threw on.</summary>
    public IReadOnlyList<IPipelineHook> Backlog { get; init; } = [];

    /// <summary>The pipeline replica, for the backlog hook.</summary>
    public PipelineInfo Pipeline { get; init; } = new();

    /// <summary>Most retries per record on a backlog hook's Retry.</summary>
    public int MaxRetries { get; init; } = 3;

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
            ct,
            Backlog.FirstOrDefault(h => h.Declares(PipelineHookKind.Backlog)) is { } backlog
                ? (transformer, input, output, token) => BacklogAsync(backlog, transformer, input, output, token)
                : null).ConfigureAwait(false);

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

    /// <summary>
    /// The backlog hook decides for the rows <paramref name="transformer"/> threw on, in one call per round: Retry runs the
    /// transformer again on those rows (at most <see cref="MaxRetries"/> times, then they are skipped), Skip dead-letters them
    /// as without a hook, Stop fails the batch with <see cref="PipelineStoppedException"/> so that it is not checkpointed.
    /// </summary>
    private async Task<IReadOnlyList<TransformedRow>> BacklogAsync(IPipelineHook backlog, IBatchTransformer transformer, List<ChainRow> input,
        IReadOnlyList<TransformedRow> output, CancellationToken ct)
    {
        var results = output.ToArray();
        for (var attempt = 1; ; attempt++)
        {
            var failed = Enumerable.Range(0, results.Length).Where(i => results[i].Error is not null).ToList();
            if (failed.Count == 0 || attempt > MaxRetries + 1)
            {
                return results;
            }

            var records = failed.Select(i => new BacklogRecord
            {
                Pipeline = Pipeline,
                Id = input[i].Id,
                Stage = FailureStage.Transform,
                Reason = results[i].Error!,
                Attempt = attempt,
                MaxAttempts = MaxRetries + 1,
                Document = System.Text.Encoding.UTF8.GetString(input[i].Json.Span),
            }).ToList();
            IReadOnlyList<BacklogDecision> decisions;
            try
            {
                decisions = await backlog.BacklogAsync(records, budget, ct).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                throw new TransformBatchException(
                    $"Flow '{flow}' replica '{replica}' ({schema}.{table}): the backlog hook failed, so a batch of {input.Count} rows was not written or checkpointed: {ex.Message}", ex);
            }

            var retry = new List<int>();
            for (var k = 0; k < failed.Count; k++)
            {
                var decision = k < decisions.Count ? decisions[k] : BacklogDecision.Skip;
                if (decision.Action == BacklogAction.Stop)
                {
                    throw new PipelineStoppedException(
                        $"{backlog.SourcePath}: OnBacklog stopped it at {schema}.{table} id '{records[k].Id}' (stage {records[k].Stage}, attempt {attempt}: {records[k].Reason}): {decision.Reason}; the batch was not checkpointed, the next run reads it again");
                }

                if (decision.Action == BacklogAction.Retry && attempt <= MaxRetries)
                {
                    retry.Add(failed[k]);
                }
            }

            if (retry.Count == 0)
            {
                return results;
            }

            var again = await transformer.TransformAsync(flow, schema, table, retry.Select(i => new BatchRow(input[i].Id, input[i].Json, input[i].Deleted)).ToList(), budget, ct).ConfigureAwait(false);
            for (var k = 0; k < retry.Count; k++)
            {
                results[retry[k]] = again[k];
            }
        }
    }

    public Task<long> FlushAsync(CancellationToken ct) => inner.FlushAsync(ct);

    public Task RewindAsync(long position, CancellationToken ct) => inner.RewindAsync(position, ct);

    public ValueTask DisposeAsync() => inner.DisposeAsync();
}

/// <summary>A transformer failed a whole batch (e.g. ran past its per-batch budget): nothing of it was written or checkpointed.</summary>
public sealed class TransformBatchException(string message, Exception inner) : Exception(message, inner);
