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

    [CommandOption("--cluster <CONN>")]
    [Description("Hand the scheduled full/incremental runs' pipeline replicas to the workers of this cluster (its state PostgreSQL database; docs/cluster.md); CDC flows stream on this machine.")]
    public string? Cluster { get; init; }

    [CommandOption("--cluster-id <ID>")]
    [Description("With --cluster (or cluster: in the config): which cluster in that database (default: the config's cluster id, else ETLFUNNEL_CLUSTER_ID, else etlfunnel).")]
    public string? ClusterId { get; init; }

    [CommandOption("--local")]
    [Description("Run on this machine even when the config names a cluster (cluster:).")]
    public bool Local { get; init; }

    public override ValidationResult Validate() =>
        Local && Cluster is not null ? ValidationResult.Error("--local and --cluster contradict each other: pass one of them")
        : base.Validate();
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

        // --cluster wins over 'cluster:' in the config; --local ignores the latter.
        EtlFunnel.Cluster.ClusterSettings? cluster = null;
        if (settings.Cluster is not null)
        {
            cluster = ClusterCommandLine.Settings(settings.Cluster, settings.ClusterId, null, null, _context.Environment);
            if (cluster is null)
            {
                await _context.Err.WriteLineAsync("error: --cluster: not a postgres:// URL nor an Npgsql connection string").ConfigureAwait(false);
                return ExitCodes.Usage;
            }
        }
        else if (!settings.Local && config.Cluster is { } configured)
        {
            cluster = ClusterCommandLine.FromConfig(configured, settings.ClusterId, null, null, _context.Environment);
            log.Information("Watching on cluster {Cluster} in {Server} ({Location:l}: cluster:); pass --local to run on this machine instead",
                cluster.ClusterId, cluster.Server, configured.Location.ToString());
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
            // On a cluster: one Orleans client for the process's lifetime (every scheduled run hands its replicas through it), and
            // the state database the status endpoints read the members from, on request.
            await using var onCluster = cluster is null ? null : new WatchCluster(cluster, _context.LoggerFactory, stop.Token);
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
                        // On a cluster the hooks see its live members, as with run --cluster (param.ClusterMachines).
                        var planInputs = inputs;
                        if (onCluster is not null)
                        {
                            try
                            {
                                planInputs = inputs with { ClusterMachines = await onCluster.MachinesAsync(ct).ConfigureAwait(false) };
                            }
                            catch (EtlFunnel.Cluster.ClusterException ex)
                            {
                                return ReloadResult.SourceUnreachable($"{cluster!.ConfiguredAt}: {ex.Message}");
                            }
                        }

                        plan = await Planning.PlanAsync(_context, planInputs, hooks, ct).ConfigureAwait(false);
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
                RunFlow = (run, ct) => onCluster is null ? RunFlowAsync(config, stateRoot, host, run, ct) : RunFlowOnClusterAsync(config, stateRoot, hooksDirectory, host, onCluster, run, ct),
                Cluster = onCluster?.Status,
                CdcFlows = [.. config.Flows.Where(f => f.Cdc is not null).Select(f => f.Name)],
                RunStream = (run, ct) => RunStreamAsync(config, stateRoot, host, run, ct),
                StreamShape = (model, flow) => StreamShape(config, (ExecutionPlan)model!, flow, host),
            };
            if (cluster is not null && options.CdcFlows.Count > 0)
            {
                log.Information("Flows {Flows:l} have mode: cdc: their streams run on this machine (watch), not on cluster {Cluster}; the other flows' scheduled runs go to the cluster's workers",
                    string.Join(", ", options.CdcFlows), cluster.ClusterId);
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

    /// <summary>
    /// Runs one configured flow on the cluster: the plan's replicas of that flow handed to the workers (they run the
    /// transformers of their own hooks folders), checkpoints in the cluster database under the flow's watch scope.
    /// </summary>
    private async Task<FlowRunResult> RunFlowOnClusterAsync(EtlConfig config, StateLocation stateRoot, string hooksDirectory, HookHost? host, WatchCluster cluster, FlowRunContext run, CancellationToken cancellationToken)
    {
        var whole = (ExecutionPlan)run.Plan.Model!;
        var plan = whole with { Flows = [.. whole.Flows.Where(f => f.Parent == run.Flow)] };
        if (plan.Flows.Length == 0)
        {
            return new FlowRunResult(RunOutcome.Succeeded, 0, 0, 0, 0, Report: new System.Text.Json.Nodes.JsonObject { ["cluster"] = "the plan has no replica of this flow" });
        }

        // The workers run the transformers of their own hooks folders, not the batch-level hooks: refuse rather than ignore
        // their write, termination, checkpoint and backlog rules (as run --cluster does). Looked up at each run: removing
        // the hook, or narrowing its AppliesTo, lets the next scheduled run go.
        var pipelineHooks = host is null ? [] : EtlFunnel.Runtime.Hooks.PipelineHooks.From(host);
        var applied = plan.AllPipelines()
            .Where(x => pipelineHooks.Any(h => h.AppliesTo(x.Flow.Parent, x.Pipeline.Table.Schema, x.Pipeline.Table.Name)))
            .Select(x => $"{x.Flow.Parent}/{x.Pipeline.Table}").Distinct(StringComparer.Ordinal).ToList();
        if (applied.Count > 0)
        {
            return FlowRunResult.Failed(
                $"batch-level hooks ({string.Join(", ", pipelineHooks.Select(h => h.Name).Distinct(StringComparer.Ordinal))}) apply to {string.Join(", ", applied.Take(5))}{(applied.Count > 5 ? ", …" : "")}, " +
                "but cluster runs do not run them yet; nothing was synced. Run watch with --local, or narrow the hook's AppliesTo so it leaves these tables out (see docs/data-hooks.md).");
        }

        var state = stateRoot.ForWatchedFlow(run.Flow);
        SyncJob job;
        try
        {
            // The job is the planner's side only: it exports the run's snapshot of the flow's source, which every worker imports.
            job = SyncJobBuilder.Build(plan, config, new SyncOptions
            {
                StateDirectory = state.Directory,
                StateTable = state.Table,
                DeadLetterDirectory = RunCommand.DeadLetterDirectoryFor(stateRoot.Directory),
                Mode = SyncMode.Incremental,
            }, _context.Environment, flow => flow == run.Flow);
        }
        catch (ConfigException ex)
        {
            return FlowRunResult.Failed(ex.Message);
        }

        var request = new EtlFunnel.Cluster.Running.ClusterRunRequest
        {
            Plan = plan,
            // Hashed at each run: a hooks edit here must reach every worker's folder before their replicas run again.
            HooksHash = EtlFunnel.Cluster.HooksFingerprint.Compute(hooksDirectory),
            Job = job,
            StateTable = stateRoot.Table?.Table ?? PostgresStateTable.DefaultTable,
            Scope = $"{stateRoot.Table?.Scope ?? PostgresStateTable.DefaultScope}/watch/{run.Flow}",
            Incremental = true,
        };
        _context.Log.Information("Flow {Flow}: handing {Replicas} pipeline replicas to cluster {Cluster} (run {RunId}, hooks {Hooks})",
            run.Flow, plan.AllPipelines().Count(), cluster.Settings.ClusterId, request.RunId, request.HooksHash);
        EtlFunnel.Cluster.Running.ClusterRunResult result;
        try
        {
            result = await cluster.Run.RunAsync(request, cancellationToken).ConfigureAwait(false);
        }
        catch (EtlFunnel.Cluster.ClusterException ex)
        {
            return FlowRunResult.Failed(ex.Message);
        }
        catch (SyncConfigurationException ex)
        {
            return FlowRunResult.Failed($"{ex.Message} (nothing was synced)");
        }

        var report = result.Report;
        var tables = RunSummary.ByTable(report, RunSummary.ParentOf(plan));
        var json = RunSummary.ToJson(report, tables, withReplicas: false);
        json["cluster"] = new System.Text.Json.Nodes.JsonObject
        {
            ["members"] = result.Members,
            ["takeovers"] = result.Takeovers,
            ["replicasPerMember"] = new System.Text.Json.Nodes.JsonObject(result.ReplicasPerMember.OrderBy(m => m.Key, StringComparer.Ordinal)
                .Select(m => KeyValuePair.Create(m.Key, (System.Text.Json.Nodes.JsonNode?)m.Value))),
        };
        _context.Log.Information("Flow {Flow} (plan version {Version}) on cluster {Cluster}: {Summary:l} Cluster: {Members} members; replicas per member: {PerMember:l}; takeovers: {Takeovers}",
            run.Flow, run.Plan.Version, cluster.Settings.ClusterId, report.Summary, result.Members,
            string.Join(", ", result.ReplicasPerMember.OrderBy(m => m.Key, StringComparer.Ordinal).Select(m => $"{m.Key}={m.Value}")), result.Takeovers);
        foreach (var (version, documents) in result.TransformerCounts.OrderBy(c => c.Key, StringComparer.Ordinal))
        {
            _context.Log.Information("Flow {Flow}: transformer {Transformer:l} wrote {Documents} documents (on the workers)", run.Flow, version, documents);
        }

        var outcome = report.Outcome switch
        {
            SyncOutcome.Succeeded => RunOutcome.Succeeded,
            SyncOutcome.Cancelled => RunOutcome.Cancelled,
            _ => RunOutcome.Failed,
        };
        var error = report.Outcome switch
        {
            SyncOutcome.CompletedWithRejections => $"{report.DeadLettered} document(s) rejected; dead letters are on the workers that wrote them",
            SyncOutcome.Failed => report.Replicas.FirstOrDefault(r => r.Error is not null) is { } failed ? $"{failed.Flow}/{failed.Replica}: {failed.Error}" : report.Summary,
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

    // What a CDC stream runs with: its lanes, its tables and which transformers apply to each table. A reload that changes any of
    // them (a new transformer file, an edited AppliesTo) restarts the stream from its checkpoint; an edit of a transformer's body
    // alone does not (it applies from the next batch of changes).
    private string? StreamShape(EtlConfig config, ExecutionPlan plan, string flow, HookHost? host)
    {
        var job = CdcJob(config, plan, flow, null);
        if (job.Flows.Count == 0)
        {
            return null;
        }

        var transformers = host is null ? [] : BatchTransformers.From(host);
        var tables = job.Flows
            .SelectMany(f => f.Pipelines.Select(p =>
            {
                var applying = transformers.Where(t => t.AppliesTo(f.ConfiguredFlow ?? f.Name, p.Schema, p.Table)).Select(t => t.Name).ToList();
                return $"{p.Schema}.{p.Table}{(applying.Count == 0 ? "" : " (" + string.Join(" → ", applying) + ")")}";
            }))
            .Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal);
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

/// <summary>
/// <c>watch</c> on a cluster: the one Orleans client every scheduled run shares (connecting from the start), the members the
/// hooks see, and the status the status endpoints read on request (cached for a second).
/// </summary>
internal sealed class WatchCluster : IAsyncDisposable
{
    private readonly Npgsql.NpgsqlDataSource _dataSource;
    private readonly ILoggerFactory _loggerFactory;

    public WatchCluster(EtlFunnel.Cluster.ClusterSettings settings, ILoggerFactory loggerFactory, CancellationToken lifetime)
    {
        Settings = settings;
        _loggerFactory = loggerFactory;
        Run = new EtlFunnel.Cluster.Running.ClusterRun(settings, loggerFactory) { KeepConnected = true };
        Run.StartConnecting(lifetime);
        _dataSource = EtlFunnel.Cluster.Worker.ClusterData.Open(settings);
        Status = new CachedReading<ClusterView>(ReadAsync, TimeSpan.FromSeconds(1));
    }

    public EtlFunnel.Cluster.ClusterSettings Settings { get; }

    /// <summary>Hands each run's replicas to the cluster, through one client.</summary>
    public EtlFunnel.Cluster.Running.ClusterRun Run { get; }

    /// <summary>The members and their replicas, for <c>/healthz</c>, the page and <c>/metrics</c>.</summary>
    public CachedReading<ClusterView> Status { get; }

    /// <summary>The live members for the hooks (waits up to 10 s for a first one; throws <see cref="EtlFunnel.Cluster.ClusterException"/> when none).</summary>
    public async Task<IReadOnlyList<EtlFunnel.Execution.Models.MachineInfo>> MachinesAsync(CancellationToken cancellationToken) =>
        [.. (await EtlFunnel.Cluster.Running.ClusterRun.MembersAsync(Settings, _loggerFactory, TimeSpan.FromSeconds(10), cancellationToken).ConfigureAwait(false)).Select(m => m.Machine)];

    private async Task<ClusterView> ReadAsync(CancellationToken cancellationToken)
    {
        var report = await EtlFunnel.Cluster.Status.ClusterStatusReader.ReadAsync(_dataSource, Settings, cancellationToken).ConfigureAwait(false);
        var perMember = report.ReplicasPerMember;
        return new ClusterView(report.ClusterId, report.Server,
            [.. report.Members.Where(m => m.Alive || perMember[m.Silo] > 0).Select(m => new ClusterMemberView(m.Name, m.Silo, m.Cores, m.Region, m.Alive, perMember[m.Silo]))],
            report.Failovers);
    }

    public async ValueTask DisposeAsync()
    {
        await Run.DisposeAsync().ConfigureAwait(false);
        Status.Dispose();
        await _dataSource.DisposeAsync().ConfigureAwait(false);
    }
}
