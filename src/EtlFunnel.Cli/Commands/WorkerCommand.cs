using System.ComponentModel;
using System.Globalization;
using System.Net;
using EtlFunnel.Cli.Hosting;
using EtlFunnel.Cli.Running;
using EtlFunnel.Cluster;
using EtlFunnel.Cluster.Worker;
using EtlFunnel.Execution.Models;
using EtlFunnel.Orchestration.Config;
using EtlFunnel.Orchestration.Machines;
using EtlFunnel.Runtime.Hooks;
using EtlFunnel.Service;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orleans.Runtime;
using Spectre.Console;
using Spectre.Console.Cli;

namespace EtlFunnel.Cli.Commands;

/// <summary>Options every command that talks to a cluster takes.</summary>
internal static class ClusterOptionsText
{
    public const string Cluster = "The cluster's state PostgreSQL database (postgres://user:password@host:5432/db or an Npgsql connection string): Orleans membership, members, leases and checkpoints live there (docs/cluster.md).";
}

internal sealed class WorkerSettings : CommonSettings
{
    [CommandOption("--cluster <CONN>")]
    [Description(ClusterOptionsText.Cluster)]
    public string? Cluster { get; init; }

    [CommandOption("-c|--config <FILE>")]
    [Description("The flows config this worker joins plans to (connection strings stay on this machine); the same flows as the caller's.")]
    public string? Config { get; init; }

    [CommandOption("--hooks <DIR>")]
    [Description("The hooks folder (default: 'hooks:' in the config, else ./hooks); its content hash must equal the plan's or replicas are refused.")]
    public string? Hooks { get; init; }

    [CommandOption("--cluster-id <ID>")]
    [Description("Which cluster in that database (default etlfunnel, or ETLFUNNEL_CLUSTER_ID).")]
    public string? ClusterId { get; init; }

    [CommandOption("--region <REGION>")]
    [Description("The region this worker announces (default ETLFUNNEL_REGION); replicas with prop cluster_region run only there.")]
    public string? Region { get; init; }

    [CommandOption("--label <KEY=VALUE>")]
    [Description("A label this worker announces (repeatable; also ETLFUNNEL_LABELS=k=v,k2=v2); replicas with prop cluster_labels run only on matching workers.")]
    public string[] Labels { get; init; } = [];

    [CommandOption("--cores <N>")]
    [Description("Cores announced (default: this machine's); the cluster places at most this many replicas here at once.")]
    public int? Cores { get; init; }

    [CommandOption("--name <NAME>")]
    [Description("The name announced (default: the host name).")]
    public string? Name { get; init; }

    [CommandOption("--advertise <IP>")]
    [Description("The address other workers and callers reach this one at (default 127.0.0.1: set it for a cluster of several machines).")]
    public string? Advertise { get; init; }

    [CommandOption("--silo-port <PORT>")]
    [Description("Silo-to-silo port (default: a free one).")]
    public int SiloPort { get; init; }

    [CommandOption("--gateway-port <PORT>")]
    [Description("Port callers connect to (default: a free one).")]
    public int GatewayPort { get; init; }

    [CommandOption("--lease-ttl <SECONDS>")]
    [Description("How long a replica's lease lasts without renewal (default 10): a dead worker's replicas run elsewhere after about this long.")]
    public double? LeaseTtl { get; init; }

    [CommandOption("--probe-timeout <SECONDS>")]
    [Description("Orleans membership probe timeout (default: Orleans' own).")]
    public double? ProbeTimeout { get; init; }

    [CommandOption("--status-port <PORT>")]
    [Description("Serve /metrics (cluster members, replicas per member, failovers, runtime), /livez and a status page / on 127.0.0.1:PORT (0: a free port, logged); off by default.")]
    public int? StatusPort { get; init; }

    [CommandOption("--status-allow-remote")]
    [Description("Serve --status-port on every address (0.0.0.0) instead of loopback. The endpoints have no authentication: firewall them or put an authenticating proxy in front.")]
    public bool StatusAllowRemote { get; init; }

    public override ValidationResult Validate() =>
        StatusPort is < 0 or > 65535 ? ValidationResult.Error($"--status-port {StatusPort}: not a port (0-65535; 0 picks a free one)")
        : string.IsNullOrWhiteSpace(Config) ? ValidationResult.Error("--config <FILE> is required (the flows this worker may run)")
        : ValidationResult.Success();
}

