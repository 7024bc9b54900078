using System.ComponentModel;
using EtlFunnel.Cli.Hosting;
using EtlFunnel.Cli.Running;
using EtlFunnel.Orchestration.Config;
using EtlFunnel.Orchestration.Discovery;
using EtlFunnel.Orchestration.Plans;
using EtlFunnel.Runtime.Hooks;
using EtlFunnel.Runtime.Jobs;
using EtlFunnel.Runtime.State;
using EtlFunnel.Scripting;
using EtlFunnel.Service;
using EtlFunnel.Sync;
using Microsoft.Extensions.Logging;
using Spectre.Console;
using Spectre.Console.Cli;

namespace EtlFunnel.Cli.Commands;

internal sealed class WatchSettings : PlanInputSettings
{
    [CommandOption("--interval <DURATION>")]
    [Description("Interval of every flow that sets no 'interval:' of its own (overrides the config's global 'interval:'; default 5m). E.g. 30s, 5m, 1h30m.")]
    public string? Interval { get; init; }

    [CommandOption("--status-url <URL>")]
    [Description("Serve /, /livez, /readyz, /healthz, /plan, /runs, /metrics here: http://127.0.0.1:PORT (loopback only unless --status-allow-remote; port 0 picks a free one).")]
    public string? StatusUrl { get; init; }

    [CommandOption("--status-allow-remote")]
    [Description("Let --status-url name a non-loopback address (e.g. http://0.0.0.0:9464). The endpoints have no authentication: firewall them or put an authenticating proxy in front.")]
    public bool StatusAllowRemote { get; init; }

    [CommandOption("--state <DIR|URL>")]
    [Description("Checkpoint folder or postgres:// URL of a checkpoint table; overrides 'state:' in the config. Each flow keeps its checkpoints in <state>/watch/<flow> (a table: scope <scope>/watch/<flow>).")]
    public string? State { get; init; }
}

/// <summary><c>etlfunnel watch</c>: <see cref="WatchService"/> wired to the hook host (watching), the planner and the sync engine.</summary>
internal sealed class WatchCommand : AsyncCommand<WatchSettings>
{
    private readonly CliContext _context;

    public WatchCommand(CliContext context) => _context = context;

