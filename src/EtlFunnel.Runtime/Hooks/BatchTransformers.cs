using EtlFunnel.Scripting;
using EtlFunnel.Scripting.Transforming;
using EtlFunnel.Sync.Transforming;

namespace EtlFunnel.Runtime.Hooks;

/// <summary>
/// The hook host's transformers as the sync engine's <see cref="IBatchTransformer"/>s. Each adapter looks its
/// transformer up by file name on every batch, so a hot reload applies from the next batch on (and the batch is counted
/// under the version that ran it).
/// </summary>
public static class BatchTransformers
{
    /// <summary>One adapter per transformer file loaded now, in file-name order.</summary>
    public static IReadOnlyList<IBatchTransformer> From(HookHost host)
    {
        ArgumentNullException.ThrowIfNull(host);
        return host.Transformers.Select(t => (IBatchTransformer)new HostTransformer(host, t.Name)).ToList();
    }

    private sealed class HostTransformer(HookHost host, string name) : IBatchTransformer
    {
        private string lastVersion = "";

        public string Name => name;

        public string VersionKey => Volatile.Read(ref lastVersion) is { Length: > 0 } v ? v : Current()?.VersionKey ?? "";

        public bool AppliesTo(string flow, string schema, string table) => Current()?.Matches(new TransformTarget(flow, schema, table)) ?? false;

        public async Task<IReadOnlyList<TransformedRow>> TransformAsync(string flow, string schema, string table, IReadOnlyList<BatchRow> rows, TimeSpan budget, CancellationToken ct)
        {
            var transformer = Current() ?? throw new InvalidOperationException($"transformer '{name}' was removed from the hooks folder during the run");
            if (transformer is IFrameTransformer frames)
            {
                return await TransformFramesAsync(transformer, frames, new TransformTarget(flow, schema, table), rows, budget, ct).ConfigureAwait(false);
            }

            var input = rows.Select(r => new SourceDocument(r.Id, r.Deleted ? EtlFunnel.Execution.Models.RowOperation.Delete : EtlFunnel.Execution.Models.RowOperation.Upsert, r.Json.ToArray())).ToList();
            var output = await transformer.TransformAsync(new TransformTarget(flow, schema, table), input, budget, ct).ConfigureAwait(false);
            Volatile.Write(ref lastVersion, transformer.VersionKey);
            return output.Select(d => d.Outcome switch
            {
                TransformOutcome.Written => new TransformedRow(true, d.Id, d.Index, d.Json, null),
                TransformOutcome.Skipped => new TransformedRow(false, d.Id, d.Index, ReadOnlyMemory<byte>.Empty, null),
                _ => new TransformedRow(false, d.Id, null, ReadOnlyMemory<byte>.Empty, d.Error),
            }).ToList();
        }

        // The batch in one buffer each way; a document the transformer did not edit is the input's own memory, not a copy.
        private async Task<IReadOnlyList<TransformedRow>> TransformFramesAsync(IDataTransformer transformer, IFrameTransformer frames, TransformTarget target,
            IReadOnlyList<BatchRow> rows, TimeSpan budget, CancellationToken ct)
        {
            var bytes = 0;
            for (var i = 0; i < rows.Count; i++)
            {
                bytes += rows[i].Json.Length + (rows[i].Id.Length * 3) + 9;
            }

            TransformReply reply;
            using (var request = new TransformRequest(bytes))
            {
                for (var i = 0; i < rows.Count; i++)
                {
                    var row = rows[i];
                    request.Add(row.Id, row.Deleted ? EtlFunnel.Execution.Models.RowOperation.Delete : EtlFunnel.Execution.Models.RowOperation.Upsert, row.Json.Span);
                }

                reply = await frames.TransformFramesAsync(target, request, budget, ct).ConfigureAwait(false);
            }

            Volatile.Write(ref lastVersion, transformer.VersionKey);
            var results = new TransformedRow[rows.Count];
            for (var i = 0; i < results.Length; i++)
            {
                var row = rows[i];
                results[i] = reply.Outcome(i) switch
                {
                    TransformOutcome.Written => new TransformedRow(true, reply.NewId(i) ?? row.Id, reply.Index(i),
                        row.Deleted ? ReadOnlyMemory<byte>.Empty : reply.IsUnchanged(i) ? row.Json : reply.Json(i), null),
                    TransformOutcome.Skipped => new TransformedRow(false, reply.NewId(i) ?? row.Id, reply.Index(i), ReadOnlyMemory<byte>.Empty, null),
                    _ => new TransformedRow(false, row.Id, null, ReadOnlyMemory<byte>.Empty, reply.Error(i)),
                };
            }

            return results;
        }

        private IDataTransformer? Current() => host.Transformers.FirstOrDefault(t => t.Name == name);
    }
}