/// <summary><c>etlfunnel worker</c>: an Orleans silo of the cluster that runs the pipeline replicas callers hand it, until SIGTERM/Ctrl-C.</summary>
internal sealed class WorkerCommand(CliContext context) : AsyncCommand<WorkerSettings>
{
    public override async Task<int> ExecuteAsync(CommandContext commandContext, WorkerSettings settings, CancellationToken cancellationToken)
    {
        using var signal = ShutdownSignal.Register(context.LoggerFactory);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, signal.Token);
        EtlConfig config;
        try
        {
            config = await ConfigLoader.LoadAsync(settings.Config!, context.Environment, stop.Token).ConfigureAwait(false);
        }
        catch (ConfigException ex)
        {
            await context.Err.WriteLineAsync(ex.Message).ConfigureAwait(false);
            return ExitCodes.Usage;
        }

        // --cluster wins over 'cluster:' in the config; one of them names the cluster.
        ClusterSettings? cluster;
        if (settings.Cluster is not null)
        {
            cluster = ClusterCommandLine.Settings(settings.Cluster, settings.ClusterId, settings.LeaseTtl, settings.ProbeTimeout, context.Environment);
            if (cluster is null)
            {
                await context.Err.WriteLineAsync("error: --cluster: not a postgres:// URL nor an Npgsql connection string").ConfigureAwait(false);
                return ExitCodes.Usage;
            }
        }
        else if (config.Cluster is { } configured)
        {
            cluster = ClusterCommandLine.FromConfig(configured, settings.ClusterId, settings.LeaseTtl, settings.ProbeTimeout, context.Environment);
        }
        else
        {
            await context.Err.WriteLineAsync(
                $"error: no cluster named: pass --cluster <CONN> (e.g. --cluster postgres://etl@db:5432/etlstate) or add 'cluster: postgres://…' to {settings.Config} (docs/cluster.md)").ConfigureAwait(false);
            return ExitCodes.Usage;
        }

        IPAddress advertised = IPAddress.Loopback;
        if (settings.Advertise is { } ip && !IPAddress.TryParse(ip, out advertised!))
        {
            await context.Err.WriteLineAsync($"error: --advertise {ip}: not an IP address").ConfigureAwait(false);
            return ExitCodes.Usage;
        }

        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var pair in (context.Environment("ETLFUNNEL_LABELS") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Concat(settings.Labels))
        {
            var kv = pair.Split('=', 2);
            if (kv.Length != 2 || kv[0].Length == 0)
            {
                await context.Err.WriteLineAsync($"error: --label {pair}: expected KEY=VALUE, e.g. --label region=EU").ConfigureAwait(false);
                return ExitCodes.Usage;
            }

            labels[kv[0]] = kv[1];
        }

        var detected = MachineProfiles.Detect(context.Environment);
        var machine = new MachineInfo
        {
            HostName = settings.Name ?? detected.HostName,
            LogicalCores = settings.Cores ?? detected.LogicalCores,
            TotalMemoryBytes = detected.TotalMemoryBytes,
            Region = settings.Region ?? detected.Region,
            Labels = labels,
        };
        var hooksDirectory = settings.Hooks ?? config.HooksDirectory ?? HooksFolder.DefaultDirectory;

        // The worker's own hook host, under the config's isolation settings as 'run' has it: its transformers run in this
        // worker's hook worker process for every replica it runs. Kept only when the folder has transformers.
        ILoadedHooks? hooks = null;
        if (Directory.Exists(hooksDirectory))
        {
            var (loaded, hooksExit) = await Planning.LoadHooksAsync(context, hooksDirectory, stop.Token,
                new HookSettings(config.HooksIsolation, config.HooksEnvironment)).ConfigureAwait(false);
            if (loaded is null)
            {
                return hooksExit;
            }

            if (loaded.Transformers.Count > 0)
            {
                hooks = loaded;
                context.Log.Information("Transformers from {Directory}: {Transformers:l}; they run in this worker's hook worker for the replicas it runs",
                    hooksDirectory, string.Join(", ", loaded.Transformers.Select(t => $"{t.Name}@{t.VersionKey}")));
            }
            else
            {
                await loaded.DisposeAsync().ConfigureAwait(false);
            }
        }

