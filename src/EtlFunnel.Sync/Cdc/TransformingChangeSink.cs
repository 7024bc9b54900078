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
        var rows = new List<ChainRow>(positions.Count);
        foreach (var i in positions)
        {
            rows.Add(new ChainRow(i, items[i].Id, items[i].Index, items[i].Source ?? items[i].Row ?? EmptyObject, items[i].Source is null));
        }

        var (current, dead) = await TransformChain.RunAsync(chain, flow, table.Schema, table.Table, rows, budget, counts,
            (row, error, token) => deadLetters.WriteAsync(flow, lane, row.Index!, row.Id, null, error, row.Json, token),
            (count, ex) => new TransformBatchException(
                $"Flow '{flow}' {lane} ({table.Qualified}): a batch of {count} change(s) was not applied or acknowledged (a rerun streams it again): {ex.Message}", ex),
            ct).ConfigureAwait(false);

        foreach (var row in current)
        {
            var item = items[row.Position];
            if (string.Equals(row.Id, item.Id, StringComparison.Ordinal) && string.Equals(row.Index, item.Index, StringComparison.Ordinal)
                && !row.Deleted && item.Source is { } source && row.Json.Equals(source.AsMemory()))
            {
                // Came out as it went in (an identity transformer): the change itself, its document uncopied.
                output[row.Position] = item;
            }
            else
            {
                output[row.Position] = new ChangeItem(row.Index!, row.Id, item.Version, row.Deleted ? null : row.Json.ToArray(), table);
            }
        }

        return dead;
    }

    public ValueTask DisposeAsync() => inner.DisposeAsync();
}
