using System.ComponentModel;
using EtlFunnel.Cli.Hosting;
using EtlFunnel.Cli.Running;
using EtlFunnel.Destinations;
using EtlFunnel.Orchestration.Config;
using EtlFunnel.Runtime.Jobs;
using EtlFunnel.Runtime.State;
using EtlFunnel.Service;
using EtlFunnel.Sync;
using Spectre.Console;
using Spectre.Console.Cli;

namespace EtlFunnel.Cli.Commands;

/// <summary>Which rows a run reads.</summary>
internal enum RunMode
{
    /// <summary>Every pipeline reads its whole partition.</summary>
    Full,

    /// <summary>Pipelines with <c>incremental:</c> read rows above their last watermark; the others read everything.</summary>
    Incremental,

    /// <summary>Change data capture: snapshot once, then stream the WAL (see docs/cdc.md).</summary>
    Cdc,
}

internal sealed class RunSettings : PlanInputSettings
{
    [CommandOption("--report <FILE>")]
    [Description("Also write the run report as JSON to this file.")]
    public string? Report { get; init; }

    [CommandOption("--state <DIR|URL>")]
    [Description("Checkpoint folder, or a PostgreSQL table given as postgres://user:password@host:5432/db; overrides 'state:' in the config (default .etlfunnel/state beside the config). Dead letters go to the folder's sibling 'dead-letter'.")]
    public string? State { get; init; }

    [CommandOption("--mode <MODE>")]
    [Description("full, incremental or cdc (default: cdc when every flow says 'mode: cdc', else full).")]
    public RunMode? Mode { get; init; }

    [CommandOption("--until-caught-up")]
    [Description("With --mode cdc: exit 0 once every change committed before streaming began is applied (CI, batch); without it CDC streams until Ctrl-C.")]
    public bool UntilCaughtUp { get; init; }

    [CommandOption("--cluster <CONN>")]
    [Description("Plan here, then run the pipeline replicas on the workers of this cluster (its state PostgreSQL database; docs/cluster.md).")]
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

/// <summary><c>etlfunnel run</c>: the plan of <c>etlfunnel plan</c>, executed by the sync engine, with progress and a report.</summary>
internal sealed class RunCommand : AsyncCommand<RunSettings>
{
    private readonly CliContext _context;

    public RunCommand(CliContext context) => _context = context;

    /// <summary>The dead-letter folder that goes with a state folder: its sibling <c>dead-letter</c>.</summary>
    private static async Task<IReadOnlyList<EtlFunnel.Execution.Models.MachineInfo>?> MachinesOf(
        Task<(IReadOnlyList<EtlFunnel.Execution.Models.MachineInfo>? Machines, EtlFunnel.Cluster.Running.ClusterRun? Run, int ExitCode)> members) =>
        (await members.ConfigureAwait(false)).Machines;

    public static string DeadLetterDirectoryFor(string stateDirectory) =>
        Path.Combine(Path.GetDirectoryName(Path.GetFullPath(stateDirectory).TrimEnd(Path.DirectorySeparatorChar)) ?? ".", "dead-letter");

    public override async Task<int> ExecuteAsync(CommandContext context, RunSettings settings, CancellationToken cancellationToken)
    {
        using var signal = ShutdownSignal.Register(_context.LoggerFactory);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, signal.Token);
        try
        {
            return await RunAsync(settings, stop.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            await _context.Err.WriteLineAsync("Stopped before any data moved; run again to start.").ConfigureAwait(false);
            return ExitCodes.Interrupted;
        }
    }

