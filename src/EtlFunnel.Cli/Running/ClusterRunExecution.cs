using EtlFunnel.Cli.Commands;
using EtlFunnel.Cli.Hosting;
using EtlFunnel.Cluster;
using EtlFunnel.Cluster.Running;
using EtlFunnel.Execution.Models;
using EtlFunnel.Runtime.Hooks;
using EtlFunnel.Runtime.State;
using EtlFunnel.Sync;
using Spectre.Console;

namespace EtlFunnel.Cli.Running;

/// <summary><c>run --cluster</c>: the plan made here, its pipeline replicas run by the cluster's workers, the usual summary printed here.</summary>
internal static class ClusterRunExecution
{
    /// <summary>
    /// The cluster this run goes to: <c>--cluster</c>, else <c>cluster:</c> in the config (unless <c>--local</c>), else none (a run
    /// on this machine). A bad <c>--cluster</c> value prints the error and returns its exit code; a config that does not load is
    /// left to the planner, which reports it with its line. The config loaded to look for <c>cluster:</c> is returned, so the
    /// planner does not parse flows.yaml a second time.
    /// </summary>
    public static async Task<(ClusterSettings? Cluster, int? ExitCode, EtlFunnel.Orchestration.Config.EtlConfig? Config)> ResolveAsync(CliContext context, RunSettings settings, CancellationToken cancellationToken)
    {
        if (settings.Cluster is not null)
        {
            if (ClusterCommandLine.Settings(settings.Cluster, settings.ClusterId, null, null, context.Environment) is not { } fromOption)
            {
                await context.Err.WriteLineAsync("error: --cluster: not a postgres:// URL nor an Npgsql connection string").ConfigureAwait(false);
                return (null, ExitCodes.Usage, null);
            }

            return (fromOption, null, null);
        }

        if (settings.Local || settings.Config is null)
        {
            return (null, null, null);
        }

        EtlFunnel.Orchestration.Config.EtlConfig config;
        try
        {
            config = await EtlFunnel.Orchestration.Config.ConfigLoader.LoadAsync(settings.Config, context.Environment, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is EtlFunnel.Orchestration.Config.ConfigException or IOException or UnauthorizedAccessException)
        {
            return (null, null, null);
        }

        if (config.Cluster is not { } configured)
        {
            return (null, null, config);
        }

        var cluster = ClusterCommandLine.FromConfig(configured, settings.ClusterId, null, null, context.Environment);
        context.Log.Information("Running on cluster {Cluster} in {Server} ({Location:l}: cluster:); pass --local to run on this machine instead",
            cluster.ClusterId, cluster.Server, configured.Location.ToString());
        return (cluster, null, config);
    }

    /// <summary>
    /// The cluster's live members for the hooks (waits for a first one), and the run that will hand the plan to them, already
    /// connecting its Orleans client while the caller plans (dispose it); prints the error and returns the exit code on failure.
    /// </summary>
    public static async Task<(IReadOnlyList<MachineInfo>? Machines, ClusterRun? Run, int ExitCode)> MembersAsync(CliContext context, ClusterSettings cluster, CancellationToken cancellationToken)
    {
        try
        {
            var members = await ClusterRun.MembersAsync(cluster, context.LoggerFactory, TimeSpan.FromSeconds(60), cancellationToken).ConfigureAwait(false);
            var run = new ClusterRun(cluster, context.LoggerFactory);
            run.StartConnecting(cancellationToken);
            return ([.. members.Select(m => m.Machine)], run, ExitCodes.Ok);
        }
        catch (ClusterException ex)
        {
            await context.Err.WriteLineAsync($"error: {ex.Message}").ConfigureAwait(false);
            return (null, null, ExitCodes.Failure);
        }
    }

    public static async Task<int> RunAsync(CliContext context, ClusterRun run, ClusterSettings cluster, RunSettings settings, PlannedWork work, SyncJob job, StateLocation state, RunMode mode, CancellationToken cancellationToken)
    {
        if (mode == RunMode.Cdc)
        {
            await context.Err.WriteLineAsync($"error: cluster runs ({cluster.ConfiguredAt}) do full and incremental syncs; CDC flows run with 'etlfunnel run --mode cdc{(settings.Cluster is null ? " --local" : "")}' or 'watch' on one machine (docs/cluster.md)").ConfigureAwait(false);
            return ExitCodes.Usage;
        }

        var hooks = settings.Hooks ?? work.Config.HooksDirectory ?? HooksFolder.DefaultDirectory;
        var request = new ClusterRunRequest
        {
            Plan = work.Plan,
            HooksHash = HooksFingerprint.Compute(hooks),
            Job = job,
            StateTable = state.Table?.Table ?? PostgresStateTable.DefaultTable,
            Scope = state.Table?.Scope ?? PostgresStateTable.DefaultScope,
            Incremental = mode == RunMode.Incremental,
        };
        context.Log.Information("Handing {Replicas} pipeline replicas to cluster {Cluster} in {Server} (run {RunId}, hooks {Hooks})",
            work.Plan.AllPipelines().Count(), cluster.ClusterId, cluster.Server, request.RunId, request.HooksHash);
        ClusterRunResult result;
        try
        {
            result = await run.RunAsync(request, cancellationToken).ConfigureAwait(false);
        }
        catch (ClusterException ex)
        {
            await context.Err.WriteLineAsync($"error: {ex.Message}").ConfigureAwait(false);
            return ExitCodes.Failure;
        }
        catch (SyncConfigurationException ex)
        {
            // The run's snapshot could not be exported (a table lock not granted, a missing table): nothing was handed out.
            await context.Err.WriteLineAsync($"error: {ex.Message} (nothing was synced)").ConfigureAwait(false);
            return ExitCodes.Failure;
        }

        var report = result.Report;
        var tables = RunSummary.ByTable(report, RunSummary.ParentOf(work.Plan));
        RunSummary.Write(context.Console, report, tables);
        context.Console.WriteLine($"Cluster: {result.Members} members; replicas per member: " +
            string.Join(", ", result.ReplicasPerMember.OrderBy(m => m.Key, StringComparer.Ordinal).Select(m => $"{m.Key}={m.Value}")) + $"; takeovers: {result.Takeovers}");
        foreach (var (version, documents) in result.TransformerCounts.OrderBy(c => c.Key, StringComparer.Ordinal))
        {
            // Summed over the workers that ran the replicas (each ran the transformer in its own hook worker).
            context.Console.WriteLine($"Transformer {version}: {documents:N0} documents");
        }
        if (settings.Report is not null)
        {
            await RunSummary.WriteJsonAsync(settings.Report, RunSummary.ToJson(report, tables, withReplicas: true), CancellationToken.None).ConfigureAwait(false);
            context.Console.WriteLine($"Report: {Path.GetFullPath(settings.Report)}");
        }

        await context.Out.FlushAsync(CancellationToken.None).ConfigureAwait(false);
        switch (report.Outcome)
        {
            case SyncOutcome.Succeeded:
                return ExitCodes.Ok;
            case SyncOutcome.Cancelled:
                await context.Err.WriteLineAsync("Interrupted: every replica keeps its checkpoint in the cluster database; run again to resume.").ConfigureAwait(false);
                return ExitCodes.Interrupted;
            default:
                foreach (var failed in report.Replicas.Where(r => r.Outcome != SyncOutcome.Succeeded && r.Error is not null))
                {
                    await context.Err.WriteLineAsync($"error: {failed.Flow}/{failed.Replica}: {failed.Error}").ConfigureAwait(false);
                }

                await context.Err.WriteLineAsync("error: the cluster run failed; checkpoints are saved in the cluster database; fix the cause and run again to resume.").ConfigureAwait(false);
                return ExitCodes.Failure;
        }
    }
}
