using System.Buffers;
using System.Globalization;
using System.Text.Json;
using Elastic.Clients.Elasticsearch;
using Elastic.Transport;
using Elastic.Transport.Products.Elasticsearch;
using EtlFunnel.Destinations;
using EtlFunnel.Sync.Postgres;

namespace EtlFunnel.Sync.Cdc;

/// <summary>
/// One row change for the destination: index the source (or delete when null) under external version <see cref="Version"/> (the commit LSN).
/// <see cref="Table"/> is the source table; <see cref="Row"/>, for a delete of a table transformers apply to, is what the delete carried
/// (the key columns, or the old row under REPLICA IDENTITY FULL) as the transformer's row view.
/// </summary>
internal readonly record struct ChangeItem(string Index, string Id, long Version, byte[]? Source, CdcTable? Table = null, byte[]? Row = null);

/// <summary>What the destination confirmed for a batch of changes.</summary>
internal readonly record struct ChangeOutcome(long Applied, long Conflicts, long DeadLettered, long Retries);

/// <summary>Where one lane writes its changes; a write returns once every change of it is confirmed or dead-lettered.</summary>
internal interface IChangeSink : IAsyncDisposable
{
    Task<ChangeOutcome> WriteAsync(IReadOnlyList<ChangeItem> items, CancellationToken ct);
}

/// <summary>The bulk NDJSON of changes: <c>index</c> or <c>delete</c> action lines with <c>version</c> and <c>version_type</c>, as both sinks write them.</summary>
internal static class ChangeBulk
{
    private static readonly JsonWriterOptions Options = new() { Encoder = JsonRowWriter.Encoder, SkipValidation = true };

    public static void Write(IBufferWriter<byte> output, IReadOnlyList<ChangeItem> items)
    {
        using var json = new Utf8JsonWriter(output, Options);
        foreach (var item in items)
        {
            json.Reset(output);
            json.WriteStartObject();
            json.WriteStartObject(item.Source is null ? "delete" : "index");
            json.WriteString("_index", item.Index);
            json.WriteString("_id", item.Id);
            json.WriteNumber("version", item.Version);
            json.WriteString("version_type", DocumentBatch.ExternalVersionType);
            json.WriteEndObject();
            json.WriteEndObject();
            json.Flush();
            output.Write("\n"u8);
            if (item.Source is { } source)
            {
                output.Write(source);
                output.Write("\n"u8);
            }
        }
    }
}

/// <summary>
/// Changes as bulk requests through the official client's transport. 2xx, 409 (the document already has this version or a newer
/// one) and 404 of a delete (nothing to delete) are success; 429/5xx items are sent again (a change superseded later in the same
/// batch is not), other failures are dead-lettered.
/// </summary>
internal sealed class ElasticsearchChangeSink(ElasticsearchClient client, DeadLetterWriter deadLetters, SyncOptions options, string flow, string lane) : IChangeSink
{
    private static readonly RequestConfiguration BulkConfiguration = new() { ContentType = "application/x-ndjson" };
    private static readonly EndpointPath BulkPath = new(Elastic.Transport.HttpMethod.POST, "/_bulk");
    private readonly ArrayBufferWriter<byte> _body = new(1 << 16);
    private readonly ArrayBufferWriter<byte> _response = new(1 << 16);
    private readonly List<(int Status, string? Error)> _results = [];

    public async Task<ChangeOutcome> WriteAsync(IReadOnlyList<ChangeItem> items, CancellationToken ct)
    {
        long applied = 0, conflicts = 0, dead = 0, retries = 0;
        IReadOnlyList<ChangeItem> pending = items;
        for (var attempt = 0; ; attempt++)
        {
            _body.ResetWrittenCount();
            ChangeBulk.Write(_body, pending);
            var sent = await SendAsync(pending.Count, ct).ConfigureAwait(false);
            List<ChangeItem>? again = null;
            if (!sent)
            {
                again = [.. pending];
            }
            else
            {
                for (var i = 0; i < _results.Count; i++)
                {
                    var (status, error) = _results[i];
                    var item = pending[i];
                    if (status is >= 200 and < 300 || (status == 404 && item.Source is null))
                    {
                        applied++;
                    }
                    else if (status == 409)
                    {
                        applied++;
                        conflicts++;
                    }
                    else if (status is 429 or 408 or >= 500)
                    {
                        // Resending an older change of a document after a newer one of the same transaction succeeded would undo it.
                        if (!SupersededLater(pending, i))
                        {
                            (again ??= []).Add(item);
                        }
                        else
                        {
                            applied++;
                        }
                    }
                    else
                    {
                        dead++;
                        await deadLetters.WriteAsync(flow, lane, item.Index, item.Id, status, error ?? "rejected", item.Source ?? "{}"u8.ToArray(), ct).ConfigureAwait(false);
                    }
                }
            }

            if (again is null)
            {
                return new ChangeOutcome(applied, conflicts, dead, retries);
            }

            if (attempt >= options.MaxBulkRetries)
            {
                throw new InvalidOperationException($"Elasticsearch did not accept {again.Count} change(s) after {attempt + 1} attempts (429/5xx or no response); the slot is not acknowledged past them, so a rerun sends them again.");
            }

            retries++;
            pending = again;
            var delay = options.RetryBaseDelay * Math.Pow(2, Math.Min(attempt, 6));
            await Task.Delay(delay > TimeSpan.FromSeconds(30) ? TimeSpan.FromSeconds(30) : delay, options.TimeProvider, ct).ConfigureAwait(false);
        }
    }

