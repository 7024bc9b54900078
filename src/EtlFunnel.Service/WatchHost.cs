using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace EtlFunnel.Service;

/// <summary>
/// The watch service on the Generic Host: <see cref="WatchBackgroundService"/> as the one hosted service, the console
/// lifetime (or the systemd lifetime with <c>READY=1</c>/<c>STOPPING=1</c> notifications when started by systemd),
/// <see cref="WatchServiceOptions"/> validated when the host starts, and the caller's logger factory.
/// </summary>
internal static class WatchHost
{
    /// <summary>Builds the host; <see cref="WatchServiceOptions.Log"/> becomes the host's logger factory.</summary>
    public static IHost Build(WatchServiceOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        // The caller owns the factory (the CLI's Serilog); an instance registration is not disposed by the container.
        builder.Services.Replace(ServiceDescriptor.Singleton(options.Log));
        builder.Services.Configure<ConsoleLifetimeOptions>(o => o.SuppressStatusMessages = true);
        builder.Services.Configure<HostOptions>(o =>
        {
            // Stopping drains runs in flight to their next checkpoint, however long a batch takes (systemd's TimeoutStopSec bounds it).
            o.ShutdownTimeout = Timeout.InfiniteTimeSpan;
            o.BackgroundServiceExceptionBehavior = BackgroundServiceExceptionBehavior.StopHost;
        });
        builder.Services.AddSystemd();
        builder.Services.AddSingleton<IOptionsFactory<WatchServiceOptions>>(sp => new PreparedOptionsFactory(options, sp.GetServices<IValidateOptions<WatchServiceOptions>>()));
        builder.Services.AddSingleton<IValidateOptions<WatchServiceOptions>, WatchServiceOptionsValidator>();
        builder.Services.AddOptions<WatchServiceOptions>().ValidateOnStart();
        builder.Services.AddSingleton<WatchBackgroundService>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<WatchBackgroundService>());
        return builder.Build();
    }

    /// <summary>
    /// Runs the service until <paramref name="stop"/> or a host shutdown (SIGTERM, Ctrl-C, systemd stop), then drains.
    /// Returns the service's exit code; rethrows what stopped it (e.g. <see cref="IOException"/> for a status port in use)
    /// and throws <see cref="OptionsValidationException"/> for invalid options before anything runs.
    /// </summary>
    public static async Task<int> RunAsync(WatchServiceOptions options, CancellationToken stop)
    {
        using var host = Build(options);
        var lifetime = host.Services.GetRequiredService<IHostApplicationLifetime>();
        var service = host.Services.GetRequiredService<WatchBackgroundService>();
        using var registration = stop.Register(lifetime.StopApplication);
        await host.StartAsync(CancellationToken.None).ConfigureAwait(false);
        await host.WaitForShutdownAsync(CancellationToken.None).ConfigureAwait(false);
        if (service.Failure is { } failure)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        }

        return service.ExitCode;
    }

    /// <summary>Hands out the options the caller built (records with delegates, not bindable from configuration), validated.</summary>
    private sealed class PreparedOptionsFactory(WatchServiceOptions options, IEnumerable<IValidateOptions<WatchServiceOptions>> validators)
        : IOptionsFactory<WatchServiceOptions>
    {
        public WatchServiceOptions Create(string name)
        {
            var failures = validators.Select(v => v.Validate(name, options)).Where(r => r.Failed).SelectMany(r => r.Failures ?? []).ToList();
            return failures.Count == 0 ? options : throw new OptionsValidationException(name, typeof(WatchServiceOptions), failures);
        }
    }
}

/// <summary>The <c>watch</c> loop as the host's one <see cref="BackgroundService"/>; the host stops when it returns.</summary>
internal sealed class WatchBackgroundService(IOptions<WatchServiceOptions> options, IHostApplicationLifetime lifetime) : BackgroundService
{
    /// <summary>What <see cref="WatchService.RunAsync"/> returned.</summary>
    public int ExitCode { get; private set; }

    /// <summary>What made the service stop, if it did not return; the host rethrows it to the command.</summary>
    public Exception? Failure { get; private set; }

    /// <inheritdoc/>
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            ExitCode = await WatchService.RunAsync(options.Value, stoppingToken).ConfigureAwait(false);
        }
#pragma warning disable CA1031 // Kept and rethrown by WatchHost.RunAsync, so the command reports it (the host would only log it).
        catch (Exception e)
#pragma warning restore CA1031
        {
            Failure = e;
        }
        finally
        {
            lifetime.StopApplication();
        }
    }
}

/// <summary>Checks the service's options when the host starts: flows to schedule, positive intervals, a loopback status URL.</summary>
internal sealed class WatchServiceOptionsValidator : IValidateOptions<WatchServiceOptions>
{
    /// <inheritdoc/>
    public ValidateOptionsResult Validate(string? name, WatchServiceOptions options)
    {
        var failures = new List<string>();
        if (options.Schedules.Count == 0 && options.CdcFlows.Count == 0)
        {
            failures.Add("there is no flow to watch: add a flow to the config's 'flows:'");
        }

        foreach (var s in options.Schedules.Where(s => s.Interval <= TimeSpan.Zero))
        {
            failures.Add($"flow {s.Flow}: the interval must be positive, got {s.Interval}");
        }

        if (options.CdcFlows.Count > 0 && (options.RunStream is null || options.StreamShape is null))
        {
            failures.Add("CDC flows are configured but the service has no way to stream them (RunStream/StreamShape not set)");
        }

        foreach (var flow in options.Schedules.Select(s => s.Flow).Concat(options.CdcFlows).GroupBy(f => f, StringComparer.Ordinal).Where(g => g.Count() > 1))
        {
            failures.Add($"flow {flow.Key} is scheduled {flow.Count()} times; flow names must be unique");
        }

        if (options.StatusUrl is not null)
        {
            try
            {
                _ = StatusServer.ParseUrl(options.StatusUrl, options.AllowNonLoopbackStatus);
            }
            catch (FormatException e)
            {
                failures.Add(e.Message);
            }
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
