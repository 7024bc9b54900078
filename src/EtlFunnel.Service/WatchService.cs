using Microsoft.Extensions.Logging;

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

    /// <summary>
    /// Re-plan (rediscover tables, refresh stats for the hooks) before every run, so new tables join, dropped ones leave;
    /// a failed re-plan keeps the last good plan. Default on; off, only hook edits re-plan.
    /// </summary>
    public bool ReplanEveryRun { get; init; } = true;

    /// <summary>The configured flows with <c>mode: cdc</c>: run as long-lived streams (see <see cref="CdcStreamSupervisor"/>), not scheduled.</summary>
    public IReadOnlyList<string> CdcFlows { get; init; } = [];

    /// <summary>Streams one CDC flow on the plan captured in the context until the token is cancelled (drain, acknowledge, return) or it fails.</summary>
    public Func<CdcStreamContext, CancellationToken, Task<FlowRunResult>>? RunStream { get; init; }

    /// <summary>What a CDC flow's stream runs with on a plan's model (lane count, tables), or null when the plan has no replica of it; a change restarts the stream.</summary>
    public Func<object?, string, string?>? StreamShape { get; init; }

    /// <summary>The flows and their intervals (see <see cref="FlowSchedules.Resolve"/>).</summary>
    public required IReadOnlyList<FlowSchedule> Schedules { get; init; }

    /// <summary>The flows.yaml the service loaded, watched for a restart-needed notice; null to not watch.</summary>
    public string? ConfigPath { get; init; }

    /// <summary>The config content the service actually loaded (defaults to the file's content at start).</summary>
    public byte[]? LoadedConfig { get; init; }

    /// <summary><c>--status-url</c>; null for no status server.</summary>
    public string? StatusUrl { get; init; }

    /// <summary><c>--status-allow-remote</c>: the status URL may name a non-loopback address (the endpoints have no authentication).</summary>
    public bool AllowNonLoopbackStatus { get; init; }

    /// <summary>Called with the bound status URL once the server listens.</summary>
    public Action<Uri>? OnListening { get; init; }

    /// <summary>The state to publish into (a fresh one if null).</summary>
    public ServiceState? State { get; init; }

    /// <summary>The cluster the scheduled runs go to (<c>watch --cluster</c> or <c>cluster:</c>), for the status endpoints; null on one machine.</summary>
    public CachedReading<ClusterView>? Cluster { get; init; }

    /// <summary>The hook worker's isolation layers as detected at start (shown by <c>/healthz</c> and the status page).</summary>
    public IReadOnlyList<string> HookIsolation { get; init; } = [];

    /// <summary>The service clock.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>The service log.</summary>
    public required ILoggerFactory Log { get; init; }
}

/// <summary>The watch loop: first plan, status server, hook and config watching, the schedule, and a draining stop.</summary>
internal static class WatchService
{
    /// <summary>Runs until <paramref name="shutdown"/> (SIGTERM / Ctrl-C) and then drains; returns the exit code (0).</summary>
    public static async Task<int> RunAsync(WatchServiceOptions options, CancellationToken shutdown)
    {
        ArgumentNullException.ThrowIfNull(options);
        var log = options.Log.CreateLogger(typeof(WatchService));
        var state = options.State ?? new ServiceState(options.Time);
        state.SetHookIsolation(options.HookIsolation);

        // Start listening first: a port conflict fails the start-up before anything runs.
        StatusServer? server = null;
        if (options.StatusUrl is not null)
        {
            server = await StatusServer.StartAsync(options.StatusUrl, state, shutdown, options.AllowNonLoopbackStatus, options.Cluster).ConfigureAwait(false);
            log.LogInformation("Status page on {Url:l} (/livez, /readyz, /healthz, /plan, /runs, /metrics)", server.BoundUrl.ToString());
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
                log.LogInformation("Stopped before the first plan");
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

            var streams = options.CdcFlows.Count == 0
                ? Task.CompletedTask
                : new CdcStreamSupervisor(
                    options.CdcFlows,
                    options.RunStream ?? throw new InvalidOperationException("CDC flows need WatchServiceOptions.RunStream"),
                    options.StreamShape ?? throw new InvalidOperationException("CDC flows need WatchServiceOptions.StreamShape"),
                    state,
                    options.Time,
                    options.Log).RunAsync(shutdown);
            await using (var scheduler = new FlowScheduler(options.Schedules, options.ReplanEveryRun ? ReplanThenRun : options.RunFlow, state, options.Time, options.Log))
            {
                await scheduler.RunAsync(shutdown).ConfigureAwait(false);
            }

            await streams.ConfigureAwait(false);
            await reloader.WhenIdleAsync().ConfigureAwait(false);
            log.LogInformation("Stopped: runs drained");
            return 0;

            // Each run starts from a fresh discovery; it runs on whatever plan is active after it (the last good one if it failed).
            async Task<FlowRunResult> ReplanThenRun(FlowRunContext run, CancellationToken cancellationToken)
            {
                await reloader.ReloadNowAsync(cancellationToken).ConfigureAwait(false);
                var now = state.Snapshot;
                if (now.SourceUnreachable is { } unreachable)
                {
                    return FlowRunResult.Failed($"source unreachable: {unreachable}");
                }

                if (now.Plan is null)
                {
                    return await options.RunFlow(run, cancellationToken).ConfigureAwait(false);
                }

                if (now.Plan.Version != run.Plan.Version)
                {
                    log.LogInformation("Flow {Flow}: re-planned before the run; it runs plan version {PlanVersion}", run.Flow, now.Plan.Version);
                }

                var result = await options.RunFlow(run with { AtStart = now }, cancellationToken).ConfigureAwait(false);
                return result with { PlanVersion = now.Plan.Version };
            }
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
