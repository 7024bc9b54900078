using System.Buffers;
using System.Collections.Concurrent;
using System.Globalization;
using Elastic.Clients.Elasticsearch;
using Elastic.Transport;
using Elastic.Transport.Products.Elasticsearch;
using Polly;
using Polly.Retry;

namespace EtlFunnel.Destinations;

/// <summary>Raised inside the retry pipeline when some items (or the whole request) may succeed if sent again.</summary>
internal sealed class RetryableBulkException(string message) : Exception(message);

/// <summary>HTTP 413: the bulk body is over the cluster's <c>http.max_content_length</c>; the batch is split.</summary>
internal sealed class BulkTooLargeException(string message) : Exception(message);

/// <summary>
/// Bulk-indexes batches through the official client. Items answered 429 or 5xx (and whole requests that fail with those
/// or with a dropped connection) are resent, and only they, with exponential backoff and jitter; other per-item failures
/// are permanent and go to the dead-letter file.
/// </summary>
internal sealed class ElasticsearchSink : IReplicaSink
{
    // The client sends bulk bodies with this content type too; Accept stays the client's compatible-with media type.
    private static readonly RequestConfiguration BulkConfiguration = new() { ContentType = "application/x-ndjson" };
    private readonly ElasticsearchClient _client;
    private readonly DeadLetterWriter _deadLetters;
    private readonly ResiliencePipeline _retry;
    private readonly string _flow;
    private readonly string _replica;
    // One set per request in flight (at most MaxInFlight), reused for the replica's whole run.
    private readonly ConcurrentBag<BulkBuffers> _buffers = [];
    private string? _bulkPath;
    // The index name dead letters carry: the configured one (the alias), not the physical index a full run writes.
    private readonly string? _deadLetterIndex;

