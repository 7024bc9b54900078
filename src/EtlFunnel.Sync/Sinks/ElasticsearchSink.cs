using System.Text.Json;
using System.Text.Json.Serialization;
using Elastic.Clients.Elasticsearch;
using Elastic.Clients.Elasticsearch.Core.Bulk;
using EtlFunnel.Sync.Documents;
using Polly;
using Polly.Retry;

namespace EtlFunnel.Sync.Sinks;

/// <summary>A document source that is already JSON; the client writes its bytes as they are.</summary>
[JsonConverter(typeof(RawDocumentConverter))]
internal sealed class RawDocument(ReadOnlyMemory<byte> json)
{
    public ReadOnlyMemory<byte> Json { get; } = json;
}

internal sealed class RawDocumentConverter : JsonConverter<RawDocument>
{
    public override RawDocument Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        new(JsonDocument.ParseValue(ref reader).RootElement.GetRawText() is { } text ? System.Text.Encoding.UTF8.GetBytes(text) : default);

    public override void Write(Utf8JsonWriter writer, RawDocument value, JsonSerializerOptions options) =>
        writer.WriteRawValue(value.Json.Span, skipInputValidation: true);
}

/// <summary>Raised inside the retry pipeline when some items (or the whole request) may succeed if sent again.</summary>
internal sealed class RetryableBulkException(string message) : Exception(message);

/// <summary>
/// Bulk-indexes batches through the official client. Items answered 429 or 5xx (and whole requests that fail with those
/// or with a dropped connection) are resent, and only they, with exponential backoff and jitter; other per-item failures
/// are permanent and go to the dead-letter file.
/// </summary>
internal sealed class ElasticsearchSink : IReplicaSink
{
    private readonly ElasticsearchClient _client;
    private readonly DeadLetterWriter _deadLetters;
    private readonly ResiliencePipeline _retry;
    private readonly string _flow;
    private readonly string _replica;

    public ElasticsearchSink(ElasticsearchClient client, DeadLetterWriter deadLetters, SyncOptions options, int maxInFlight, string flow, string replica)
    {
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
        var pending = batch.Items;
        long indexed = 0, dead = 0, attempts = 0;
        await _retry.ExecuteAsync(async token =>
        {
            attempts++;
            var operations = new BulkOperationsCollection();
            foreach (var item in pending)
            {
                operations.Add(new BulkIndexOperation<RawDocument>(new RawDocument(batch.Source(item))) { Index = batch.Index, Id = item.Id });
            }

            var response = await _client.BulkAsync(new BulkRequest { Operations = operations }, token).ConfigureAwait(false);
            var items = response.Items;
            if (items is null || items.Count != pending.Count)
            {
                var status = response.ApiCallDetails?.HttpStatusCode;
                var why = response.ApiCallDetails?.OriginalException?.Message ?? response.ElasticsearchServerError?.ToString() ?? "no items in response";
                if (status is null || IsRetryable(status.Value))
                {
                    throw new RetryableBulkException($"bulk request failed ({status?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "no response"}): {why}");
                }

                throw new InvalidOperationException($"Elasticsearch refused the bulk request with HTTP {status}: {why}");
            }

            var retry = new List<BatchItem>();
            var i = 0;
            foreach (var result in items)
            {
                var item = pending[i++];
                if (result.Status is >= 200 and < 300)
                {
                    indexed++;
                }
                else if (IsRetryable(result.Status))
                {
                    retry.Add(item);
                }
                else
                {
                    dead++;
                    var reason = result.Error is { } e ? $"{e.Type}: {e.Reason}" : "rejected";
                    await _deadLetters.WriteAsync(_flow, _replica, batch.Index, item.Id, result.Status, reason, batch.Source(item), token).ConfigureAwait(false);
                }
            }

            pending = retry;
            if (pending.Count > 0)
            {
                throw new RetryableBulkException($"{pending.Count} items were answered 429/5xx");
            }
        }, ct).ConfigureAwait(false);

        return new BatchOutcome(indexed, dead, attempts - 1);
    }

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

    public static ElasticsearchClient CreateClient(ElasticsearchDestination destination)
    {
        var settings = new ElasticsearchClientSettings(destination.Uri).RequestTimeout(TimeSpan.FromMinutes(2));
        if (destination.ApiKey is { } key)
        {
            settings = settings.Authentication(new Elastic.Transport.ApiKey(key));
        }
        else if (destination.Username is { } user)
        {
            settings = settings.Authentication(new Elastic.Transport.BasicAuthentication(user, destination.Password ?? ""));
        }

        return new ElasticsearchClient(settings);
    }
}
