using System.Net;
using System.Net.Sockets;
using EtlFunnel.Cluster.Leases;
using EtlFunnel.Cluster.Members;
using EtlFunnel.Cluster.Placement;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using Orleans.Configuration;
using Orleans.Hosting;
using Orleans.Runtime;

namespace EtlFunnel.Cluster.Worker;

/// <summary>Builds the worker: an Orleans silo with ADO.NET membership on the state database, the replica executor and the member heartbeat.</summary>
internal static class WorkerHost
{
    public static async Task<IHost> BuildAsync(WorkerOptions options, ILoggerFactory loggerFactory, CancellationToken cancellationToken)
    {
        var dataSource = ClusterData.Open(options.Settings);
        await ClusterSchema.EnsureAsync(dataSource, options.Settings.Described, cancellationToken).ConfigureAwait(false);
        var siloPort = options.SiloPort == 0 ? FreePort(options.AdvertisedAddress) : options.SiloPort;
        var gatewayPort = options.GatewayPort == 0 ? FreePort(options.AdvertisedAddress) : options.GatewayPort;

        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        ClusterLogging.Configure(builder.Logging, loggerFactory);
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(dataSource);
        // The worker's own lines go straight to the command's logger factory (its levels, -v included), not through the host's filters.
        builder.Services.AddSingleton(loggerFactory.CreateLogger("EtlFunnel.Cluster.Worker"));
        builder.Services.AddSingleton(new LeaseStore(dataSource));
        builder.Services.AddSingleton(new MemberRegistry(dataSource, options.Settings.ClusterId));
        builder.Services.AddSingleton<ReplicaExecutor>();
        builder.UseOrleans(silo =>
        {
            silo.Configure<ClusterOptions>(o =>
            {
                o.ClusterId = options.Settings.ClusterId;
                o.ServiceId = "etlfunnel";
            });
            silo.UseAdoNetClustering(o =>
            {
                o.Invariant = "Npgsql";
                o.ConnectionString = options.Settings.OrleansConnectionString;
            });
            silo.ConfigureEndpoints(options.AdvertisedAddress, siloPort, gatewayPort, listenOnAnyHostAddress: !IPAddress.IsLoopback(options.AdvertisedAddress));
            silo.Configure<ClusterMembershipOptions>(o => ClusterData.Membership(o, options.Settings));
            silo.Services.AddPlacementDirector<TargetSiloPlacement, TargetSiloPlacementDirector>();
        });
        builder.Services.AddHostedService<MemberService>();
        return builder.Build();
    }

    private static int FreePort(IPAddress address)
    {
        using var listener = new TcpListener(address, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>Announces the worker once its silo is up, refreshes the announcement, and on stop drains its replicas and leaves.</summary>
internal sealed class MemberService(WorkerOptions options, MemberRegistry members, ReplicaExecutor executor, ILocalSiloDetails silo, ILogger log) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var address = silo.SiloAddress.ToParsableString();
        await members.AnnounceAsync(new Member(address, options.Machine, options.HooksHash), stoppingToken).ConfigureAwait(false);
        log.LogInformation("Worker {Silo} joined cluster {Cluster} in {Server}: {Cores} cores, {Memory:0.#} GiB, region {Region}, labels {Labels}, silo port {SiloPort}, gateway port {GatewayPort}, hooks {Hooks}",
            address, options.Settings.ClusterId, options.Settings.Server, options.Machine.LogicalCores, options.Machine.TotalMemoryBytes / (double)(1L << 30),
            options.Machine.Region ?? "-", string.Join(",", options.Machine.Labels.Select(l => $"{l.Key}={l.Value}")), silo.SiloAddress.Endpoint.Port, silo.GatewayAddress?.Endpoint.Port, options.HooksHash);
        var every = options.Settings.MemberTtl / 3;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(every, stoppingToken).ConfigureAwait(false);
                if (!await members.HeartbeatAsync(address, stoppingToken).ConfigureAwait(false))
                {
                    await members.AnnounceAsync(new Member(address, options.Machine, options.HooksHash), stoppingToken).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (NpgsqlException ex)
            {
                log.LogWarning("Could not refresh this worker's announcement in {Server} ({Error}); retrying", options.Settings.Server, ex.Message);
            }
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        var address = silo.SiloAddress.ToParsableString();
        try
        {
            await members.LeaveAsync(address, cancellationToken).ConfigureAwait(false);
        }
        catch (NpgsqlException ex)
        {
            log.LogWarning("Could not mark this worker as left ({Error}); the caller stops placing on it once its announcement is stale", ex.Message);
        }

        log.LogInformation("Worker {Silo} stopping: {Running} replicas checkpoint and go back to the cluster", address, executor.Running);
        await executor.StopAsync().ConfigureAwait(false);
        await base.StopAsync(cancellationToken).ConfigureAwait(false);
    }
}

/// <summary>The state database handle and Orleans settings shared by workers and callers.</summary>
internal static class ClusterData
{
    public static NpgsqlDataSource Open(ClusterSettings settings)
    {
        var builder = new NpgsqlDataSourceBuilder(settings.ConnectionString);
        builder.ConnectionStringBuilder.ApplicationName ??= "etlfunnel-cluster";
        builder.ConfigureTypeLoading(t => t.EnableTypeLoading(false));
        return builder.Build();
    }

    public static void Membership(ClusterMembershipOptions o, ClusterSettings settings)
    {
        if (settings.ProbeTimeout is { } probe)
        {
            o.ProbeTimeout = probe;
            o.TableRefreshTimeout = probe;
            o.IAmAliveTablePublishTimeout = probe;
            o.NumMissedProbesLimit = 2;
            o.DeathVoteExpirationTimeout = probe * 4;
        }
    }
}
