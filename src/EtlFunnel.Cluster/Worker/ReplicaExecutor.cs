using System.Collections.Concurrent;
using EtlFunnel.Cluster.Grains;
using EtlFunnel.Cluster.Leases;
using EtlFunnel.Orchestration.Config;
using EtlFunnel.Orchestration.Plans;
using EtlFunnel.Runtime.Jobs;
using EtlFunnel.Sync;
using Microsoft.Extensions.Logging;

namespace EtlFunnel.Cluster.Worker;

/// <summary>
/// Runs pipeline replicas on a worker: checks the hooks hash, takes the lease, runs the one-replica job on the sync engine
/// with checkpoints fenced by the lease's epoch, renews the lease while it runs and writes the outcome. Runs live outside
/// the grain scheduler (a grain call only starts them).
/// </summary>
internal sealed class ReplicaExecutor(WorkerOptions options, LeaseStore leases, ILogger log, ILoggerFactory loggerFactory) : IAsyncDisposable
{
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<string, Task> _runs = new(StringComparer.Ordinal);

    /// <summary>Replicas running on this worker now.</summary>
    public int Running => _runs.Count;

    public async Task<(StartResult Result, Task? Run)> TryStartAsync(ReplicaAssignment assignment, string owner)
    {
        if (_stopping.IsCancellationRequested)
        {
            return (new StartResult(StartOutcome.Busy, "worker is stopping"), null);
        }

        if (assignment.HooksHash != options.HooksHash)
        {
            var message = $"worker {options.Machine.HostName} runs hooks {options.HooksHash} from {options.HooksDirectory ?? "(no hooks folder)"}, but the plan was made with hooks " +
                $"{assignment.HooksHash}: deploy the same hooks folder to every worker (or restart this worker with --hooks pointing at it)";
            log.LogWarning("Refused replica {Flow}/{Replica}: {Reason:l}", assignment.Flow, assignment.Replica, message);
            return (new StartResult(StartOutcome.Refused, message), null);
        }

        SyncJob job;
        try
        {
            job = await BuildJobAsync(assignment, fence: null, _stopping.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is ConfigException or InvalidOperationException)
        {
            log.LogWarning("Refused replica {Flow}/{Replica}: {Reason:l}", assignment.Flow, assignment.Replica, ex.Message);
            return (new StartResult(StartOutcome.Refused, $"worker {options.Machine.HostName}: {ex.Message}"), null);
        }

        var lease = await leases.TryAcquireAsync(assignment.LeaseKey, owner, options.Settings.LeaseTtl, _stopping.Token).ConfigureAwait(false);
        if (lease is null)
        {
            return (new StartResult(StartOutcome.Busy, "the lease is held by a live owner or the replica is finished"), null);
        }

        // The job again, now with the fence of the lease just taken.
        job = job with { Options = job.Options with { StateTable = job.Options.StateTable! with { Fence = lease.Fence } } };
        var run = Task.Run(() => RunAsync(assignment, job, lease));
        _runs[lease.Key] = run;
        _ = run.ContinueWith(_ => _runs.TryRemove(lease.Key, out Task? _), TaskScheduler.Default);
        return (new StartResult(StartOutcome.Started, $"epoch {lease.Epoch}"), run);
    }

    private async Task RunAsync(ReplicaAssignment assignment, SyncJob job, Lease lease)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
        var lost = false;
        var renew = Task.Run(async () =>
        {
            var every = options.Settings.LeaseTtl / 3;
            while (!cts.IsCancellationRequested)
            {
                try
                {
                    await Task.Delay(every, cts.Token).ConfigureAwait(false);
                    if (!await leases.RenewAsync(lease, options.Settings.LeaseTtl, cts.Token).ConfigureAwait(false))
                    {
                        lost = true;
                        log.LogWarning("Lost the lease of {Lease} (epoch {Epoch}): another worker owns it now; stopping this replica", lease.Key, lease.Epoch);
                        await cts.CancelAsync().ConfigureAwait(false);
                    }
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                catch (Exception ex)
                {
                    // The database is unreachable: keep trying until the lease would have lapsed anyway.
                    log.LogWarning(ex, "Could not renew the lease of {Lease}", lease.Key);
                }
            }
        });

        string status;
        ReplicaReport? replicaReport = null;
        string? error = null;
        log.LogInformation("Running replica {Flow:l}/{Replica:l} (lease {Lease}, epoch {Epoch})", assignment.Flow, assignment.Replica, lease.Key, lease.Epoch);
        try
        {
            // The run's one snapshot, held open by the planner: never a snapshot of this worker's own.
            var handoff = new SnapshotHandoff(assignment.SnapshotId, assignment.Blocks);
            var report = await new SyncEngine(loggerFactory.CreateLogger<SyncEngine>(), handoff).RunAsync(job, null, cts.Token).ConfigureAwait(false);
            replicaReport = report.Replicas.SingleOrDefault();
            error = replicaReport?.Error;
            status = report.Outcome switch
            {
                SyncOutcome.Succeeded => "succeeded",
                SyncOutcome.Cancelled => "cancelled",
                _ => "failed",
            };
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            status = "failed";
            error = ex.Message;
        }
        catch (OperationCanceledException)
        {
            status = "cancelled";
        }

        await cts.CancelAsync().ConfigureAwait(false);
        await renew.ConfigureAwait(false);
        if (lost || error?.Contains("epoch", StringComparison.Ordinal) == true && error.Contains("stale", StringComparison.Ordinal))
        {
            log.LogWarning("Replica {Flow}/{Replica}: epoch {Epoch} is stale, its result is dropped (the new owner resumes from the last checkpoint)", assignment.Flow, assignment.Replica, lease.Epoch);
            return;
        }

        if (status == "cancelled")
        {
            // Stopping: give the lease back so the caller places the replica elsewhere at once (it resumes from its checkpoint).
            await leases.ReleaseAsync(lease, CancellationToken.None).ConfigureAwait(false);
            log.LogInformation("Released replica {Flow}/{Replica} (worker stopping); checkpoints saved", assignment.Flow, assignment.Replica);
            return;
        }

        // The documents this attempt's transformers wrote, per version: the caller sums them over the run's replicas.
        var transformed = job.Options.TransformerCounts?.Snapshot();
        if (!await leases.CompleteAsync(lease, status, replicaReport, error, transformed, CancellationToken.None).ConfigureAwait(false))
        {
            log.LogWarning("Replica {Flow}/{Replica} finished, but epoch {Epoch} is stale: its result is dropped", assignment.Flow, assignment.Replica, lease.Epoch);
            return;
        }

        if (error is not null)
        {
            log.LogError("Replica {Flow}/{Replica} {Status:l}: {Error:l}", assignment.Flow, assignment.Replica, status, error);
            return;
        }

        log.LogInformation("Replica {Flow}/{Replica} {Status:l}: {Rows} rows read, {Docs} documents indexed", assignment.Flow, assignment.Replica, status,
            replicaReport?.RowsRead ?? 0, replicaReport?.DocsIndexed ?? 0);
        foreach (var (version, documents) in (transformed ?? new Dictionary<string, long>()).OrderBy(c => c.Key, StringComparer.Ordinal))
        {
            log.LogInformation("Replica {Flow}/{Replica}: transformer {Version:l}: {Documents} documents", assignment.Flow, assignment.Replica, version, documents);
        }
    }

    /// <summary>The one-replica job: the plan joined to this worker's flows.yaml, checkpoints in the replica's own scope.</summary>
    internal async Task<SyncJob> BuildJobAsync(ReplicaAssignment assignment, StateFence? fence, CancellationToken ct)
    {
        var config = await ConfigLoader.LoadAsync(options.ConfigPath, options.Environment, ct).ConfigureAwait(false);
        config = DestinationOverride.Apply(config, options.Environment).Config;
        var plan = PlanJson.Deserialize(assignment.PlanJson);
        var flowPlan = plan.Flows.FirstOrDefault(f => f.Name == assignment.Flow)
            ?? throw new InvalidOperationException($"the plan has no flow replica '{assignment.Flow}'");
        var syncOptions = new SyncOptions
        {
            StateDirectory = Path.Combine(options.WorkDirectory, "state"),
            DeadLetterDirectory = Path.Combine(options.WorkDirectory, "dead-letter"),
            StateTable = new PostgresStateTable(options.Settings.ConnectionString)
            {
                Table = assignment.StateTable,
                Scope = $"{assignment.Scope}/cluster/{assignment.Flow}/{assignment.Replica}",
                ConfiguredAt = "--cluster",
                Fence = fence,
            },
            // In place, never an alias swap: the replicas of one table run in separate engine runs (docs/cluster.md).
            Mode = SyncMode.Incremental,
            MaxConcurrency = 1,
            // This worker's own hook host runs them (its hooks hash equals the plan's, checked above); counted per replica.
            Transformers = options.Transformers,
            TransformerCounts = options.Transformers.Count > 0 ? new EtlFunnel.Sync.Transforming.TransformerCounts() : null,
        };
        var job = SyncJobBuilder.Build(plan, config, syncOptions, options.Environment, parent => parent == flowPlan.Parent);
        var flow = job.Flows.Single(f => f.Name == assignment.Flow);
        var pipeline = flow.Pipelines.FirstOrDefault(p => p.ReplicaName == assignment.Replica)
            ?? throw new InvalidOperationException($"the plan's flow replica '{assignment.Flow}' has no pipeline replica '{assignment.Replica}'");
        if (!assignment.Incremental)
        {
            pipeline = pipeline with { IncrementalColumn = null };
        }

        return job with { Flows = [flow with { Pipelines = [pipeline] }] };
    }

    /// <summary>Stops every run (they checkpoint and release their leases) and waits for them.</summary>
    public async Task StopAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(_runs.Values).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        _stopping.Dispose();
    }
}