    public override async Task<int> ExecuteAsync(CommandContext context, WatchSettings settings, CancellationToken cancellationToken)
    {
        var log = _context.Log;
        byte[] loadedConfig;
        try
        {
            // The bytes the service runs with, read before parsing so a later edit is always noticed.
            loadedConfig = await File.ReadAllBytesAsync(settings.Config!, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            await _context.Err.WriteLineAsync($"{settings.Config}: cannot read the config file: {ex.Message}").ConfigureAwait(false);
            return ExitCodes.Usage;
        }

        var (inputs, exitCode) = await Planning.LoadInputsAsync(_context, settings.Config!, settings.Machine, cancellationToken).ConfigureAwait(false);
        if (inputs is null)
        {
            return exitCode;
        }

        var config = inputs.Config;
        IReadOnlyList<FlowSchedule> schedules;
        StateLocation stateRoot;
        try
        {
            if (settings.StatusUrl is not null)
            {
                _ = StatusServer.ParseUrl(settings.StatusUrl, settings.StatusAllowRemote);
            }

            if (config.Interval is not null)
            {
                _ = Service.Interval.Parse(config.Interval, $"{config.IntervalLocation}: interval");
            }

            // CDC flows are not scheduled: each runs as one long-lived stream (see RunStreamAsync).
            schedules = FlowSchedules.Resolve(
                config.Flows.Where(f => f.Cdc is null).Select(f => (f.Name, f.Interval, (f.IntervalLocation ?? f.Location).ToString())),
                settings.Interval ?? config.Interval);
            stateRoot = StateLocation.Resolve(settings.State, config);
        }
        catch (Exception ex) when (ex is FormatException or ConfigException)
        {
            await _context.Err.WriteLineAsync($"error: {ex.Message}").ConfigureAwait(false);
            return ExitCodes.Usage;
        }

        var hooksDirectory = settings.Hooks ?? config.HooksDirectory ?? HooksFolder.DefaultDirectory;
        HookHost? host = null;
        if (Directory.Exists(hooksDirectory))
        {
            try
            {
                host = await HookHost.LoadAsync(HostedHooks.Options(hooksDirectory, new HookSettings(config.HooksIsolation, config.HooksEnvironment) { Log = Planning.HookLogTo(_context.Log) }) with { Watch = true }, cancellationToken).ConfigureAwait(false);
            }
            catch (HookIsolationException ex)
            {
                await _context.Err.WriteLineAsync($"error: {ex.Message}").ConfigureAwait(false);
                return ExitCodes.Usage;
            }

            foreach (var layer in host.IsolationLayers)
            {
                log.Information("Hook isolation: {Layer}", layer.ToString());
            }
        }
        else if (settings.Hooks is not null || config.HooksDirectory is not null)
        {
            await _context.Err.WriteLineAsync($"error: the hooks folder '{hooksDirectory}' does not exist; create it or point --hooks (or 'hooks:' in the config) at the right folder").ConfigureAwait(false);
            return ExitCodes.Usage;
        }
        else
        {
            log.Information("No {Directory} folder here: one replica per flow and per table (create it to add hooks, then restart)", hooksDirectory);
        }

        await using (host)
        {
            using var signal = ShutdownSignal.Register(_context.LoggerFactory);
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, signal.Token);
            IOrchestrationHooks hooks = host is null ? new NoHooks() : host;
            ExecutionPlan? previous = null;
            var hooksFolderGone = false;
            var options = new WatchServiceOptions
            {
                Log = _context.LoggerFactory,
                Schedules = schedules,
                ConfigPath = Path.GetFullPath(settings.Config!),
                LoadedConfig = loadedConfig,
                StatusUrl = settings.StatusUrl,
                AllowNonLoopbackStatus = settings.StatusAllowRemote,
                HookIsolation = host is null ? [] : [.. host.IsolationLayers.Select(l => l.ToString())],
                Replan = async ct =>
                {
                    // A folder that vanished (a bad deploy, an unmounted volume) is a broken reload, not "no hooks".
                    if (host is not null && !Directory.Exists(hooksDirectory))
                    {
                        hooksFolderGone = true;
                        return ReloadResult.Broken([$"{Path.GetFullPath(hooksDirectory)}: error: the hooks folder is gone; restore it (the last good plan stays active, and the next run or edit reloads it)"]);
                    }

                    if (host is not null && hooksFolderGone)
                    {
                        // The worker's sandbox and file watcher are bound to the folder that is gone: a new worker on the restored one.
                        hooksFolderGone = false;
                        await host.RestartAsync(ct).ConfigureAwait(false);
                    }

                    var errors = host?.Diagnostics.Where(d => string.Equals(d.Severity, "error", StringComparison.OrdinalIgnoreCase)).Select(d => d.ToString()).ToList() ?? [];
                    if (errors.Count > 0)
                    {
                        return ReloadResult.Broken(errors);
                    }

                    ExecutionPlan plan;
                    try
                    {
                        plan = await Planning.PlanAsync(_context, inputs, hooks, ct).ConfigureAwait(false);
                    }
                    catch (DiscoveryException ex) when (ex.InnerException is Npgsql.NpgsqlException { IsTransient: true } or TimeoutException)
                    {
                        return ReloadResult.SourceUnreachable(ex.Message);
                    }
                    catch (Exception ex) when (Planning.Describe(ex) is { } lines)
                    {
                        return ReloadResult.Broken(lines);
                    }

                    var diff = previous is null ? [] : DiffLines(PlanDiff.Compare(previous, plan));
                    previous = plan;
                    return ReloadResult.Ok(PlanJson.Serialize(plan), plan, diff);
                },
                SubscribeHookChanges = callback =>
                {
                    if (host is null)
                    {
                        return new Subscription(() => { });
                    }

                    void OnReloaded(object? sender, HookReloadedEventArgs e) => callback();
                    host.Reloaded += OnReloaded;
                    return new Subscription(() => host.Reloaded -= OnReloaded);
                },
                RunFlow = (run, ct) => RunFlowAsync(config, stateRoot, host, run, ct),
                CdcFlows = [.. config.Flows.Where(f => f.Cdc is not null).Select(f => f.Name)],
                RunStream = (run, ct) => RunStreamAsync(config, stateRoot, host, run, ct),
                StreamShape = (model, flow) => StreamShape(config, (ExecutionPlan)model!, flow),
            };
            if (config.Cluster is { } cluster)
            {
                log.Warning("{Location:l}: cluster: is used by 'etlfunnel run' and 'etlfunnel worker'; watch runs its flows on this machine (watch on a cluster is not built yet)",
                    cluster.Location.ToString());
            }

            foreach (var flow in config.Flows.Where(f => f.Cdc is not null && f.Interval is not null))
            {
                log.Warning("Flow {Flow} has mode: cdc, so it streams continuously; its interval: ({Location}) is ignored", flow.Name, (flow.IntervalLocation ?? flow.Location).ToString());
            }


            try
            {
                return await WatchHost.RunAsync(options, stop.Token).ConfigureAwait(false);
            }
            catch (IOException ex)
            {
                await _context.Err.WriteLineAsync($"error: {ex.Message}").ConfigureAwait(false);
                return ExitCodes.Failure;
            }
            catch (Microsoft.Extensions.Options.OptionsValidationException ex)
            {
                foreach (var failure in ex.Failures)
                {
                    await _context.Err.WriteLineAsync($"error: {failure}").ConfigureAwait(false);
                }

                return ExitCodes.Usage;
            }
        }
    }

