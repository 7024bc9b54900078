using System.Globalization;
using EtlFunnel.Cli.Hosting;
using EtlFunnel.Orchestration.Plans;
using EtlFunnel.Runtime.Jobs;
using EtlFunnel.Sync;
using Microsoft.Extensions.Logging;
using Spectre.Console;

namespace EtlFunnel.Cli.Running;

/// <summary>Runs a job on the sync engine while showing progress: a live Spectre display on a terminal, periodic log lines otherwise.</summary>
internal static class RunExecution
{
    private static readonly TimeSpan LiveRefresh = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan LogEvery = TimeSpan.FromSeconds(5);

    public static async Task<SyncReport> RunAsync(CliContext context, ExecutionPlan plan, SyncJob job, bool showProgress, CancellationToken cancellationToken)
    {
        var progress = new RunProgress(plan, job);
        var time = job.Options.TimeProvider;
        var started = time.GetTimestamp();
        var run = new SyncEngine(context.LoggerFactory.CreateLogger<SyncEngine>()).RunAsync(job, progress, cancellationToken);
        if (showProgress && context.LiveConsole is { } live)
        {
            using var logAboveBars = context.TerminalLog?.DivertTo(live);
            await live.Progress()
                .AutoClear(false)
                .HideCompleted(false)
                .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
                .StartAsync(async display =>
                {
                    var tasks = progress.Flows.ToDictionary(f => f, f => display.AddTask(Markup.Escape(f), autoStart: false, maxValue: 1), StringComparer.Ordinal);
                    while (true)
                    {
                        var finished = run.IsCompleted;
                        foreach (var flow in progress.Snapshot())
                        {
                            var task = tasks[flow.Flow];
                            var seconds = time.GetElapsedTime(started).TotalSeconds;
                            task.Description = Markup.Escape(Line(flow, seconds, withEta: false));
                            task.MaxValue = Math.Max(1, Math.Max(flow.EstimatedRows, flow.Rows));
                            task.Value = flow.ReplicasDone == flow.Replicas ? task.MaxValue : Math.Min(flow.Rows, task.MaxValue);
                            if (!task.IsStarted && flow.ReplicasStarted > 0)
                            {
                                task.StartTask(); // until then the flow is queued, not running at 0%
                            }
                        }

                        if (finished)
                        {
                            break;
                        }

                        await Task.WhenAny(run, Task.Delay(LiveRefresh, time, CancellationToken.None)).ConfigureAwait(false);
                    }
                }).ConfigureAwait(false);
        }
        else if (showProgress)
        {
            while (!run.IsCompleted)
            {
                await Task.WhenAny(run, Task.Delay(LogEvery, time, CancellationToken.None)).ConfigureAwait(false);
                if (!run.IsCompleted)
                {
                    var seconds = time.GetElapsedTime(started).TotalSeconds;
                    foreach (var flow in progress.Snapshot())
                    {
                        context.Log.Information("Progress {Line:l}", Line(flow, seconds, withEta: true));
                    }
                }
            }
        }

        return await run.ConfigureAwait(false);
    }

    /// <summary>
    /// <c>shop: 12,000 resumed + 8,000 read, 4,000 rows/s, 3/8 replicas done, 2 queued</c> (the rate counts rows read in this run);
    /// <c>shop: queued (8 replicas)</c> before any replica of the flow has started.
    /// </summary>
    internal static string Line(FlowProgress flow, double seconds, bool withEta)
    {
        if (flow.ReplicasStarted == 0)
        {
            return string.Create(CultureInfo.InvariantCulture, $"{flow.Flow}: queued ({flow.Replicas} replicas)");
        }

        var read = flow.Rows - flow.Resumed;
        var rate = seconds > 0 ? read / seconds : 0;
        var rows = flow.Resumed > 0
            ? string.Create(CultureInfo.InvariantCulture, $"{flow.Resumed:N0} resumed + {read:N0} read")
            : string.Create(CultureInfo.InvariantCulture, $"{flow.Rows:N0} rows");
        var queued = flow.Replicas - flow.ReplicasStarted;
        var text = string.Create(CultureInfo.InvariantCulture,
            $"{flow.Flow}: {rows}, {rate:N0} rows/s, {flow.ReplicasDone}/{flow.Replicas} replicas done{(queued > 0 ? $", {queued} queued" : "")}");
        if (withEta && flow.EstimatedRows > 0)
        {
            var left = Math.Max(0, flow.EstimatedRows - flow.Rows);
            var eta = rate > 0 ? TimeSpan.FromSeconds(Math.Ceiling(left / rate)) : (TimeSpan?)null;
            text += string.Create(CultureInfo.InvariantCulture,
                $", {Math.Min(100, 100.0 * flow.Rows / flow.EstimatedRows):0}% of ~{flow.EstimatedRows:N0}, ETA {(eta is { } e ? e.ToString(@"hh\:mm\:ss", CultureInfo.InvariantCulture) : "?")}");
        }

        return text;
    }
}