    private static bool SupersededLater(IReadOnlyList<ChangeItem> items, int i)
    {
        for (var j = i + 1; j < items.Count; j++)
        {
            if (items[j].Id == items[i].Id && items[j].Index == items[i].Index)
            {
                return true;
            }
        }

        return false;
    }

    // True with _results filled; false when the whole request should be sent again.
    private async Task<bool> SendAsync(int expected, CancellationToken ct)
    {
        using var response = await client.Transport.RequestAsync<ElasticsearchStreamResponse>(
            BulkPath, PostData.ReadOnlyMemory(_body.WrittenMemory), null, BulkConfiguration, ct).ConfigureAwait(false);
        // A cancelled request comes back without a status: stop, rather than count it as a retry.
        ct.ThrowIfCancellationRequested();
        var status = response.ApiCallDetails.HttpStatusCode;
        if (status != 200 || response.Body is null)
        {
            if (status is null or 429 or 408 or >= 500)
            {
                return false;
            }

            throw new InvalidOperationException($"Elasticsearch refused a bulk request of changes with HTTP {status.Value.ToString(CultureInfo.InvariantCulture)}: " +
                (response.ElasticsearchServerError?.ToString() ?? response.ApiCallDetails.OriginalException?.Message ?? "no details"));
        }

        _response.ResetWrittenCount();
        int read;
        while ((read = await response.Body.ReadAsync(_response.GetMemory(1 << 16), ct).ConfigureAwait(false)) > 0)
        {
            _response.Advance(read);
        }

        _results.Clear();
        BulkResponseReader.Read(_response.WrittenSpan, _results);
        if (_results.Count != expected)
        {
            throw new InvalidOperationException($"Elasticsearch answered a bulk request of {expected} changes with {_results.Count} items.");
        }

        return true;
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}

/// <summary>
/// Changes appended to <c>&lt;dir&gt;/&lt;index&gt;/&lt;flow&gt;.cdc-&lt;lane&gt;.ndjson</c>, the same versioned actions the
/// Elasticsearch sink sends (loading the files in order of their lines gives the same index; replays after a crash are repeated lines).
/// </summary>
internal sealed class FilesChangeSink(string directory, string flow, int lane) : IChangeSink
{
    private readonly Dictionary<string, FileStream> _files = new(StringComparer.Ordinal);
    private readonly ArrayBufferWriter<byte> _out = new(1 << 16);
    private readonly List<ChangeItem> _group = [];

    public static string PathOf(string directory, string index, string flow, int lane) =>
        Path.Combine(directory, State.StateStore.SafeName(index), $"{State.StateStore.SafeName(flow)}.cdc-{lane}.ndjson");

    public async Task<ChangeOutcome> WriteAsync(IReadOnlyList<ChangeItem> items, CancellationToken ct)
    {
        foreach (var index in items.Select(i => i.Index).Distinct(StringComparer.Ordinal))
        {
            _group.Clear();
            _group.AddRange(items.Where(i => i.Index == index));
            _out.ResetWrittenCount();
            ChangeBulk.Write(_out, _group);
            if (!_files.TryGetValue(index, out var stream))
            {
                var path = PathOf(directory, index, flow, lane);
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                stream = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read, 1 << 16, FileOptions.Asynchronous);
                _files[index] = stream;
            }

            await stream.WriteAsync(_out.WrittenMemory, ct).ConfigureAwait(false);
            // Into the OS page cache before the change counts as confirmed: survives kill -9 (not a power cut).
            await stream.FlushAsync(ct).ConfigureAwait(false);
        }

        return new ChangeOutcome(items.Count, 0, 0, 0);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var stream in _files.Values)
        {
            await stream.DisposeAsync().ConfigureAwait(false);
        }
    }
}