    /// <summary>One line per change: <c>flow shop: + shop_core_2/sales.orders_partition_1: sales.orders -> sales_orders [5/8, 3/4)</c>.</summary>
    internal static IReadOnlyList<string> DiffLines(PlanDiffResult diff) =>
        [.. diff.Flows.SelectMany(f => f.Changes.Select(c => c.Kind switch
        {
            ReplicaChangeKind.Appeared => $"flow {f.Flow}: + {c.Replica}: {c.After}",
            ReplicaChangeKind.Vanished => $"flow {f.Flow}: - {c.Replica}: {c.Before}",
            ReplicaChangeKind.PropsChanged => $"flow {f.Flow}: ~ {c.Replica} props {c.Before} -> {c.After}",
            _ => $"flow {f.Flow}: ~ {c.Replica} {c.Before} -> {c.After}",
        })),];

    /// <summary>Runs one configured flow on the plan captured when the run started; incremental where the pipelines say so.</summary>
    private async Task<FlowRunResult> RunFlowAsync(EtlConfig config, StateLocation stateRoot, HookHost? host, FlowRunContext run, CancellationToken cancellationToken)
    {
        var plan = (ExecutionPlan)run.Plan.Model!;
        // One state folder (or scope) per flow: flows run independently, and one run manifest each keeps their resumes apart.
        var state = stateRoot.ForWatchedFlow(run.Flow);
        // The folder's transformers as loaded now: a transformer added or edited since the last run applies to this one, and
        // an edit during the run applies from the next batch (each batch looks its transformer up again).
        IReadOnlyList<EtlFunnel.Sync.Transforming.IBatchTransformer> transformers = host is null ? [] : BatchTransformers.From(host);
        var options = new SyncOptions
        {
            StateDirectory = state.Directory,
            StateTable = state.Table,
            DeadLetterDirectory = RunCommand.DeadLetterDirectoryFor(stateRoot.Directory),
            Mode = SyncMode.Incremental,
            Transformers = transformers,
            TransformerCounts = transformers.Count > 0 ? new EtlFunnel.Sync.Transforming.TransformerCounts() : null,
            // Batch-level hooks as loaded now (each call looks its script up again); a stopped replica resumes in the next run.
            PipelineHooks = host is null ? [] : EtlFunnel.Runtime.Hooks.PipelineHooks.From(host),
        };

        SyncReport report;
        try
        {
            var job = SyncJobBuilder.Build(plan, config, options, _context.Environment, flow => flow == run.Flow);
            report = await RunExecution.RunAsync(_context, plan, job, showProgress: false, cancellationToken).ConfigureAwait(false);
        }
        catch (SyncConfigurationException ex)
        {
            return FlowRunResult.Failed(ex.Message);
        }

        var tables = RunSummary.ByTable(report, RunSummary.ParentOf(plan));
        var json = RunSummary.ToJson(report, tables, withReplicas: false);
        _context.Log.Information("Flow {Flow} (plan version {Version}): {Summary:l}", run.Flow, run.Plan.Version, report.Summary);
        foreach (var (version, documents) in (options.TransformerCounts?.Snapshot() ?? new Dictionary<string, long>()).OrderBy(c => c.Key, StringComparer.Ordinal))
        {
            _context.Log.Information("Flow {Flow}: transformer {Transformer:l} wrote {Documents} documents", run.Flow, version, documents);
        }
        foreach (var stopped in report.Replicas.Where(r => r.StoppedBy is not null))
        {
            _context.Log.Information("Flow {Flow}: replica {Replica} ({Table}) stopped by {StoppedBy:l}; the next run resumes it", run.Flow, stopped.Replica, stopped.Table, stopped.StoppedBy);
        }

        var outcome = report.Outcome switch
        {
            SyncOutcome.Succeeded or SyncOutcome.Stopped => RunOutcome.Succeeded,
            SyncOutcome.Cancelled => RunOutcome.Cancelled,
            _ => RunOutcome.Failed,
        };
        var error = report.Outcome switch
        {
            SyncOutcome.CompletedWithRejections => $"{report.DeadLettered} document(s) rejected; dead letters in {report.DeadLetterFile}",
            SyncOutcome.Failed => report.Replicas.FirstOrDefault(r => r.Error is not null)?.Error ?? report.Summary,
            _ => null,
        };
        return new FlowRunResult(outcome, report.RowsRead, report.DocsIndexed, report.DeadLettered, report.Retries, error, json);
    }

