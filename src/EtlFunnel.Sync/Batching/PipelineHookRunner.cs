using EtlFunnel.Execution.Models;

namespace EtlFunnel.Sync.Batching;

/// <summary>
/// The batch-level hooks of one pipeline replica: the write rule and termination rules read once when the replica starts,
/// then, every <see cref="WriteRule.CheckInterval"/> checkpoints, the termination limits and the checkpoint hooks. A stop
/// is a <see cref="PipelineStoppedException"/> thrown after the checkpoint was written; a hook's failure is its exception.
/// </summary>
internal sealed class PipelineHookRunner(IReadOnlyList<IPipelineHook> hooks, PipelineInfo pipeline, TimeSpan budget)
{
    private readonly List<(IPipelineHook Hook, TerminationRule Rule)> terminations = [];
    private long checkpoints;
    private long lastRows = -1;
    private long idleSince;

    public PipelineInfo Pipeline => pipeline;

    /// <summary>Documents per batch from the write rules (the last hook that sets it wins); null keeps the plan's.</summary>
    public int? BatchSize { get; private set; }

    /// <summary>Checks run every this many checkpoints.</summary>
    public int CheckInterval { get; private set; } = 1;

    public static PipelineInfo Info(string configuredFlow, SyncFlow flow, SyncPipeline p, SyncOptions options) => new()
    {
        Flow = configuredFlow,
        FlowReplica = flow.Name,
        Replica = p.ReplicaName,
        Schema = p.Schema,
        Table = p.Table,
        Index = p.IndexName,
        Mode = options.Mode.ToString().ToLowerInvariant(),
    };

    /// <summary>Reads the write and termination rules (once per replica start).</summary>
    public async Task StartAsync(long started, CancellationToken ct)
    {
        idleSince = started;
        foreach (var hook in hooks)
        {
            if (hook.Declares(PipelineHookKind.WriteRule))
            {
                var rule = await hook.WriteRuleAsync(pipeline, budget, ct).ConfigureAwait(false);
                BatchSize = rule.BatchSize ?? BatchSize;
                CheckInterval = rule.CheckInterval ?? CheckInterval;
            }

            if (hook.Declares(PipelineHookKind.Termination))
            {
                terminations.Add((hook, await hook.TerminationAsync(pipeline, budget, ct).ConfigureAwait(false)));
            }
        }
    }

    /// <summary>
    /// After a checkpoint was written: every <see cref="CheckInterval"/> checkpoints, the termination limits and then the
    /// checkpoint hooks; throws <see cref="PipelineStoppedException"/> to stop the replica here.
    /// </summary>
    public async Task AfterCheckpointAsync(Func<long, CheckpointInfo> progress, long rowsThisRun, long started, TimeProvider time, CancellationToken ct)
    {
        checkpoints++;
        var now = time.GetTimestamp();
        if (rowsThisRun != lastRows)
        {
            lastRows = rowsThisRun;
            idleSince = now;
        }

        if (checkpoints % CheckInterval != 0)
        {
            return;
        }

        var elapsed = time.GetElapsedTime(started, now);
        foreach (var (hook, rule) in terminations)
        {
            var reached = rule.MaxRecords is { } max && rowsThisRun >= max ? $"MaxRecords {max} reached ({rowsThisRun} rows read in this run)"
                : rule.MaxPipelineTime is { } limit && elapsed >= limit ? $"MaxPipelineTime {limit} reached (ran {elapsed:hh\\:mm\\:ss\\.fff})"
                : rule.IdleTimeout is { } idle && time.GetElapsedTime(idleSince, now) >= idle ? $"IdleTimeout {idle} reached (no row read for {time.GetElapsedTime(idleSince, now):hh\\:mm\\:ss\\.fff})"
                : null;
            if (reached is not null)
            {
                throw new PipelineStoppedException($"{hook.SourcePath}: termination rule {reached}");
            }
        }

        var info = progress(checkpoints);
        foreach (var hook in hooks)
        {
            if (!hook.Declares(PipelineHookKind.Checkpoint))
            {
                continue;
            }

            var decision = await hook.CheckpointAsync(info, budget, ct).ConfigureAwait(false);
            if (decision.Stops)
            {
                throw new PipelineStoppedException($"{hook.SourcePath}: OnCheckpoint stopped it at checkpoint {info.Checkpoints} ({info.Position}, {info.RowsRead} rows read): {decision.Reason}");
            }
        }
    }
}
