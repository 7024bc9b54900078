using System.Text.Json;
using Elastic.Clients.Elasticsearch;
using Elastic.Transport;

namespace EtlFunnel.Testing.Elasticsearch;

/// <summary>
/// The Elasticsearch a test talks to: the real cluster named by <c>ETLFUNNEL_TEST_ES</c>, or else a fresh in-process
/// <see cref="ElasticsearchTestServer"/>. Inspection goes through the official client, so it works against both.
/// </summary>
public sealed class ElasticsearchEndpoint : IAsyncDisposable
{
    /// <summary>The environment variable that names a real cluster, e.g. <c>http://localhost:9200</c> or <c>https://elastic:secret@host:9200</c>.</summary>
    public const string EnvironmentVariable = "ETLFUNNEL_TEST_ES";

    /// <summary>Optional API key (the encoded form) used with <see cref="EnvironmentVariable"/>.</summary>
    public const string ApiKeyEnvironmentVariable = "ETLFUNNEL_TEST_ES_API_KEY";

    private ElasticsearchEndpoint(Uri uri, ElasticsearchClient client, ElasticsearchTestServer? server)
    {
        Uri = uri;
        Client = client;
        Server = server;
    }

    /// <summary>Base address of the cluster.</summary>
    public Uri Uri { get; }

    /// <summary>An official client for the cluster.</summary>
    public ElasticsearchClient Client { get; }

    /// <summary>The in-process server, or null when the tests run against a real cluster.</summary>
    public ElasticsearchTestServer? Server { get; }

    /// <summary>True when <c>ETLFUNNEL_TEST_ES</c> pointed the tests at a real cluster.</summary>
    public bool IsRealCluster => Server is null;

    /// <summary>Fault injection; only the in-process server has it.</summary>
    public ElasticsearchFaults Faults => Server?.Faults ?? throw new InvalidOperationException(
        $"Fault injection needs the in-process Elasticsearch test server, but {EnvironmentVariable} points the tests at a real cluster ({Uri}). Unset {EnvironmentVariable} to run this test.");

    /// <summary>The real cluster from <c>ETLFUNNEL_TEST_ES</c> when set, else a freshly started test server.</summary>
    public static async Task<ElasticsearchEndpoint> FromEnvironmentOrStartAsync(ElasticsearchTestServerOptions? options = null, CancellationToken cancellationToken = default)
    {
        var configured = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (string.IsNullOrWhiteSpace(configured))
        {
            var server = await ElasticsearchTestServer.StartAsync(options, cancellationToken).ConfigureAwait(false);
            return new ElasticsearchEndpoint(server.Uri, server.CreateClient(), server);
        }

        return await ConnectAsync(configured, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Connects to an existing cluster at <paramref name="url"/> (credentials may ride in the URL as <c>user:password@</c>)
    /// and checks that it answers as Elasticsearch.
    /// </summary>
    public static async Task<ElasticsearchEndpoint> ConnectAsync(string url, CancellationToken cancellationToken = default)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
        {
            throw new InvalidOperationException(
                $"'{url}' (from {EnvironmentVariable}) is not an http(s) URL. Set it like http://localhost:9200 (credentials as https://user:password@host:9200), or unset it to use the in-process test server.");
        }

        var address = new UriBuilder(uri) { UserName = "", Password = "", Query = "", Fragment = "" }.Uri;
        var settings = new ElasticsearchClientSettings(address);
        if (uri.UserInfo.Length > 0)
        {
            var parts = uri.UserInfo.Split(':', 2);
            settings.Authentication(new BasicAuthentication(Uri.UnescapeDataString(parts[0]), parts.Length > 1 ? Uri.UnescapeDataString(parts[1]) : ""));
        }
        else if (Environment.GetEnvironmentVariable(ApiKeyEnvironmentVariable) is { Length: > 0 } apiKey)
        {
            settings.Authentication(new ApiKey(apiKey));
        }

        if (uri.Scheme == "https")
        {
            // A throwaway test cluster usually runs on its own self-signed certificate.
            settings.ServerCertificateValidationCallback(CertificateValidations.AllowAll);
        }

        var client = new ElasticsearchClient(settings);
        string? failure;
        try
        {
            var info = await client.InfoAsync(cancellationToken).ConfigureAwait(false);
            failure = info.IsValidResponse ? null : info.DebugInformation.Split('\n')[0];
        }
        catch (UnsupportedProductException e)
        {
            failure = e.Message;
        }

        if (failure is not null)
        {
            throw new InvalidOperationException(
                $"{address} ({EnvironmentVariable}) does not answer as Elasticsearch: {failure} Start the cluster, fix the URL or credentials, or unset {EnvironmentVariable}.");
        }

        return new ElasticsearchEndpoint(address, client, null);
    }

    /// <summary>A fresh lower-case index name, so tests sharing a real cluster never collide.</summary>
    public static string UniqueIndexName(string prefix) => $"{prefix.ToLowerInvariant()}-{Guid.NewGuid():N}";

    /// <summary>Refreshes the index, then reads every document (id to source JSON) through the client; up to 10,000 documents.</summary>
    public async Task<IReadOnlyDictionary<string, string>> DocumentsAsync(string index, CancellationToken cancellationToken = default)
    {
        await RefreshOrThrowAsync(index, cancellationToken).ConfigureAwait(false);
        var response = await Client.SearchAsync<JsonElement>(s => s.Indices(index).Size(10_000).Query(q => q.MatchAll()), cancellationToken).ConfigureAwait(false);
        if (!response.IsValidResponse)
        {
            throw new InvalidOperationException($"Reading index [{index}] failed: {response.DebugInformation}");
        }

        if (response.Total > 10_000)
        {
            throw new InvalidOperationException($"Index [{index}] holds {response.Total} documents; DocumentsAsync reads at most 10,000. Keep test data small.");
        }

        return response.Hits.ToDictionary(h => h.Id!, h => h.Source.GetRawText(), StringComparer.Ordinal);
    }

    /// <summary>Refreshes the index, then counts its documents through the client.</summary>
    public async Task<long> CountAsync(string index, CancellationToken cancellationToken = default)
    {
        await RefreshOrThrowAsync(index, cancellationToken).ConfigureAwait(false);
        var response = await Client.CountAsync(c => c.Indices(index), cancellationToken).ConfigureAwait(false);
        return response.IsValidResponse ? response.Count : throw new InvalidOperationException($"Counting index [{index}] failed: {response.DebugInformation}");
    }

    /// <summary>Stops the in-process server, if any.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Server is not null)
        {
            await Server.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async Task RefreshOrThrowAsync(string index, CancellationToken cancellationToken)
    {
        var refresh = await Client.Indices.RefreshAsync(index, cancellationToken).ConfigureAwait(false);
        if (!refresh.IsValidResponse)
        {
            throw new InvalidOperationException($"Refreshing index [{index}] failed: {refresh.DebugInformation}");
        }
    }
}