    private async Task<int> RunAsync(RunSettings settings, CancellationToken cancellationToken)
    {
        var (clusterSettings, clusterError, loadedConfig) = await ClusterRunExecution.ResolveAsync(_context, settings, cancellationToken).ConfigureAwait(false);
        if (clusterError is { } usage)
        {
            return usage;
        }

        // The cluster's members (the hooks see them as OrchestratorProps.ClusterMachines; the plan is still made here) are looked
        // up while the tables are discovered and the hooks load, and the run's Orleans client connects meanwhile.
        using var membersStop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var members = clusterSettings is null ? null : Task.Run(() => ClusterRunExecution.MembersAsync(_context, clusterSettings, membersStop.Token), membersStop.Token);

        // Transformers run in the hook worker during the sync, so a run with any keeps the hooks loaded until it ends; on a
        // cluster each worker runs them in its own hook worker, and the hooks here are done once the plan is made.
        var (work, exitCode) = await Planning.PlanFromCommandLineAsync(_context, settings.Config!, settings.Hooks, settings.Machine, cancellationToken,
            members is null ? null : MachinesOf(members), keepHooksWithTransformers: clusterSettings is null, loadedConfig: loadedConfig).ConfigureAwait(false);
        EtlFunnel.Cluster.Running.ClusterRun? clusterRun = null;
        if (members is not null)
        {
            if (work is null)
            {
                // Planning failed first (a config or hook error): stop waiting for workers.
                await membersStop.CancelAsync().ConfigureAwait(false);
            }

            try
            {
                clusterRun = (await members.ConfigureAwait(false)).Run;
            }
            catch (OperationCanceledException) when (membersStop.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
            }
        }

        await using var connection = clusterRun;
        if (work is null)
        {
            return exitCode;
        }

        await using var keptHooks = work.Hooks;
        var transformers = work.Hooks?.Transformers ?? [];
        var pipelineHooks = work.Hooks?.PipelineHooks ?? [];

        StateLocation state;
        try
        {
            state = StateLocation.Resolve(settings.State, work.Config);
        }
        catch (FormatException ex)
        {
            await _context.Err.WriteLineAsync($"error: {ex.Message}").ConfigureAwait(false);
            return ExitCodes.Usage;
        }

        var mode = settings.Mode ?? (work.Config.Flows.All(f => f.Cdc is not null) ? RunMode.Cdc : RunMode.Full);
        var options = new SyncOptions
        {
            StateDirectory = state.Directory,
            StateTable = state.Table,
            DeadLetterDirectory = DeadLetterDirectoryFor(state.Directory),
            Mode = mode == RunMode.Incremental ? SyncMode.Incremental : SyncMode.Full,
            Transformers = transformers,
            TransformerCounts = transformers.Count > 0 ? new EtlFunnel.Sync.Transforming.TransformerCounts() : null,
            // Batch-level hooks run on the snapshot path (full and incremental runs); CDC streams do not run them yet.
            PipelineHooks = mode == RunMode.Cdc ? [] : pipelineHooks,
        };
        if (mode == RunMode.Cdc && pipelineHooks.Count > 0)
        {
            await _context.Err.WriteLineAsync(
                $"warning: the batch-level hooks of {string.Join(", ", pipelineHooks.Select(h => h.Name))} (WriteRule, Termination, OnCheckpoint, OnBacklog) do not apply to cdc runs yet; they are ignored (see docs/data-hooks.md)").ConfigureAwait(false);
        }

        if (mode != RunMode.Cdc && settings.UntilCaughtUp)
        {
            await _context.Err.WriteLineAsync("error: --until-caught-up applies to --mode cdc only").ConfigureAwait(false);
            return ExitCodes.Usage;
        }

        SyncJob job;
        try
        {
            job = SyncJobBuilder.Build(work.Plan, work.Config, options, _context.Environment);
        }
        catch (ConfigException ex)
        {
            await _context.Err.WriteLineAsync(ex.Message).ConfigureAwait(false);
            return ExitCodes.Usage;
        }

        try
        {
            // An unreachable cluster is reported at its config line before anything runs.
            var planned = work.Plan.Flows.Select(f => f.Parent).ToHashSet(StringComparer.Ordinal);
            await ElasticsearchReachability.CheckAsync(work.Config, planned.Contains, cancellationToken).ConfigureAwait(false);
        }
        catch (ConfigException ex)
        {
            await _context.Err.WriteLineAsync(ex.Message).ConfigureAwait(false);
            return ExitCodes.Failure;
        }

        if (clusterSettings is not null && pipelineHooks.Count > 0)
        {
            // Cluster workers run the transformers of their own hooks folder, but not yet the batch-level hooks: a cluster
            // replica would ignore their write, checkpoint, backlog and termination rules.
            var names = pipelineHooks.Select(h => h.Name).Distinct(StringComparer.Ordinal).ToList();
            var applied = work.Plan.AllPipelines()
                .Where(x => pipelineHooks.Any(h => h.AppliesTo(x.Flow.Parent, x.Pipeline.Table.Schema, x.Pipeline.Table.Name)))
                .Select(x => $"{x.Flow.Parent}/{x.Pipeline.Table}").Distinct(StringComparer.Ordinal).ToList();
            if (applied.Count > 0)
            {
                await _context.Err.WriteLineAsync(
                    $"error: batch-level hooks ({string.Join(", ", names)}: write rule, termination, checkpoint or backlog) apply to {string.Join(", ", applied.Take(5))}{(applied.Count > 5 ? ", …" : "")}, " +
                    $"but cluster runs do not run them yet; run without {(settings.Cluster is not null ? "--cluster" : "the cluster (--local)")}, " +
                    "or narrow the hook's AppliesTo so it leaves these tables out (see docs/data-hooks.md).").ConfigureAwait(false);
                return ExitCodes.Usage;
            }
        }

        if (clusterSettings is not null)
        {
            return await ClusterRunExecution.RunAsync(_context, clusterRun!, clusterSettings, settings, work, job, state, mode, cancellationToken).ConfigureAwait(false);
        }

        if (mode == RunMode.Cdc)
        {
            return await CdcRun.RunAsync(_context, job, settings.UntilCaughtUp, state.ToString(), cancellationToken).ConfigureAwait(false);
        }

        var destinations = job.Flows.Select(f => f.Destination switch
        {
            FilesDestination files => "files " + files.Directory,
            ElasticsearchDestination es => "elasticsearch " + es.Uri,
            _ => "?",
        }).Distinct(StringComparer.Ordinal);
        _context.Log.Information("Running {FlowReplicas} flow replicas, {PipelineReplicas} pipeline replicas ({Mode:l}) into {Destinations:l}; state in {State}",
            job.Flows.Count, job.Flows.Sum(f => f.Pipelines.Count), options.Mode.ToString().ToLowerInvariant(), string.Join(", ", destinations), state);

        SyncReport report;
        try
        {
            report = await RunExecution.RunAsync(_context, work.Plan, job, showProgress: true, cancellationToken).ConfigureAwait(false);
        }
        catch (SyncConfigurationException ex)
        {
            await _context.Err.WriteLineAsync($"error: {ex.Message} (nothing was synced)").ConfigureAwait(false);
            return ExitCodes.Failure;
        }

        var tables = RunSummary.ByTable(report, RunSummary.ParentOf(work.Plan));
        RunSummary.Write(_context.Console, report, tables);
        foreach (var (version, documents) in (options.TransformerCounts?.Snapshot() ?? new Dictionary<string, long>()).OrderBy(c => c.Key, StringComparer.Ordinal))
        {
            _context.Console.WriteLine($"Transformer {version}: {documents:N0} documents");
        }

        if (settings.Report is not null)
        {
            await RunSummary.WriteJsonAsync(settings.Report, RunSummary.ToJson(report, tables, withReplicas: true), CancellationToken.None).ConfigureAwait(false);
            _context.Console.WriteLine($"Report: {Path.GetFullPath(settings.Report)}");
        }

        await _context.Out.FlushAsync(CancellationToken.None).ConfigureAwait(false);
        switch (report.Outcome)
        {
            case SyncOutcome.Succeeded:
                return ExitCodes.Ok;
            case SyncOutcome.Cancelled:
                await _context.Err.WriteLineAsync($"Interrupted: checkpoints are saved in {state}; run again to resume.").ConfigureAwait(false);
                return ExitCodes.Interrupted;
            case SyncOutcome.CompletedWithRejections:
                await _context.Err.WriteLineAsync($"error: {report.DeadLettered} document(s) were rejected; the dead letters are in {report.DeadLetterFile}").ConfigureAwait(false);
                return ExitCodes.Failure;
            case SyncOutcome.Stopped:
                // A hook's decision, not a failure: the run is incomplete on purpose and the next run resumes it.
                await _context.Err.WriteLineAsync($"Stopped by hooks: checkpoints are saved in {state}; run again to resume.").ConfigureAwait(false);
                return ExitCodes.Stopped;
            default:
                await _context.Err.WriteLineAsync(
                    $"error: the run failed{(report.DeadLetterFile is null ? "" : $" (dead letters in {report.DeadLetterFile})")}; checkpoints are saved in {state}; fix the cause and run again to resume.").ConfigureAwait(false);
                return ExitCodes.Failure;
        }
    }
}
