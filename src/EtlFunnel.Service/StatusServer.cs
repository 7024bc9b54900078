using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Metrics;

namespace EtlFunnel.Service;

/// <summary>
/// The watch command's status endpoints (<c>/</c>, <c>/healthz</c>, <c>/plan</c>, <c>/runs</c>,
/// <c>/metrics</c>) on Kestrel, bound to loopback only. Every request reads one immutable snapshot.
/// </summary>
internal sealed class StatusServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ServiceMetrics _metrics;

    private StatusServer(WebApplication app, ServiceMetrics metrics, Uri boundUrl)
    {
        _app = app;
        _metrics = metrics;
        BoundUrl = boundUrl;
    }

    /// <summary>Where the server actually listens (the real port when 0 was asked for), e.g. <c>http://127.0.0.1:41234/</c>.</summary>
    public Uri BoundUrl { get; }

    /// <summary>
    /// Checks a <c>--status-url</c> value: http, a loopback host (any IP address with <paramref name="allowNonLoopback"/>,
    /// i.e. <c>--status-allow-remote</c>), an explicit port (0 = any free one), no path.
    /// </summary>
    public static (IPAddress Address, int Port) ParseUrl(string statusUrl, bool allowNonLoopback = false)
    {
        const string Fix = "use --status-url http://127.0.0.1:PORT (PORT 0 picks a free port)";
        if (!Uri.TryCreate(statusUrl, UriKind.Absolute, out var url))
        {
            throw new FormatException($"--status-url '{statusUrl}' is not an absolute URL; {Fix}.");
        }

        if (url.Scheme != Uri.UriSchemeHttp)
        {
            throw new FormatException($"--status-url '{statusUrl}' must use http (the status server has no TLS and listens on loopback only); {Fix}.");
        }

        IPAddress address;
        if (string.Equals(url.Host, "localhost", StringComparison.OrdinalIgnoreCase))
        {
            address = IPAddress.Loopback;
        }
        else if (!IPAddress.TryParse(url.IdnHost, out address!))
        {
            throw new FormatException(
                $"--status-url '{statusUrl}': '{url.Host}' is not a loopback address (nor an IP address); listen on an address of this machine (0.0.0.0 for all, with --status-allow-remote) or on loopback; {Fix}.");
        }
        else if (!IPAddress.IsLoopback(address) && !allowNonLoopback)
        {
            throw new FormatException(
                $"--status-url '{statusUrl}': '{url.Host}' is not a loopback address. The status page has no authentication, so it only listens on loopback (127.0.0.1, [::1] or localhost); put a reverse proxy in front to expose it, or add --status-allow-remote to listen there anyway; {Fix}.");
        }

        if (url.IsDefaultPort && !statusUrl.Contains($":{url.Port}", StringComparison.Ordinal))
        {
            throw new FormatException($"--status-url '{statusUrl}' has no port; {Fix}.");
        }

        if (url.AbsolutePath != "/" || url.Query.Length > 0 || url.Fragment.Length > 0)
        {
            throw new FormatException($"--status-url '{statusUrl}' must not have a path, query or fragment (the endpoints are /, /livez, /readyz, /healthz, /plan, /runs, /metrics); {Fix}.");
        }

        return (address, url.Port);
    }

    /// <summary>Starts serving <paramref name="state"/> on <paramref name="statusUrl"/>; see <see cref="ParseUrl"/> for what is accepted.</summary>
    public static Task<StatusServer> StartAsync(Uri statusUrl, ServiceState state, CancellationToken cancellationToken) =>
        StartAsync(statusUrl.OriginalString, state, cancellationToken, allowNonLoopback: false);

    /// <summary>
    /// Starts serving <paramref name="state"/> on <paramref name="statusUrl"/> (e.g. <c>http://127.0.0.1:0</c>); with
    /// <paramref name="cluster"/>, <c>/healthz</c>, the page and <c>/metrics</c> show its members too (read on request).
    /// </summary>
    public static async Task<StatusServer> StartAsync(string statusUrl, ServiceState state, CancellationToken cancellationToken, bool allowNonLoopback = false, CachedReading<ClusterView>? cluster = null)
    {
        ArgumentNullException.ThrowIfNull(state);
        var (address, port) = ParseUrl(statusUrl, allowNonLoopback);

        var builder = PrometheusExport.StatusEndpointBuilder(address, port);
        var metrics = new ServiceMetrics(state, cluster);
        builder.Services.AddOpenTelemetry().WithMetrics(m => m.AddEtlfunnelMetrics(metrics.Meter, views => views
            .AddView("etlfunnel_run_duration", new ExplicitBucketHistogramConfiguration { Boundaries = [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 14400] })));
        var app = builder.Build();
        Map(app, state, cluster);
        try
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            await app.DisposeAsync().ConfigureAwait(false);
            metrics.Dispose();
            throw new IOException($"--status-url '{statusUrl}': cannot listen on {address}:{port} ({e.Message}); pick another port or 0 for a free one.", e);
        }

        var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault()
            ?? throw new InvalidOperationException("Kestrel started but reported no address.");
        return new StatusServer(app, metrics, new Uri(bound.EndsWith('/') ? bound : bound + "/"));
    }

    /// <summary>Stops listening; requests in progress get a moment to finish.</summary>
    public async ValueTask DisposeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await _app.StopAsync(cts.Token).ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
        _metrics.Dispose();
    }

    private static void Map(WebApplication app, ServiceState state, CachedReading<ClusterView>? cluster)
    {
        if (cluster is not null)
        {
            // The cluster series are read at the scrape (at most one state database read per cache period), never in the background.
            app.Use(async (ctx, next) =>
            {
                if (ctx.Request.Path == "/metrics")
                {
                    await cluster.GetAsync(ctx.RequestAborted).ConfigureAwait(false);
                }

                await next(ctx).ConfigureAwait(false);
            });
        }

        app.MapGet("/", ctx => Send(ctx, 200, "text/html; charset=utf-8", StatusPage.Html));
        app.MapGet("/healthz", async ctx =>
        {
            var s = state.Snapshot;
            var reading = cluster is null ? null : await cluster.GetAsync(ctx.RequestAborted).ConfigureAwait(false);
            await Send(ctx, s.Health.Healthy ? 200 : 503, "application/json; charset=utf-8", StatusJson.Health(s, reading)).ConfigureAwait(false);
        });
        // Liveness: the process answers (a broken hook or an unreachable source is no reason to restart it).
        app.MapGet("/livez", ctx => Send(ctx, 200, "application/json; charset=utf-8", "{\"status\":\"alive\"}"));
        app.MapGet("/readyz", ctx =>
        {
            var s = state.Snapshot;
            var readiness = s.Readiness;
            return Send(ctx, readiness.Ready ? 200 : 503, "application/json; charset=utf-8", StatusJson.Readiness(s, readiness));
        });
        app.MapGet("/plan", ctx =>
        {
            var s = state.Snapshot;
            return s.Plan is { } plan
                ? Send(ctx, 200, "application/json; charset=utf-8", plan.Json)
                : Send(ctx, 503, "application/json; charset=utf-8", "{\"error\":\"no plan yet: the hooks have not produced a valid plan since the service started\"}");
        });
        app.MapGet("/runs", ctx => Send(ctx, 200, "application/json; charset=utf-8", StatusJson.Runs(state.Snapshot)));
        app.MapPrometheusScrapingEndpoint("/metrics");
    }

    private static Task Send(HttpContext ctx, int status, string contentType, string body)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = contentType;
        ctx.Response.Headers.CacheControl = "no-store";
        return ctx.Response.WriteAsync(body, Encoding.UTF8, ctx.RequestAborted);
    }
}