    /// <summary>What a CDC flow's stream runs with on <paramref name="plan"/>: its lane count and tables (null when the plan has no replica of it).</summary>
    private SyncJob CdcJob(EtlConfig config, ExecutionPlan plan, string flow, StateLocation? stateRoot) =>
        SyncJobBuilder.Build(plan, config, new SyncOptions
        {
            // The same state as `run --mode cdc` (<state>/cdc/<slot>): the two can take turns on one flow without a new snapshot.
            StateDirectory = stateRoot?.Directory ?? ".",
            StateTable = stateRoot?.Table,
            DeadLetterDirectory = stateRoot is null ? "." : RunCommand.DeadLetterDirectoryFor(stateRoot.Directory),
        }, _context.Environment, f => f == flow);

    private string? StreamShape(EtlConfig config, ExecutionPlan plan, string flow)
    {
        var job = CdcJob(config, plan, flow, null);
        if (job.Flows.Count == 0)
        {
            return null;
        }

        var tables = job.Flows.SelectMany(f => f.Pipelines).Select(p => $"{p.Schema}.{p.Table}").Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal);
        return $"{EtlFunnel.Sync.Cdc.CdcEngine.LaneCount(job.Flows)} lane(s); {string.Join(", ", tables)}";
    }

    /// <summary>Streams one CDC flow on the plan captured when the stream started, until the token says stop (drain, acknowledge) or it fails.</summary>
    private async Task<FlowRunResult> RunStreamAsync(EtlConfig config, StateLocation stateRoot, HookHost? host, CdcStreamContext run, CancellationToken cancellationToken)
    {
        var plan = (ExecutionPlan)run.Plan.Model!;
        // The folder's transformers as loaded when the stream starts apply to its snapshot and its changes; an edit while it
        // streams applies from the next batch of changes (each batch looks its transformer up again), a broken edit keeps the last good version.
        IReadOnlyList<EtlFunnel.Sync.Transforming.IBatchTransformer> transformers = host is null ? [] : BatchTransformers.From(host);
        var counts = transformers.Count > 0 ? new EtlFunnel.Sync.Transforming.TransformerCounts() : null;

        EtlFunnel.Sync.Cdc.CdcReport report;
        try
        {
            var job = CdcJob(config, plan, run.Flow, stateRoot);
            job = job with { Options = job.Options with { Transformers = transformers, TransformerCounts = counts } };
            var options = new EtlFunnel.Sync.Cdc.CdcRunOptions
            {
                OnStatus = s => run.Report(new StreamProgress(
                    s.Phase == EtlFunnel.Sync.Cdc.CdcPhase.Streaming, s.Lanes, s.AppliedLsn, s.LagBytes,
                    s.Phase == EtlFunnel.Sync.Cdc.CdcPhase.Streaming ? s.LagSeconds : null, s.ChangesApplied)),
            };
            report = await new EtlFunnel.Sync.Cdc.CdcEngine(_context.LoggerFactory.CreateLogger<EtlFunnel.Sync.Cdc.CdcEngine>()).RunAsync(job, options, null, cancellationToken).ConfigureAwait(false);
        }
        catch (SyncConfigurationException ex)
        {
            return FlowRunResult.Failed(ex.Message);
        }

        var json = new System.Text.Json.Nodes.JsonObject
        {
            ["mode"] = "cdc",
            ["snapshotDocuments"] = report.Snapshot?.DocsIndexed,
            ["changesApplied"] = report.ChangesApplied,
            ["versionConflicts"] = report.VersionConflicts,
            ["deadLettered"] = report.DeadLettered,
            ["confirmedLsn"] = report.ConfirmedLsn,
        };
        var outcome = report.Outcome switch
        {
            SyncOutcome.Succeeded => RunOutcome.Succeeded,
            SyncOutcome.Cancelled => RunOutcome.Cancelled,
            _ => RunOutcome.Failed,
        };
        foreach (var (version, documents) in (counts?.Snapshot() ?? new Dictionary<string, long>()).OrderBy(c => c.Key, StringComparer.Ordinal))
        {
            _context.Log.Information("Flow {Flow}: transformer {Transformer:l} wrote {Documents} documents", run.Flow, version, documents);
        }

        var docs = report.ChangesApplied + (report.Snapshot?.DocsIndexed ?? 0);
        return new FlowRunResult(outcome, report.ChangesApplied + (report.Snapshot?.RowsRead ?? 0), docs, report.DeadLettered + (report.Snapshot?.DeadLettered ?? 0),
            report.Snapshot?.Retries ?? 0, outcome == RunOutcome.Failed ? report.Error ?? "the CDC stream failed" : null, json);
    }

    private sealed class Subscription(Action dispose) : IDisposable
    {
        public void Dispose() => dispose();
    }
}
