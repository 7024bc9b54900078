using System.Diagnostics.Metrics;
using System.Globalization;
using System.Net;
using System.Text;
using EtlFunnel.Cluster;
using EtlFunnel.Cluster.Status;
using EtlFunnel.Cluster.Worker;
using EtlFunnel.Service;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace EtlFunnel.Cli.Running;

/// <summary>
/// <c>etlfunnel worker --status-port N</c>: <c>/metrics</c> (the cluster as this worker reads it from the state database, plus
/// the runtime and process metrics of watch's status server, through the same OpenTelemetry Prometheus exporter),
/// <c>/livez</c> and a plain HTML page <c>/</c> with the members and their replicas. The cluster is read on request (a scrape
/// of <c>/metrics</c>, a load of <c>/</c>) at most once a second; nothing reads the state database while nobody looks.
/// </summary>
internal sealed class WorkerStatusServer : IAsyncDisposable
{
    /// <summary>The meter's name (the <c>otel_scope_name</c> of the cluster series).</summary>
    public const string MeterName = "EtlFunnel.Cluster";

    private static readonly TimeSpan MaxAge = TimeSpan.FromSeconds(1);

    private readonly WebApplication _app;
    private readonly Meter _meter;
    private readonly NpgsqlDataSource _dataSource;
    private readonly CachedReading<ClusterStatusReport> _cluster;

    private WorkerStatusServer(WebApplication app, Meter meter, NpgsqlDataSource dataSource, CachedReading<ClusterStatusReport> cluster, Uri boundUrl)
    {
        _app = app;
        _meter = meter;
        _dataSource = dataSource;
        _cluster = cluster;
        BoundUrl = boundUrl;
    }

    /// <summary>Where the server listens, e.g. <c>http://127.0.0.1:9465/</c>.</summary>
    public Uri BoundUrl { get; }

    /// <summary>Starts serving on <paramref name="address"/>:<paramref name="port"/> (0: a free port).</summary>
    public static async Task<WorkerStatusServer> StartAsync(IPAddress address, int port, ClusterSettings settings, ReplicaExecutor executor, string localSilo, CancellationToken cancellationToken)
    {
        var dataSource = ClusterData.Open(settings);
        var meter = new Meter(MeterName, ServiceMetrics.Version);
        var cluster = new CachedReading<ClusterStatusReport>(ct => ClusterStatusReader.ReadAsync(dataSource, settings, ct), MaxAge);
        CachedReading<ClusterStatusReport>.Reading Last() => cluster.Last;

        meter.CreateObservableGauge("etlfunnel_cluster_members", () => Last().View?.AliveMembers ?? 0,
            description: "Members of the cluster alive now (announced, not left, heartbeat within the member TTL), as this worker reads the state database.");
        meter.CreateObservableGauge("etlfunnel_cluster_replicas", () => PerMember(Last().View),
            description: "Pipeline replicas each member owns now (running, unexpired leases), per member name and silo; alive members and members still owning a lease.");
        meter.CreateObservableCounter("etlfunnel_cluster_failovers", () => Last().View?.Failovers ?? 0,
            description: "Leases taken over from an owner that stopped renewing them (a dead or paused worker), over every run of the cluster.");
        meter.CreateObservableGauge("etlfunnel_cluster_replicas_running", () => executor.Running,
            description: "Pipeline replicas running on this worker now.");
        meter.CreateObservableGauge("etlfunnel_cluster_status_up", () => Last() is { View: not null, Error: null } ? 1 : 0,
            description: "1 when the last reading of the cluster's state database succeeded, 0 when it failed (the other cluster series then hold their last values).");

        var builder = PrometheusExport.StatusEndpointBuilder(address, port);
        builder.Services.AddOpenTelemetry().WithMetrics(m => m.AddEtlfunnelMetrics(meter));
        var app = builder.Build();
        // The cluster series are read at the scrape (at most once per second), never in the background.
        app.Use(async (ctx, next) =>
        {
            if (ctx.Request.Path == "/metrics")
            {
                await cluster.GetAsync(ctx.RequestAborted).ConfigureAwait(false);
            }

            await next(ctx).ConfigureAwait(false);
        });
        app.MapGet("/livez", ctx => Send(ctx, 200, "application/json; charset=utf-8", "{\"status\":\"alive\"}"));
        app.MapGet("/", async ctx => await Send(ctx, 200, "text/html; charset=utf-8", Page(await cluster.GetAsync(ctx.RequestAborted).ConfigureAwait(false), localSilo, executor.Running)).ConfigureAwait(false));
        app.MapPrometheusScrapingEndpoint("/metrics");
        try
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            await app.DisposeAsync().ConfigureAwait(false);
            meter.Dispose();
            cluster.Dispose();
            await dataSource.DisposeAsync().ConfigureAwait(false);
            throw new IOException($"--status-port {port}: cannot listen on {address}:{port} ({e.Message}); pick another port or 0 for a free one.", e);
        }

