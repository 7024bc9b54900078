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

            if (Backlog.FirstOrDefault(h => h.Declares(PipelineHookKind.Backlog)) is { } backlog && output.Any(r => r.Error is not null))
            {
                output = await BacklogAsync(backlog, transformer, input, output, ct).ConfigureAwait(false);
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

    /// <summary>
    /// The backlog hook decides for the rows <paramref name="transformer"/> threw on, in one call per round: Retry runs the
    /// transformer again on those rows (at most <see cref="MaxRetries"/> times, then they are skipped), Skip dead-letters them
    /// as without a hook, Stop fails the batch with <see cref="PipelineStoppedException"/> so that it is not checkpointed.
    /// </summary>
    private async Task<IReadOnlyList<TransformedRow>> BacklogAsync(IPipelineHook backlog, IBatchTransformer transformer, IReadOnlyList<TransformedRow> input,
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

            var again = await transformer.TransformAsync(flow, schema, table, retry.Select(i => new BatchRow(input[i].Id, input[i].Json)).ToList(), budget, ct).ConfigureAwait(false);
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
