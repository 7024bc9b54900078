using System.Diagnostics.Metrics;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Metrics;

namespace EtlFunnel.Service;

/// <summary>
/// The OpenTelemetry metrics pipeline every etlfunnel <c>/metrics</c> endpoint shares (watch's status server, the cluster
/// worker's): one server's own meter, Npgsql's, the .NET runtime and process instruments under Prometheus-friendly names,
/// and the Prometheus exporter reading the state as it is at each scrape.
/// </summary>
internal static class PrometheusExport
{
    /// <summary>
    /// The web host every status endpoint starts from: Kestrel alone on <paramref name="address"/>:<paramref name="port"/>,
    /// no server header, routing. The empty builder reads no appsettings/ASPNETCORE_* variables and adds no logging providers:
    /// the process's own log stays the only log, and nothing can rebind the port.
    /// </summary>
    public static WebApplicationBuilder StatusEndpointBuilder(IPAddress address, int port)
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Listen(address, port);
        });
        builder.Services.AddRoutingCore();
        return builder;
    }

    /// <summary>
    /// Adds <paramref name="own"/> (only that instance: other meters of the same name in the process are dropped), then
    /// <paramref name="views"/> of the caller's own instruments, runtime, process and the exporter.
    /// </summary>
    public static MeterProviderBuilder AddEtlfunnelMetrics(this MeterProviderBuilder m, Meter own, Func<MeterProviderBuilder, MeterProviderBuilder>? views = null)
    {
        m.AddMeter(own.Name, "Npgsql")
            // Only this server's meter: another server in the same process (tests) has a meter of the same name.
            .AddView(i => i.Meter.Name == own.Name && !ReferenceEquals(i.Meter, own) ? MetricStreamConfiguration.Drop : null);
        return (views?.Invoke(m) ?? m)
            // OpenTelemetry's semantic-convention "*.count" gauges read as histogram parts to Prometheus (promtool's lint): plural names instead.
            .AddView("dotnet.assembly.count", "dotnet.assemblies")
            .AddView("dotnet.process.cpu.count", "dotnet.process.cpus")
            .AddView("dotnet.thread_pool.thread.count", "dotnet.thread_pool.threads")
            .AddView("dotnet.timer.count", "dotnet.timers")
            .AddView("process.thread.count", "process.threads")
            .AddView("process.unix.file_descriptor.count", "process.unix.file_descriptors")
            // Npgsql's pool gauge, present once a process holds a pool (the cluster worker always does).
            .AddView("db.client.connection.count", "db.client.connections")
            .AddRuntimeInstrumentation()
            .AddProcessInstrumentation()
            // Every scrape reads the state as it is now.
            .AddPrometheusExporter(o => o.ScrapeResponseCacheDurationMilliseconds = 0);
    }
}
