using EtlFunnel.Destinations;
using EtlFunnel.Sync.Transforming;

namespace EtlFunnel.Sync.Cdc;

/// <summary>
/// Runs the transformers of a lane's batch of changes before its sink: per table of the batch, one call per transformer (never
/// per row), inserts/updates as upserts and deletes as <c>RowOperation.Delete</c>. What the transformer writes decides where each
/// change goes: an upsert is indexed under the <c>_id</c>/index it wrote, a delete is sent to the <c>_id</c>/index it wrote for the
/// delete, a skipped change (upsert or delete) is not sent. Versions (commit LSN) and the batch's order are kept. A change the
/// transformer threw on is dead-lettered with the hook's <c>file(line,col)</c> and message, the others are applied; a transformer
/// that fails the whole batch (time budget, removed file) fails the lane, so nothing of the batch is confirmed or acknowledged.
/// </summary>
internal sealed class TransformingChangeSink(IChangeSink inner, IReadOnlyDictionary<CdcTable, IReadOnlyList<IBatchTransformer>> transformers,
    DeadLetterWriter deadLetters, string flow, string lane, TimeSpan budget, TransformerCounts? counts) : IChangeSink
{
    private static readonly byte[] EmptyObject = "{}"u8.ToArray();

    public async Task<ChangeOutcome> WriteAsync(IReadOnlyList<ChangeItem> items, CancellationToken ct)
    {
        // The change that goes out for each item, in the batch's order; null when it was skipped or dead-lettered.
        var output = new ChangeItem?[items.Count];
        var byTable = new Dictionary<CdcTable, List<int>>();
        for (var i = 0; i < items.Count; i++)
        {
            if (items[i].Table is { } table && transformers.ContainsKey(table))
            {
                if (!byTable.TryGetValue(table, out var list))
                {
                    byTable[table] = list = [];
                }

                list.Add(i);
            }
            else
            {
                output[i] = items[i];
            }
        }

        long dead = 0;
        foreach (var (table, positions) in byTable)
        {
            dead += await TransformAsync(table, transformers[table], items, positions, output, ct).ConfigureAwait(false);
        }

        if (dead > 0)
        {
            await deadLetters.FlushAsync(CancellationToken.None).ConfigureAwait(false);
        }

        var send = new List<ChangeItem>(items.Count);
        foreach (var item in output)
        {
            if (item is { } change)
            {
                send.Add(change);
            }
        }

        if (send.Count == 0)
        {
            return new ChangeOutcome(0, 0, dead, 0);
        }

        var outcome = await inner.WriteAsync(send, ct).ConfigureAwait(false);
        return outcome with { DeadLettered = outcome.DeadLettered + dead };
    }

    // Runs the table's transformers in order over its changes of the batch; returns how many were dead-lettered.
    private async Task<long> TransformAsync(CdcTable table, IReadOnlyList<IBatchTransformer> chain, IReadOnlyList<ChangeItem> items, List<int> positions,
        ChangeItem?[] output, CancellationToken ct)
    {
        // (position in the batch, id, index, JSON the next transformer sees, deleted)
        var current = positions.Select(i => (Position: i, items[i].Id, Index: items[i].Index, Json: (ReadOnlyMemory<byte>)(items[i].Source ?? items[i].Row ?? EmptyObject), Deleted: items[i].Source is null)).ToList();
        long dead = 0;
        foreach (var transformer in chain)
        {
            if (current.Count == 0)
            {
                break;
            }

            IReadOnlyList<TransformedRow> result;
            try
            {
                result = await transformer.TransformAsync(flow, table.Schema, table.Table, current.Select(r => new BatchRow(r.Id, r.Json, r.Deleted)).ToList(), budget, ct).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                throw new TransformBatchException(
                    $"Flow '{flow}' {lane} ({table.Qualified}): a batch of {current.Count} change(s) was not applied or acknowledged (a rerun streams it again): {ex.Message}", ex);
            }

            if (result.Count != current.Count)
            {
                throw new InvalidOperationException($"Transformer '{transformer.Name}' returned {result.Count} results for a batch of {current.Count} changes of {table.Qualified}.");
            }

            var next = new List<(int Position, string Id, string Index, ReadOnlyMemory<byte> Json, bool Deleted)>(current.Count);
            for (var i = 0; i < result.Count; i++)
            {
                var row = result[i];
                var input = current[i];
                if (row.Error is { } error)
                {
                    await deadLetters.WriteAsync(flow, lane, input.Index, input.Id, null, error, input.Json, ct).ConfigureAwait(false);
                    dead++;
                }
                else if (row.Written)
                {
                    // A delete keeps the row it carried for the next transformer; an upsert goes on as the document written.
                    next.Add((input.Position, row.Id, row.Index ?? input.Index, input.Deleted ? input.Json : row.Json, input.Deleted));
                }
            }

            counts?.Add($"{transformer.Name}@{transformer.VersionKey}", next.Count);
            current = next;
        }

        foreach (var row in current)
        {
            output[row.Position] = new ChangeItem(row.Index, row.Id, items[row.Position].Version, row.Deleted ? null : row.Json.ToArray(), table);
        }

        return dead;
    }

    public ValueTask DisposeAsync() => inner.DisposeAsync();
}
