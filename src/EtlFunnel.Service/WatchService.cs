using Serilog;

namespace EtlFunnel.Service;

/// <summary>Everything <see cref="WatchService.RunAsync"/> needs; the planner, hook host and sync engine come in as delegates.</summary>
internal sealed record WatchServiceOptions
{
    /// <summary>Recompile/reload hooks if needed, discover, plan, diff against the active plan.</summary>
    public required Func<CancellationToken, Task<ReloadResult>> Replan { get; init; }

    /// <summary>Subscribes the callback to "the hooks changed" (e.g. the hook host's Reloaded event); returns the unsubscription.</summary>
    public required Func<Action, IDisposable> SubscribeHookChanges { get; init; }

    /// <summary>Runs one flow on the plan captured in the context; the token means "drain, checkpoint, return".</summary>
    public required Func<FlowRunContext, CancellationToken, Task<FlowRunResult>> RunFlow { get; init; }

    /// <summary>The flows and their intervals (see <see cref="FlowSchedules.Resolve"/>).</summary>
    public required IReadOnlyList<FlowSchedule> Schedules { get; init; }

    /// <summary>The flows.yaml the service loaded, watched for a restart-needed notice; null to not watch.</summary>
    public string? ConfigPath { get; init; }

    /// <summary>The config content the service actually loaded (defaults to the file's content at start).</summary>
    public byte[]? LoadedConfig { get; init; }

    /// <summary><c>--status-url</c>; null for no status server.</summary>
    public string? StatusUrl { get; init; }

    /// <summary>Called with the bound status URL once the server listens.</summary>
    public Action<Uri>? OnListening { get; init; }

    /// <summary>The state to publish into (a fresh one if null).</summary>
    public ServiceState? State { get; init; }

    /// <summary>The service clock.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>The service log.</summary>
    public required ILogger Log { get; init; }
}

/// <summary>The watch loop: first plan, status server, hook and config watching, the schedule, and a draining stop.</summary>
internal static class WatchService
{
    /// <summary>Runs until <paramref name="shutdown"/> (SIGTERM / Ctrl-C) and then drains; returns the exit code (0).</summary>
    public static async Task<int> RunAsync(WatchServiceOptions options, CancellationToken shutdown)
    {
        ArgumentNullException.ThrowIfNull(options);
        var log = options.Log.ForContext(typeof(WatchService));
        var state = options.State ?? new ServiceState(options.Time);

        // Start listening first: a port conflict fails the start-up before anything runs.
        StatusServer? server = null;
        if (options.StatusUrl is not null)
        {
            server = await StatusServer.StartAsync(options.StatusUrl, state, shutdown).ConfigureAwait(false);
            log.Information("Status page on {Url} (/healthz, /plan, /runs, /metrics)", server.BoundUrl);
            options.OnListening?.Invoke(server.BoundUrl);
        }

        try
        {
            var reloader = new PlanReloader(options.Replan, state, options.Log);
            try
            {
                await reloader.ReloadNowAsync(shutdown).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (shutdown.IsCancellationRequested)
            {
                log.Information("Stopped before the first plan");
                return 0;
            }

            using var hookChanges = options.SubscribeHookChanges(() => reloader.Trigger(shutdown));
            using var configWatcher = options.ConfigPath is null
                ? null
                : new ConfigChangeWatcher(
                    options.ConfigPath,
                    options.LoadedConfig ?? await File.ReadAllBytesAsync(options.ConfigPath, shutdown).ConfigureAwait(false),
                    state,
                    options.Log);

            await using var scheduler = new FlowScheduler(options.Schedules, options.RunFlow, state, options.Time, options.Log);
            await scheduler.RunAsync(shutdown).ConfigureAwait(false);
            await reloader.WhenIdleAsync().ConfigureAwait(false);
            log.Information("Stopped: runs drained");
            return 0;
        }
        finally
        {
            if (server is not null)
            {
                await server.DisposeAsync().ConfigureAwait(false);
            }
        }
    }
}
