using System.Globalization;
using EtlFunnel.Cli.Hosting;
using EtlFunnel.Sync;
using EtlFunnel.Sync.Cdc;
using Microsoft.Extensions.Logging;
using Spectre.Console;

namespace EtlFunnel.Cli.Running;

/// <summary><c>etlfunnel run --mode cdc</c>: runs the job on the CDC engine and maps its outcome to the exit code.</summary>
internal static class CdcRun
{
    public static async Task<int> RunAsync(CliContext context, SyncJob job, bool untilCaughtUp, string state, CancellationToken cancellationToken)
    {
        context.Log.Information("Running {Flows} flow replica(s) as CDC ({How}); state in {State}",
            job.Flows.Count, untilCaughtUp ? "until caught up" : "until Ctrl-C", state);
        CdcReport report;
        try
        {
            report = await new CdcEngine(context.LoggerFactory.CreateLogger<CdcEngine>()).RunAsync(job, new CdcRunOptions { UntilCaughtUp = untilCaughtUp }, null, cancellationToken).ConfigureAwait(false);
        }
        catch (SyncConfigurationException ex)
        {
            await context.Err.WriteLineAsync($"error: {ex.Message}").ConfigureAwait(false);
            return ExitCodes.Failure;
        }

        var snapshot = report.Snapshot is { } s ? string.Create(CultureInfo.InvariantCulture, $"snapshot {s.DocsIndexed:N0} document(s) in {s.Duration.TotalSeconds:0.0} s; ") : "";
        context.Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"CDC {report.Outcome}: {snapshot}{report.ChangesApplied:N0} change(s) applied ({report.VersionConflicts:N0} version conflicts), {report.DeadLettered:N0} dead-lettered; acknowledged up to {report.ConfirmedLsn ?? "-"} in {report.Duration.TotalSeconds:0.0} s"));
        // Snapshot documents and streamed changes together, per transformer version (a hot edit during the run shows as two lines).
        foreach (var (version, documents) in (job.Options.TransformerCounts?.Snapshot() ?? new Dictionary<string, long>()).OrderBy(c => c.Key, StringComparer.Ordinal))
        {
            context.Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Transformer {version}: {documents:N0} documents"));
        }

        await context.Out.FlushAsync(CancellationToken.None).ConfigureAwait(false);
        switch (report.Outcome)
        {
            case SyncOutcome.Succeeded when report.DeadLettered == 0:
                return ExitCodes.Ok;
            case SyncOutcome.Cancelled:
                await context.Err.WriteLineAsync($"Interrupted: what was applied is acknowledged and saved in {state}; run again to continue streaming.").ConfigureAwait(false);
                return ExitCodes.Interrupted;
            case SyncOutcome.Succeeded:
                await context.Err.WriteLineAsync($"error: {report.DeadLettered} change(s) were rejected by the destination (see the dead-letter folder)").ConfigureAwait(false);
                return ExitCodes.Failure;
            default:
                await context.Err.WriteLineAsync($"error: {report.Error ?? "the CDC run failed"}").ConfigureAwait(false);
                return ExitCodes.Failure;
        }
    }
}
