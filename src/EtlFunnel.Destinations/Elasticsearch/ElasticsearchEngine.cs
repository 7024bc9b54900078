using System.Diagnostics;
using Elastic.Clients.Elasticsearch;
using EtlFunnel.Execution.Models;

namespace EtlFunnel.Destinations;

/// <summary>One Elasticsearch cluster as a flow sees it: index stats fetched once (all indices in one call) and a measured ping.</summary>
internal sealed class ElasticsearchCluster
{
    private const int RoundTrips = 3;
    private static readonly TimeSpan DiscoveryTimeout = TimeSpan.FromSeconds(10);
    private readonly ElasticsearchClient _client;
    private readonly Once<IReadOnlyDictionary<string, (long Docs, long Bytes)>> _indices;
    private readonly Once<ConnectionStats> _measured;

    public ElasticsearchCluster(string url, bool compression = true)
        : this(url, new ElasticsearchDestination(new Uri(url)) { Compression = compression })
    {
    }

    /// <summary>Discovery of <paramref name="destination"/> through the process's shared client (the sink's, with the same credentials and TLS).</summary>
    public ElasticsearchCluster(string url, ElasticsearchDestination destination)
    {
        Url = url;
        _client = ElasticsearchClients.For(destination);
        _indices = new(LoadIndicesAsync);
        _measured = new(MeasureOnceAsync);
    }

    public string Url { get; }

    /// <summary>Docs and store bytes of the given indices; an unreachable cluster or a missing index counts as empty.</summary>
    public async Task<TableStats> StatsAsync(IReadOnlyCollection<string> indices, CancellationToken cancellationToken)
    {
        var all = await _indices.GetAsync(cancellationToken).ConfigureAwait(false);
        long docs = 0, bytes = 0;
        var existing = 0;
        foreach (var index in indices)
        {
            if (all.TryGetValue(index, out var s))
            {
                docs += s.Docs;
                bytes += s.Bytes;
                existing++;
            }
        }

        return new TableStats { TotalRows = docs, TotalBytes = bytes, TableCount = existing, RowsAreExact = true };
    }

    public Task<ConnectionStats> MeasureAsync(CancellationToken cancellationToken) => _measured.GetAsync(cancellationToken);

    private async Task<ConnectionStats> MeasureOnceAsync(CancellationToken cancellationToken)
    {
        var samples = new TimeSpan[RoundTrips];
        for (var i = 0; i < RoundTrips; i++)
        {
            var start = Stopwatch.GetTimestamp();
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(DiscoveryTimeout);
            PingResponse response;
            try
            {
                response = await _client.PingAsync(timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new InvalidOperationException($"Elasticsearch at {Url} did not answer a ping within {DiscoveryTimeout.TotalSeconds:0}s; start the cluster or fix the destination URL.");
            }

            samples[i] = Stopwatch.GetElapsedTime(start);
            if (!response.IsValidResponse)
            {
                throw new InvalidOperationException(
                    $"Elasticsearch at {Url} did not answer a ping ({response.ElasticsearchServerError?.ToString() ?? response.DebugInformation.Split('\n')[0]}); " +
                    "start the cluster or fix the destination URL, or make the hook not call MeasureConnection on DestDBConn.",
                    response.ApiCallDetails.OriginalException);
            }
        }

        Array.Sort(samples);
        return new ConnectionStats { RoundTripLatency = samples[RoundTrips / 2] };
    }

    private async Task<IReadOnlyDictionary<string, (long Docs, long Bytes)>> LoadIndicesAsync(CancellationToken cancellationToken)
    {
        var result = new Dictionary<string, (long, long)>(StringComparer.Ordinal);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(DiscoveryTimeout);
        Elastic.Clients.Elasticsearch.IndexManagement.IndicesStatsResponse response;
        try
        {
            response = await _client.Indices.StatsAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return result; // a cluster that does not answer in time counts as empty, like an unreachable one
        }

        if (response.IsValidResponse && response.Indices is { } indices)
        {
            foreach (var (name, stats) in indices)
            {
                result[name] = (stats.Primaries?.Docs?.Count ?? 0, stats.Total?.Store?.SizeInBytes ?? 0);
            }
        }

        return result;
    }
}

/// <summary>An Elasticsearch <see cref="IDatabaseEngine"/> scoped to the target indices of one entity.</summary>
internal sealed class ElasticsearchEngine : IDatabaseEngine
{
    private readonly ElasticsearchCluster _cluster;
    private readonly IReadOnlyCollection<string> _indices;

    public ElasticsearchEngine(ElasticsearchCluster cluster, IReadOnlyCollection<string> indices)
    {
        _cluster = cluster;
        _indices = indices;
    }

    public string Kind => "elasticsearch";

    public string Name => _cluster.Url;

    public TableStats GetTableStats() => GetTableStatsAsync().GetAwaiter().GetResult();

    public Task<TableStats> GetTableStatsAsync(CancellationToken cancellationToken = default) => _cluster.StatsAsync(_indices, cancellationToken);

    public ConnectionStats MeasureConnection() => MeasureConnectionAsync().GetAwaiter().GetResult();

    public Task<ConnectionStats> MeasureConnectionAsync(CancellationToken cancellationToken = default) => _cluster.MeasureAsync(cancellationToken);
}
