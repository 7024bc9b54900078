using System.Collections.Concurrent;
using System.Net;
using System.Text.Json.Nodes;
using Elastic.Clients.Elasticsearch;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace EtlFunnel.Testing.Elasticsearch;

/// <summary>
/// An in-process, in-memory HTTP server on 127.0.0.1 that speaks enough of the Elasticsearch 9 REST API for the official
/// client to index, refresh, count, get and search documents, and that injects faults on demand. A test fixture only.
/// </summary>
public sealed class ElasticsearchTestServer : IAsyncDisposable
{
    internal const string DroppedKey = "etlfunnel.dropped";

    private readonly WebApplication _app;
    private readonly InMemoryCluster _cluster;
    private readonly ElasticsearchRequestHandler _handler;
    private readonly ConcurrentQueue<RecordedRequest> _requests = new();

    private ElasticsearchTestServer(WebApplication app, InMemoryCluster cluster, ElasticsearchRequestHandler handler, ElasticsearchFaults faults, Uri uri)
    {
        _app = app;
        _cluster = cluster;
        _handler = handler;
        Faults = faults;
        Uri = uri;
    }

    /// <summary>Base address of the server, e.g. <c>http://127.0.0.1:41234/</c>.</summary>
    public Uri Uri { get; }

    /// <summary>Fault injection for <c>_bulk</c> calls, changeable at any time.</summary>
    public ElasticsearchFaults Faults { get; }

    /// <summary>Bulk calls received so far, including those answered with an injected fault.</summary>
    public int BulkRequestCount => _handler.BulkRequestCount;

    /// <summary>Every request answered so far, in completion order.</summary>
    public IReadOnlyList<RecordedRequest> Requests => [.. _requests];

    /// <summary>Names of the indices that exist now.</summary>
    public IReadOnlyList<string> IndexNames => _cluster.IndexNames();

    /// <summary>Whether <paramref name="name"/> is an index or an alias of one index (what <c>HEAD /{name}</c> answers).</summary>
    public bool Exists(string name)
    {
        lock (_cluster.Gate)
        {
            return _cluster.Find(name) is not null;
        }
    }

    /// <summary>The indices alias <paramref name="alias"/> points at, in name order (empty when there is no such alias).</summary>
    public IReadOnlyList<string> AliasTargets(string alias)
    {
        lock (_cluster.Gate)
        {
            return [.. _cluster.IndicesOfAlias(alias).Select(i => i.Name)];
        }
    }

    /// <summary>Starts a server on a free loopback port.</summary>
    public static async Task<ElasticsearchTestServer> StartAsync(ElasticsearchTestServerOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new ElasticsearchTestServerOptions();
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ApplicationName = typeof(ElasticsearchTestServer).Assembly.GetName().Name });
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(kestrel =>
        {
            kestrel.Listen(IPAddress.Loopback, 0);
            kestrel.Limits.MaxRequestBodySize = options.MaxRequestBodyBytes;
            kestrel.AddServerHeader = false;
        });
        builder.Services.AddRequestDecompression();

        var faults = new ElasticsearchFaults(options.Seed);
        var cluster = new InMemoryCluster(options.SearchRequiresRefresh, TimeProvider.System);
        var handler = new ElasticsearchRequestHandler(options, cluster, faults);
        var app = builder.Build();

        ElasticsearchTestServer? server = null;
        app.Use(async (context, next) =>
        {
            // Read before the decompression middleware, which removes the header once it has unwrapped the body.
            var encoding = context.Request.Headers.ContentEncoding.ToString();
            var contentType = context.Request.ContentType;
            var authorization = context.Request.Headers.Authorization.ToString();
            try
            {
                await next(context).ConfigureAwait(false);
            }
            catch (BadHttpRequestException e) when (e.StatusCode == 413 && !context.Response.HasStarted)
            {
                // Over http.max_content_length Elasticsearch answers a bare 413 (no body), before looking at the request.
                context.Response.StatusCode = 413;
                context.Response.Headers["X-Elastic-Product"] = "Elasticsearch";
                context.Response.ContentLength = 0;
            }
            catch (Exception e) when (!context.Response.HasStarted && !context.RequestAborted.IsCancellationRequested)
            {
                context.Response.StatusCode = 500;
                context.Response.Headers["X-Elastic-Product"] = "Elasticsearch";
                context.Response.ContentType = "application/json";
                await context.Response.WriteAsync(EsResponses.Error(500, "exception", $"EtlFunnel test server failure: {e}").ToJsonString()).ConfigureAwait(false);
            }

            var dropped = context.Items.ContainsKey(DroppedKey);
            server?._requests.Enqueue(new RecordedRequest(
                context.Request.Method,
                context.Request.Path + context.Request.QueryString,
                dropped ? 0 : context.Response.StatusCode,
                encoding.Length == 0 ? null : encoding,
                contentType)
            {
                Authorization = authorization.Length == 0 ? null : authorization,
            });
        });
        app.UseRequestDecompression();
        app.Run(handler.HandleAsync);

        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.Single();
        server = new ElasticsearchTestServer(app, cluster, handler, faults, new Uri(address.EndsWith('/') ? address : address + "/"));
        return server;
    }

    /// <summary>An official client pointed at this server; <paramref name="configure"/> may adjust its settings (e.g. compression).</summary>
    public ElasticsearchClient CreateClient(Action<ElasticsearchClientSettings>? configure = null)
    {
        var settings = new ElasticsearchClientSettings(Uri);
        configure?.Invoke(settings);
        return new ElasticsearchClient(settings);
    }

    /// <summary>The live documents of an index (id to source JSON as sent), whatever was refreshed.</summary>
    public IReadOnlyDictionary<string, string> Documents(string index)
    {
        lock (_cluster.Gate)
        {
            var state = FindOrThrow(index);
            return state.Documents.Where(d => d.Value.Source is not null).ToDictionary(d => d.Key, d => System.Text.Encoding.UTF8.GetString(d.Value.Source!.Value.Span), StringComparer.Ordinal);
        }
    }

    /// <summary>The version of a live document, or null when it does not exist.</summary>
    public long? VersionOf(string index, string id)
    {
        lock (_cluster.Gate)
        {
            var doc = FindOrThrow(index).Documents.GetValueOrDefault(id);
            return doc?.Source is null ? null : doc.Version;
        }
    }

    /// <summary>The index's mappings as JSON (<c>{"properties":{...}}</c>), including dynamically added fields.</summary>
    public string Mappings(string index)
    {
        lock (_cluster.Gate)
        {
            return FindOrThrow(index).Mappings.ToJsonString();
        }
    }

    /// <summary>The index's own settings as JSON (what was given at create or <c>_settings</c> time).</summary>
    public string Settings(string index)
    {
        lock (_cluster.Gate)
        {
            return FindOrThrow(index).Settings.ToJsonString();
        }
    }

    /// <summary>How many times an index was refreshed.</summary>
    public int RefreshCount(string index)
    {
        lock (_cluster.Gate)
        {
            return FindOrThrow(index).RefreshCount;
        }
    }

    /// <summary>Stops the server.</summary>
    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }

    private IndexState FindOrThrow(string index) =>
        _cluster.Find(index) ?? throw new KeyNotFoundException(
            $"The Elasticsearch test server has no index [{index}]; it has [{string.Join(", ", _cluster.IndexNames())}]. Create it or bulk into it first.");
}