        await using var keptHooks = hooks;
        var options = new WorkerOptions
        {
            Settings = cluster,
            ConfigPath = Path.GetFullPath(settings.Config!),
            HooksDirectory = Directory.Exists(hooksDirectory) ? Path.GetFullPath(hooksDirectory) : null,
            HooksHash = HooksFingerprint.Compute(hooksDirectory),
            Transformers = hooks?.Transformers ?? [],
            Machine = machine,
            AdvertisedAddress = advertised,
            SiloPort = settings.SiloPort,
            GatewayPort = settings.GatewayPort,
            WorkDirectory = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(settings.Config!)) ?? ".", ".etlfunnel", "worker"),
            Environment = context.Environment,
        };

        IHost host;
        try
        {
            host = await WorkerHost.BuildAsync(options, context.LoggerFactory, stop.Token).ConfigureAwait(false);
        }
        catch (ClusterException ex)
        {
            await context.Err.WriteLineAsync($"error: {ex.Message}").ConfigureAwait(false);
            return ExitCodes.Failure;
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            return ExitCodes.Interrupted;
        }

        using (host)
        {
            await host.StartAsync(stop.Token).ConfigureAwait(false);
            WorkerStatusServer? status = null;
            if (settings.StatusPort is { } statusPort)
            {
                try
                {
                    status = await WorkerStatusServer.StartAsync(settings.StatusAllowRemote ? IPAddress.Any : IPAddress.Loopback, statusPort, cluster,
                        host.Services.GetRequiredService<ReplicaExecutor>(), host.Services.GetRequiredService<ILocalSiloDetails>().SiloAddress.ToParsableString(), stop.Token).ConfigureAwait(false);
                    context.Log.Information("Worker status on {Url:l} (/metrics, /livez, /)", status.BoundUrl.ToString());
                }
                catch (IOException ex)
                {
                    await context.Err.WriteLineAsync($"error: {ex.Message}").ConfigureAwait(false);
                    await host.StopAsync(CancellationToken.None).ConfigureAwait(false);
                    return ExitCodes.Usage;
                }
            }

            try
            {
                await Task.Delay(Timeout.Infinite, stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }

            if (status is not null)
            {
                await status.DisposeAsync().ConfigureAwait(false);
            }

            await host.StopAsync(CancellationToken.None).ConfigureAwait(false);
        }

        context.Log.Information("Worker stopped");
        return ExitCodes.Ok;
    }
}

/// <summary>Turns the command line's <c>--cluster</c> value (and friends) into <see cref="ClusterSettings"/>.</summary>
internal static class ClusterCommandLine
{
    public static ClusterSettings? Settings(string value, string? clusterId, double? leaseTtl, double? probeTimeout, Func<string, string?> environment)
    {
        string connectionString;
        try
        {
            connectionString = PostgresUrl.IsUrl(value) ? PostgresUrl.ToConnectionString(value) : new Npgsql.NpgsqlConnectionStringBuilder(value).ConnectionString;
        }
        catch (Exception ex) when (ex is FormatException or ArgumentException)
        {
            return null;
        }

        return Complete(new ClusterSettings(connectionString) { ClusterId = clusterId ?? environment("ETLFUNNEL_CLUSTER_ID") ?? "etlfunnel" }, leaseTtl, probeTimeout, environment);
    }

    /// <summary>
    /// The cluster of <c>cluster:</c> in flows.yaml (its connection string already resolved and checked by the config loader);
    /// <c>--cluster-id</c> wins over its <c>id:</c>, which wins over <c>ETLFUNNEL_CLUSTER_ID</c>.
    /// </summary>
    public static ClusterSettings FromConfig(ClusterConfig config, string? clusterId, double? leaseTtl, double? probeTimeout, Func<string, string?> environment) =>
        Complete(
            new ClusterSettings(config.ConnectionString)
            {
                ClusterId = clusterId ?? config.ClusterId ?? environment("ETLFUNNEL_CLUSTER_ID") ?? "etlfunnel",
                ConfiguredAt = $"{config.Location}: cluster:",
            },
            leaseTtl,
            probeTimeout,
            environment);

    private static ClusterSettings Complete(ClusterSettings settings, double? leaseTtl, double? probeTimeout, Func<string, string?> environment)
    {
        // The same lease length on callers and workers: the caller re-places a replica dispatched this long ago that never started.
        if (leaseTtl is null && double.TryParse(environment("ETLFUNNEL_CLUSTER_LEASE_TTL"), NumberStyles.Float, CultureInfo.InvariantCulture, out var fromEnvironment) && fromEnvironment > 0)
        {
            leaseTtl = fromEnvironment;
        }

        if (leaseTtl is { } ttl)
        {
            settings = settings with { LeaseTtl = TimeSpan.FromSeconds(ttl), MemberTtl = TimeSpan.FromSeconds(Math.Max(ttl, 2)) };
        }

        if (probeTimeout is { } probe)
        {
            settings = settings with { ProbeTimeout = TimeSpan.FromSeconds(probe) };
        }

        return settings;
    }

    internal static string Seconds(TimeSpan t) => t.TotalSeconds.ToString("0.#", CultureInfo.InvariantCulture);
}
