namespace EtlFunnel.Sync.Transforming;

/// <summary>A row on its way through a chain of transformers: where it came from in the batch and what it is now.</summary>
/// <param name="Position">The row's place in the batch the sink received.</param>
/// <param name="Id">The document id (as the last transformer wrote it).</param>
/// <param name="Index">The index it goes to; null for the pipeline's own.</param>
/// <param name="Json">The document the next transformer sees (for a delete: the row the delete carried).</param>
/// <param name="Deleted">A CDC delete.</param>
internal readonly record struct ChainRow(int Position, string Id, string? Index, ReadOnlyMemory<byte> Json, bool Deleted);

/// <summary>
/// Runs a table's transformers in order over the rows of one batch, for the snapshot sink (<see cref="TransformingSink"/>) and
/// the CDC one (<c>Cdc.TransformingChangeSink</c>): one call per transformer per batch; a row a transformer threw on is dead-lettered (by the
/// caller's callback) and leaves the chain, a skipped row leaves it, the others go on as written (a delete keeps the
/// row it carried for the next transformer). The documents written under each transformer version are counted. When the
/// caller passes <c>onErrors</c> (the snapshot sink's backlog hook), it sees a transformer's results first and may replace
/// the failed ones (a retry) or throw (a stop).
/// </summary>
internal static class TransformChain
{
    /// <summary>The rows that came out of the last transformer, in batch order, and how many were dead-lettered.</summary>
    public static async Task<(List<ChainRow> Rows, long DeadLettered)> RunAsync(IReadOnlyList<IBatchTransformer> chain, string flow, string schema, string table,
        List<ChainRow> rows, TimeSpan budget, TransformerCounts? counts, Func<ChainRow, string, CancellationToken, Task> deadLetter,
        Func<int, Exception, Exception> batchFailed, CancellationToken ct,
        Func<IBatchTransformer, List<ChainRow>, IReadOnlyList<TransformedRow>, CancellationToken, Task<IReadOnlyList<TransformedRow>>>? onErrors = null)
    {
        var current = rows;
        var input = new List<BatchRow>(rows.Count);
        long dead = 0;
        foreach (var transformer in chain)
        {
            if (current.Count == 0)
            {
                break;
            }

            input.Clear();
            foreach (var row in current)
            {
                input.Add(new BatchRow(row.Id, row.Json, row.Deleted));
            }

            IReadOnlyList<TransformedRow> result;
            try
            {
                result = await transformer.TransformAsync(flow, schema, table, input, budget, ct).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                throw batchFailed(current.Count, ex);
            }

            if (result.Count != current.Count)
            {
                throw new InvalidOperationException($"Transformer '{transformer.Name}' returned {result.Count} results for a batch of {current.Count} rows of {schema}.{table}.");
            }

            if (onErrors is not null && HasError(result))
            {
                // A backlog hook decides for the rows the transformer threw on (retry them, skip them, stop the batch).
                result = await onErrors(transformer, current, result, ct).ConfigureAwait(false);
            }

            var next = new List<ChainRow>(current.Count);
            for (var i = 0; i < result.Count; i++)
            {
                var row = result[i];
                var before = current[i];
                if (row.Error is { } error)
                {
                    await deadLetter(before, error, ct).ConfigureAwait(false);
                    dead++;
                }
                else if (row.Written)
                {
                    next.Add(before with { Id = row.Id, Index = row.Index ?? before.Index, Json = before.Deleted ? before.Json : row.Json });
                }
            }

            counts?.Add($"{transformer.Name}@{transformer.VersionKey}", next.Count);
            current = next;
        }

        return (current, dead);
    }

    private static bool HasError(IReadOnlyList<TransformedRow> result)
    {
        for (var i = 0; i < result.Count; i++)
        {
            if (result[i].Error is not null)
            {
                return true;
            }
        }

        return false;
    }
}