        var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault()
            ?? throw new InvalidOperationException("Kestrel started but reported no address.");
        return new WorkerStatusServer(app, meter, dataSource, cluster, new Uri(bound.EndsWith('/') ? bound : bound + "/"));
    }

    public async ValueTask DisposeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await _app.StopAsync(cts.Token).ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
        _meter.Dispose();
        _cluster.Dispose();
        await _dataSource.DisposeAsync().ConfigureAwait(false);
    }

    private static IEnumerable<Measurement<int>> PerMember(ClusterStatusReport? report)
    {
        if (report is null)
        {
            yield break;
        }

        var perMember = report.ReplicasPerMember;
        foreach (var m in report.Members.Where(m => m.Alive || perMember[m.Silo] > 0))
        {
            yield return new Measurement<int>(perMember[m.Silo], new KeyValuePair<string, object?>("member", m.Name), new KeyValuePair<string, object?>("silo", m.Silo));
        }
    }

    private static string Page(CachedReading<ClusterStatusReport>.Reading reading, string localSilo, int runningHere)
    {
        static string E(string? s) => WebUtility.HtmlEncode(s ?? "-");
        static string T(DateTimeOffset t) => t.ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture);
        var html = new StringBuilder();
        html.Append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"5\"><title>etlfunnel worker</title>")
            .Append("<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin-bottom:1.5em}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}")
            .Append(".dead{color:#a00}.here{font-weight:bold}</style></head><body>\n");
        html.Append("<h1>etlfunnel worker</h1>\n<p>This worker: <span class=\"here\">").Append(E(localSilo)).Append("</span>, ")
            .Append(runningHere.ToString(CultureInfo.InvariantCulture)).Append(" replicas running here. <a href=\"/metrics\">/metrics</a></p>\n");
        if (reading.Error is { } error)
        {
            html.Append("<p class=\"dead\">Cannot read the cluster: ").Append(E(error)).Append("</p>\n");
        }

        if (reading.View is { } report)
        {
            html.Append("<p>Cluster ").Append(E(report.ClusterId)).Append(" in ").Append(E(report.Server)).Append(": ")
                .Append(report.AliveMembers.ToString(CultureInfo.InvariantCulture)).Append(" members alive, ")
                .Append(report.Replicas.Count.ToString(CultureInfo.InvariantCulture)).Append(" replicas running, ")
                .Append(report.Failovers.ToString(CultureInfo.InvariantCulture)).Append(" failovers.</p>\n");
            var perMember = report.ReplicasPerMember;
            html.Append("<h2>Members</h2>\n<table><tr><th>member</th><th>silo</th><th>cores</th><th>memory</th><th>region</th><th>labels</th><th>last heartbeat</th><th>state</th><th>replicas</th></tr>\n");
            foreach (var m in report.Members.Where(m => m.Alive || perMember[m.Silo] > 0 || m.LeftAt is null))
            {
                html.Append(m.Silo == localSilo ? "<tr class=\"here\">" : "<tr>")
                    .Append("<td>").Append(E(m.Name)).Append("</td><td>").Append(E(m.Silo)).Append("</td><td>").Append(m.Cores.ToString(CultureInfo.InvariantCulture))
                    .Append("</td><td>").Append((m.MemoryBytes / (double)(1L << 30)).ToString("0.#", CultureInfo.InvariantCulture)).Append(" GiB</td><td>").Append(E(m.Region))
                    .Append("</td><td>").Append(E(m.Labels.Count == 0 ? null : string.Join(",", m.Labels.Select(l => $"{l.Key}={l.Value}"))))
                    .Append("</td><td>").Append(T(m.SeenAt)).Append("</td><td").Append(m.Alive ? ">alive" : " class=\"dead\">" + (m.LeftAt is null ? "not seen" : "left"))
                    .Append("</td><td>").Append(perMember[m.Silo].ToString(CultureInfo.InvariantCulture)).Append("</td></tr>\n");
            }

            html.Append("</table>\n<h2>Replicas running</h2>\n<table><tr><th>member</th><th>flow/replica</th><th>run</th><th>epoch</th><th>since</th></tr>\n");
            var names = report.Members.ToDictionary(m => m.Silo, m => m.Name, StringComparer.Ordinal);
            foreach (var r in report.Replicas)
            {
                html.Append("<tr><td>").Append(E(names.GetValueOrDefault(r.Silo, r.Silo))).Append("</td><td>").Append(E($"{r.Flow}/{r.Replica}"))
                    .Append("</td><td>").Append(E(r.RunId)).Append("</td><td>").Append(r.Epoch.ToString(CultureInfo.InvariantCulture))
                    .Append("</td><td>").Append(r.Since is { } since ? T(since) : "-").Append("</td></tr>\n");
            }

            html.Append("</table>\n");
        }

        return html.Append("</body></html>\n").ToString();
    }

    private static Task Send(HttpContext ctx, int status, string contentType, string body)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = contentType;
        ctx.Response.Headers.CacheControl = "no-store";
        return ctx.Response.WriteAsync(body, Encoding.UTF8, ctx.RequestAborted);
    }
}