    public ElasticsearchSink(ElasticsearchClient client, DeadLetterWriter deadLetters, BulkRetryOptions options, int maxInFlight, string flow, string replica, string? deadLetterIndex = null)
    {
        _deadLetterIndex = deadLetterIndex;
        _client = client;
        _deadLetters = deadLetters;
        _flow = flow;
        _replica = replica;
        MaxInFlight = maxInFlight;
        _retry = new ResiliencePipelineBuilder { TimeProvider = options.TimeProvider }
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = new PredicateBuilder().Handle<RetryableBulkException>(),
                MaxRetryAttempts = options.MaxBulkRetries,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = options.RetryBaseDelay,
                MaxDelay = TimeSpan.FromSeconds(30),
            })
            .Build();
    }

    public int MaxInFlight { get; }

    public Task OpenAsync(long? position, bool append, CancellationToken ct) => Task.CompletedTask;

    public Task<long> FlushAsync(CancellationToken ct) => Task.FromResult(0L);

    public Task RewindAsync(long position, CancellationToken ct) => Task.CompletedTask;

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    public async Task<BatchOutcome> WriteAsync(DocumentBatch batch, CancellationToken ct)
    {
        IReadOnlyList<BatchItem> pending = batch.Items;
        long indexed = 0, dead = 0, attempts = 0;
        var buffers = RentBuffers();
        try
        {
            (pending, dead) = await DeadLetterOverlongIdsAsync(batch, pending, ct).ConfigureAwait(false);
            await _retry.ExecuteAsync(async token =>
            {
                attempts++;
                if (pending.Count == 0)
                {
                    return;
                }

                var results = await SendSplittingAsync(batch, buffers, pending, token).ConfigureAwait(false);

                List<BatchItem>? retry = null;
                for (var i = 0; i < results.Count; i++)
                {
                    var (status, error) = results[i];
                    var item = pending[i];
                    if (status is >= 200 and < 300 || (status == 409 && batch.Version is not null))
                    {
                        // A versioned write answered 409 met a newer (or the same) version: the document is already as new as this one.
                        indexed++;
                    }
                    else if (IsRetryable(status))
                    {
                        (retry ??= []).Add(item);
                    }
                    else
                    {
                        dead++;
                        await _deadLetters.WriteAsync(_flow, _replica, _deadLetterIndex ?? batch.Index, item.Id, status, error ?? "rejected", batch.Source(item), token).ConfigureAwait(false);
                    }
                }

                if (retry is not null)
                {
                    pending = retry;
                    throw new RetryableBulkException($"{retry.Count} items were answered 429/5xx");
                }
            }, ct).ConfigureAwait(false);
        }
        finally
        {
            _buffers.Add(buffers);
        }

        return new BatchOutcome(indexed, dead, attempts - 1);
    }

    /// <summary>
    /// Sends one bulk body through the client's transport (its node pool, authentication, compression, product check and
    /// compatibility headers) and returns each item's status and, for failures, <c>type: reason</c>.
    /// </summary>
    private async Task<List<(int Status, string? Error)>> SendAsync(string index, BulkBuffers buffers, int expected, CancellationToken ct)
    {
        var path = new EndpointPath(Elastic.Transport.HttpMethod.POST, _bulkPath ??= $"/{Uri.EscapeDataString(index)}/_bulk");
        using var response = await _client.Transport.RequestAsync<ElasticsearchStreamResponse>(
            path, PostData.ReadOnlyMemory(buffers.Body.WrittenMemory), null, BulkConfiguration, ct).ConfigureAwait(false);
        var details = response.ApiCallDetails;
        var status = details.HttpStatusCode;
        if (status != 200 || response.Body is null)
        {
            var why = details.OriginalException?.Message ?? response.ElasticsearchServerError?.ToString() ?? "no response body";
            if (status == 413)
            {
                throw new BulkTooLargeException($"HTTP 413 for a bulk body of {buffers.Body.WrittenCount} bytes");
            }

            if (status is null || IsRetryable(status.Value))
            {
                throw new RetryableBulkException($"bulk request failed ({status?.ToString(CultureInfo.InvariantCulture) ?? "no response"}): {why}");
            }

            throw new InvalidOperationException($"Elasticsearch refused the bulk request with HTTP {status}: {why}");
        }

        var received = buffers.Response;
        received.ResetWrittenCount();
        int read;
        while ((read = await response.Body.ReadAsync(received.GetMemory(1 << 16), ct).ConfigureAwait(false)) > 0)
        {
            received.Advance(read);
        }

        buffers.Results.Clear();
        BulkResponseReader.Read(received.WrittenSpan, buffers.Results);
        if (buffers.Results.Count != expected)
        {
            throw new InvalidOperationException(
                $"Elasticsearch answered the bulk request of {expected} documents with {buffers.Results.Count} items; the response cannot be matched to the documents.");
        }

        return buffers.Results;
    }

    /// <summary>Elasticsearch's limit on <c>_id</c> (UTF-8 bytes); a longer one fails the whole bulk request with a validation error.</summary>
    public const int MaxIdBytes = 512;

    /// <summary>
    /// Dead-letters the documents whose <c>_id</c> Elasticsearch would refuse (over <see cref="MaxIdBytes"/> UTF-8 bytes) before
    /// sending: a real cluster fails the whole bulk for one such id, and a retry would fail it again, forever.
    /// </summary>
    private async Task<(IReadOnlyList<BatchItem> Pending, long Dead)> DeadLetterOverlongIdsAsync(DocumentBatch batch, IReadOnlyList<BatchItem> items, CancellationToken ct)
    {
        List<BatchItem>? kept = null;
        for (var i = 0; i < items.Count; i++)
        {
            var bytes = System.Text.Encoding.UTF8.GetByteCount(items[i].Id);
            if (bytes <= MaxIdBytes)
            {
                kept?.Add(items[i]);
                continue;
            }

            kept ??= [.. items.Take(i)];
            await _deadLetters.WriteAsync(_flow, _replica, _deadLetterIndex ?? batch.Index, items[i].Id, 400,
                $"action_request_validation_exception: id is too long, must be no longer than {MaxIdBytes} bytes but was: {bytes} (not sent; shorten the key or index it under another id)",
                batch.Source(items[i]), ct).ConfigureAwait(false);
        }

        return kept is null ? (items, 0) : (kept, items.Count - kept.Count);
    }

    /// <summary>
    /// Sends <paramref name="items"/>; on HTTP 413 (over <c>http.max_content_length</c>) sends each half on its own, down to
    /// single documents, and answers a single document that is still too large with status 413 (dead-lettered).
    /// </summary>
    private async Task<List<(int Status, string? Error)>> SendSplittingAsync(DocumentBatch batch, BulkBuffers buffers, IReadOnlyList<BatchItem> items, CancellationToken ct)
    {
        buffers.Body.ResetWrittenCount();
        batch.WriteBulk(buffers.Body, items);
        try
        {
            return await SendAsync(batch.Index, buffers, items.Count, ct).ConfigureAwait(false);
        }
        catch (BulkTooLargeException e) when (items.Count == 1)
        {
            return [(413, $"request_entity_too_large: the document alone is over the cluster's http.max_content_length ({e.Message})")];
        }
        catch (BulkTooLargeException)
        {
            var half = items.Count / 2;
            // The results list of the buffers is reused by the next send: copy the first half's.
            List<(int Status, string? Error)> first = [.. await SendSplittingAsync(batch, buffers, [.. items.Take(half)], ct).ConfigureAwait(false)];
            first.AddRange(await SendSplittingAsync(batch, buffers, [.. items.Skip(half)], ct).ConfigureAwait(false));
            return first;
        }
    }

    private BulkBuffers RentBuffers() => _buffers.TryTake(out var buffers) ? buffers : new BulkBuffers();

    private static bool IsRetryable(int status) => status is 429 or 408 or >= 500;

    /// <summary>Creates the index unless it exists.</summary>
    public static async Task EnsureIndexAsync(ElasticsearchClient client, string index, CancellationToken ct)
    {
        var exists = await client.Indices.ExistsAsync(index, ct).ConfigureAwait(false);
        if (exists.Exists)
        {
            return;
        }

        var created = await client.Indices.CreateAsync(index, ct).ConfigureAwait(false);
        if (!created.IsValidResponse && created.ElasticsearchServerError?.Error?.Type != "resource_already_exists_exception")
        {
            throw new InvalidOperationException(
                $"Could not create Elasticsearch index '{index}': {created.ElasticsearchServerError?.Error?.Reason ?? created.ApiCallDetails?.OriginalException?.Message ?? "unknown error"}.");
        }
    }

    /// <summary>The process's long-lived client for the destination (see <see cref="ElasticsearchClients"/>).</summary>
    public static ElasticsearchClient CreateClient(ElasticsearchDestination destination) => ElasticsearchClients.For(destination);
}

/// <summary>The reusable memory of one bulk request: its body, the raw response and the parsed item results.</summary>
internal sealed class BulkBuffers
{
    public ArrayBufferWriter<byte> Body { get; } = new(1 << 16);

    public ArrayBufferWriter<byte> Response { get; } = new(1 << 16);

    public List<(int Status, string? Error)> Results { get; } = [];
}
