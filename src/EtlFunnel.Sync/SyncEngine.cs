using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Elastic.Clients.Elasticsearch;
using EtlFunnel.Destinations;
using EtlFunnel.Sync.Postgres;
using EtlFunnel.Sync.Runtime;
using EtlFunnel.Sync.State;
using Microsoft.Extensions.Logging;

namespace EtlFunnel.Sync;

/// <summary>
/// Runs a <see cref="SyncJob"/>: every pipeline replica reads its partition of its table from one exported snapshot per
/// source database, maps rows to JSON documents and writes them to Elasticsearch or NDJSON files, checkpointing as it goes.
/// </summary>
public sealed class SyncEngine
{
    private readonly ILogger _log;
    private readonly SyncTestHooks? _hooks;

    /// <summary>Creates an engine that logs to <paramref name="logger"/> (Microsoft.Extensions.Logging; default: nowhere).</summary>
    public SyncEngine(ILogger? logger = null)
        : this(logger, (SyncTestHooks?)null)
    {
    }

    internal SyncEngine(ILogger? logger, SyncTestHooks? hooks)
    {
        _log = logger ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
        _hooks = hooks;
    }

    /// <summary>
    /// CDC snapshot phase: every source database in <paramref name="importedSnapshots"/> (by <see cref="SourceSnapshot.SourceKey"/>)
    /// is read in that exported snapshot instead of a fresh <c>pg_export_snapshot()</c>, and every document is written with
    /// <paramref name="externalVersion"/> (the slot's consistent point).
    /// </summary>
    internal SyncEngine(ILogger? logger, IReadOnlyDictionary<string, string> importedSnapshots, long externalVersion)
        : this(logger, (SyncTestHooks?)null)
    {
        _importedSnapshots = importedSnapshots;
        _externalVersion = externalVersion;
    }

    /// <summary>
    /// A replica of a run coordinated elsewhere (a cluster worker): the job's source database is read in the snapshot that
    /// <paramref name="handoff"/> names (exported and held open by the run's planner, <see cref="ExportedSnapshots"/>), and its
    /// tables are cut at the planner's block counts, so every replica of the run reads one point in time and the partitions
    /// fit together. Fails with <see cref="SnapshotHandoff.GoneMessage"/> once the planner's session is gone.
    /// </summary>
    internal SyncEngine(ILogger? logger, SnapshotHandoff handoff)
        : this(logger, (SyncTestHooks?)null)
    {
        _handoff = handoff;
    }

    private readonly IReadOnlyDictionary<string, string>? _importedSnapshots;
    private readonly long? _externalVersion;
    private readonly SnapshotHandoff? _handoff;

    /// <summary>
    /// Runs the job to the end (or until <paramref name="cancellationToken"/> fires: in-flight batches are drained, checkpoints
    /// saved, and the report says the run was cancelled). An interrupted run of the same job resumes from its checkpoints.
    /// Throws <see cref="SyncConfigurationException"/> before any data moves when the job cannot run as described.
    /// </summary>
    public async Task<SyncReport> RunAsync(SyncJob job, IProgress<SyncProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(job);
        Validate(job);
        var options = job.Options;
        var started = options.TimeProvider.GetTimestamp();
        IStateStore store;
        try
        {
            store = await StateStores.OpenAsync(options, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            _log.LogInformation("Cancelled before any replica started");
            return new SyncReport { Outcome = SyncOutcome.Cancelled, Replicas = [], Duration = options.TimeProvider.GetElapsedTime(started) };
        }

        await using var storeScope = store.ConfigureAwait(false);
        var fingerprint = Fingerprint(job);
        var manifest = store.LoadManifest();
        if (manifest is { Completed: false } && manifest.Fingerprint != fingerprint)
        {
            _log.LogWarning("The job changed since the interrupted run {RunId}; starting a new run instead of resuming it", manifest.RunId);
        }

        var resuming = manifest is { Completed: false } && manifest.Fingerprint == fingerprint;
        if (resuming && _handoff is not null && OtherBoundaries(job, manifest!, _handoff) is { } moved)
        {
            // The checkpoints cut this table at other block counts (an earlier run, before the table grew or shrank): resuming
            // them next to replicas cut at the planner's counts would leave a gap or an overlap between partitions.
            _log.LogInformation("Not resuming run {RunId}: it cut {Leaf} at {Had} blocks, this run's planner at {Now}; reading the partition again",
                manifest!.RunId, moved.Leaf, moved.Had, moved.Now);
            resuming = false;
        }

        if (!resuming)
        {
            manifest = NewManifest(options, fingerprint);
        }
        else
        {
            _log.LogInformation("Resuming interrupted run {RunId} from {Store}", manifest!.RunId, store.Description);
        }

        var snapshots = new Dictionary<string, SourceSnapshot>(StringComparer.Ordinal);
        var clients = new Dictionary<ElasticsearchDestination, ElasticsearchClient>();
        await using var deadLetters = new DeadLetterWriter(options.DeadLetterDirectory, manifest!.RunId);
        try
        {
            var context = new JobContext
            {
                Options = options,
                Store = store,
                RunId = manifest.RunId,
                DeadLetters = deadLetters,
                Log = _log,
                Progress = progress,
                Hooks = _hooks,
                ExternalVersion = _externalVersion,
            };

            foreach (var flow in job.Flows)
            {
                var key = SourceSnapshot.SourceKey(flow.SourceConnectionString);
                if (!snapshots.ContainsKey(key) && _handoff is not null)
                {
                    if (snapshots.Count > 0)
                    {
                        throw new SyncConfigurationException("A replica handed a snapshot reads one source database; this job reads several.");
                    }

                    snapshots[key] = await SourceSnapshot.ImportExportedAsync(flow.SourceConnectionString, _handoff.SnapshotId, TablesOf(job, key), options.LockTimeout,
                        SnapshotHandoff.GoneMessage(_handoff.SnapshotId, key), cancellationToken).ConfigureAwait(false);
                }
                else if (!snapshots.ContainsKey(key))
                {
                    snapshots[key] = _importedSnapshots is not null && _importedSnapshots.TryGetValue(key, out var imported)
                        ? await SourceSnapshot.ImportAsync(flow.SourceConnectionString, imported, TablesOf(job, key), options.LockTimeout, cancellationToken).ConfigureAwait(false)
                        : await SourceSnapshot.OpenAsync(flow.SourceConnectionString, TablesOf(job, key), options.LockTimeout, cancellationToken).ConfigureAwait(false);
                }
            }

            async Task<List<ReplicaRunner>> BuildRunnersAsync()
            {
                foreach (var (key, snapshot) in snapshots)
                {
                    if (!resuming || !manifest.FirstSnapshots.ContainsKey(key))
                    {
                        // A run resumed from checkpoints that predate this record re-reads everything it had read.
                        manifest.FirstSnapshots[key] = resuming ? new FirstSnapshot() : snapshot.First;
                        manifest.Snapshots[key] = snapshot.CurrentSnapshot;
                    }
                }

                    var runners = new List<ReplicaRunner>();
                foreach (var flow in job.Flows)
                {
                    var sourceKey = SourceSnapshot.SourceKey(flow.SourceConnectionString);
                    var snapshot = snapshots[sourceKey];

                    ElasticsearchClient? client = null;
                    if (flow.Destination is ElasticsearchDestination es && !clients.TryGetValue(es, out client))
                    {
                        client = ElasticsearchSink.CreateClient(es);
                        clients[es] = client;
                    }

                    foreach (var pipeline in flow.Pipelines)
                    {
                        var layout = await snapshot.DescribeAsync(pipeline.Schema, pipeline.Table, pipeline.KeyColumns, cancellationToken).ConfigureAwait(false);
                        foreach (var foreignLeaf in layout.ForeignLeaves.Where(_ => pipeline.Partition.StartNumerator == 0))
                        {
                            _log.LogWarning("Partition {Partition} of {Table} is a foreign table: the sync reads only local heap partitions, so its rows are NOT synced. " +
                                "Sync it from its own server, or detach it from {Parent}", foreignLeaf, layout.QualifiedName, layout.QualifiedName);
                        }

                        var segments = new List<Segment>();
                        var rewrittenLeaves = new HashSet<string>(StringComparer.Ordinal);
                        foreach (var leaf in layout.Leaves)
                        {
                            // Block counts are fixed per run, so a resumed run keeps exactly the same partition boundaries.
                            var key = sourceKey + "|" + leaf.QualifiedName;
                            if (!manifest.Blocks.TryGetValue(key, out var blocks))
                            {
                                // A handed-over snapshot comes with the planner's counts: the other replicas cut the table there too.
                                blocks = _handoff is not null && _handoff.Blocks.TryGetValue(leaf.QualifiedName, out var planned) ? planned : leaf.Blocks;
                                manifest.Blocks[key] = blocks;
                            }

                            // A resumed run whose first snapshot is gone re-reads whatever may have moved into the ranges read so far.
                            var rewritten = manifest.FileNodes.TryGetValue(key, out var fileNode) ? fileNode != leaf.FileNode : resuming;
                            if (rewritten)
                            {
                                rewrittenLeaves.Add(leaf.QualifiedName);
                            }

                            manifest.FileNodes.TryAdd(key, leaf.FileNode);
                            var segment = new Segment(leaf.QualifiedName, pipeline.Partition.StartBlock(blocks), pipeline.Partition.EndBlock(blocks), blocks);
                            if (segment.End is null || segment.End > segment.Start)
                            {
                                segments.Add(segment);
                            }
                        }

                        var props = ReplicaProps.From(pipeline.Props, $"{flow.Name}/{pipeline.ReplicaName}");
                        var (f, p, c) = (flow, pipeline, client);
                        Func<IReplicaSink> destinationSink = f.Destination switch
                        {
                            FilesDestination files => () => new FilesSink(files.Directory, p.IndexName, f.Name, p.ReplicaName),
                            ElasticsearchDestination => () => new ElasticsearchSink(c!, deadLetters, new BulkRetryOptions(options.MaxBulkRetries, options.RetryBaseDelay, options.TimeProvider), props.MaxInFlight, f.Name, p.ReplicaName, p.IndexName),
                            _ => throw new SyncConfigurationException($"Flow '{flow.Name}': unsupported destination {flow.Destination.GetType().Name}."),
                        };
                        var configuredFlow = f.ConfiguredFlow ?? f.Name;
                        var transformers = options.Transformers.Where(t => t.AppliesTo(configuredFlow, p.Schema, p.Table)).ToList();
                        var pipelineHooks = options.PipelineHooks.Where(h => h.AppliesTo(configuredFlow, p.Schema, p.Table)).ToList();
                        Func<IReplicaSink> sink = transformers.Count == 0 ? destinationSink
                            : () => new Transforming.TransformingSink(destinationSink(), transformers, deadLetters, configuredFlow, p.Schema, p.Table, p.ReplicaName, options.TransformBudget, options.TransformerCounts)
                            {
                                Backlog = pipelineHooks.Where(h => h.Declares(Batching.PipelineHookKind.Backlog)).ToList(),
                                Pipeline = Batching.PipelineHookRunner.Info(configuredFlow, f, p, options),
                                MaxRetries = options.MaxBacklogRetries,
                            };
                        // A files replica with an old file must still run, to truncate what a previous run left there.
                        Func<bool> hasOutput = f.Destination is FilesDestination fd
                            ? () => File.Exists(new FilesSink(fd.Directory, p.IndexName, f.Name, p.ReplicaName).Path)
                            : () => false;
                        runners.Add(new ReplicaRunner(context, flow, pipeline, snapshot, layout, segments, props, sink, hasOutput)
                        {
                            PipelineHooks = pipelineHooks.Count == 0 ? null : new Batching.PipelineHookRunner(pipelineHooks, Batching.PipelineHookRunner.Info(configuredFlow, f, p, options), options.TransformBudget),
                            CatchUp = resuming && f.Destination is ElasticsearchDestination
                                ? new CatchUp(snapshot.WrittenSince(manifest.FirstSnapshots[sourceKey]), rewrittenLeaves)
                                : null,
                            RewrittenLeaves = rewrittenLeaves,
                            TargetIndex = SwapsAlias(options, f) ? ElasticsearchAliases.PhysicalIndex(p.IndexName, manifest.RunId) : null,
                        });
                    }
                }

                return runners;
            }

            var runners = await BuildRunnersAsync().ConfigureAwait(false);
            if (resuming && await FilesChangedSinceRunStartAsync(runners, manifest, cancellationToken).ConfigureAwait(false) is { } changed)
            {
                // A files destination cannot replace a document written before the interruption, and the first snapshot is gone.
                _log.LogWarning("Run {RunId} cannot resume into files: {Change} since it started, and its snapshot died with the interrupted process; " +
                    "starting a new full run that rewrites the files", manifest.RunId, changed);
                manifest = NewManifest(options, fingerprint);
                resuming = false;
                context = context with { RunId = manifest.RunId };
                runners = await BuildRunnersAsync().ConfigureAwait(false);
            }

            foreach (var (destination, client) in clients)
            {
                foreach (var index in job.Flows.Where(f => Equals(f.Destination, destination)).SelectMany(f => f.Pipelines).Select(p => p.IndexName).Distinct(StringComparer.Ordinal))
                {
                    if (SwapsAlias(options, destination))
                    {
                        await ElasticsearchAliases.EnsurePhysicalIndexAsync(client, index, ElasticsearchAliases.PhysicalIndex(index, manifest.RunId), cancellationToken).ConfigureAwait(false);
                    }
                    else
                    {
                        await ElasticsearchSink.EnsureIndexAsync(client, index, cancellationToken).ConfigureAwait(false);
                    }
                }
            }

            if (!resuming && options.Mode == SyncMode.Full)
            {
                RemoveFilesOfOtherPlans(job);
            }

            foreach (var (key, snapshot) in snapshots)
            {
                // Reader sessions take their locks now, while nothing can be queued for the tables yet (see RentSessionAsync).
                var readers = Math.Min(Math.Max(1, options.MaxConcurrency), runners.Count(r => r.SourceKey == key));
                await snapshot.WarmAsync(ReplicaRunner.CopyConnectionString(snapshot.ConnectionString), readers, cancellationToken).ConfigureAwait(false);
            }

            await store.SaveManifestAsync(manifest, cancellationToken).ConfigureAwait(false);
            var reports = new ReplicaReport[runners.Count];
            await Parallel.ForEachAsync(
                Enumerable.Range(0, runners.Count),
                new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, options.MaxConcurrency) },
                async (i, _) => reports[i] = await runners[i].RunAsync(cancellationToken).ConfigureAwait(false)).ConfigureAwait(false);

            var outcome = SyncOutcomes.Worst(reports.Select(r => r.Outcome));
            if (outcome is SyncOutcome.Succeeded or SyncOutcome.CompletedWithRejections && !await SwapAliasesAsync(job, clients, manifest.RunId).ConfigureAwait(false))
            {
                // The run stays incomplete: a rerun resumes it (nothing left to read) and tries the swap again.
                outcome = SyncOutcome.Failed;
            }

            if (outcome is SyncOutcome.Succeeded or SyncOutcome.CompletedWithRejections)
            {
                manifest.Completed = true;
                try
                {
                    await store.SaveManifestAsync(manifest, CancellationToken.None).ConfigureAwait(false);
                }
                catch (SyncConfigurationException ex)
                {
                    // Every replica's checkpoint says completed, so a rerun resumes this run and finds nothing left to do.
                    _log.LogWarning("Could not mark run {RunId} completed: {Error}", manifest.RunId, ex.Message);
                }
            }

            var report = new SyncReport
            {
                Outcome = outcome,
                Replicas = reports,
                Duration = options.TimeProvider.GetElapsedTime(started),
                DeadLetterFile = deadLetters.WrittenPath,
            };
            _log.LogInformation("{Summary}", report.Summary);
            return report;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Cancelled while preparing: nothing was read or written, so there is nothing to drain.
            _log.LogInformation("Cancelled before any replica started");
            return new SyncReport { Outcome = SyncOutcome.Cancelled, Replicas = [], Duration = options.TimeProvider.GetElapsedTime(started) };
        }
        finally
        {
            foreach (var snapshot in snapshots.Values)
            {
                await snapshot.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>Whether a flow's documents go to a physical index of the run, and the alias is moved to it at the end: full runs into Elasticsearch.</summary>
    private static bool SwapsAlias(SyncOptions options, SyncFlow flow) => SwapsAlias(options, flow.Destination);

    private static bool SwapsAlias(SyncOptions options, SyncDestination destination) =>
        options.Mode == SyncMode.Full && destination is ElasticsearchDestination;

    /// <summary>
    /// After every replica of a full run succeeded: points each Elasticsearch index name (the alias) at the run's physical index
    /// and deletes the indices it left. Returns false (logged) when a swap failed.
    /// </summary>
    private async Task<bool> SwapAliasesAsync(SyncJob job, Dictionary<ElasticsearchDestination, ElasticsearchClient> clients, string runId)
    {
        if (job.Options.Mode != SyncMode.Full)
        {
            return true;
        }

        foreach (var (destination, client) in clients)
        {
            foreach (var index in job.Flows.Where(f => Equals(f.Destination, destination)).SelectMany(f => f.Pipelines).Select(p => p.IndexName).Distinct(StringComparer.Ordinal))
            {
                try
                {
                    // Not cancellable: the documents are all written, and the swap is one short atomic request.
                    await ElasticsearchAliases.SwapAsync(client, index, ElasticsearchAliases.PhysicalIndex(index, runId), _log, CancellationToken.None).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is InvalidOperationException or Elastic.Transport.TransportException or HttpRequestException)
                {
                    _log.LogError("Run {RunId} wrote every document but could not switch index {Index} to it: {Error}", runId, index, ex.Message);
                    return false;
                }
            }
        }

        return true;
    }

    private static RunManifest NewManifest(SyncOptions options, string fingerprint) => new()
    {
        RunId = options.TimeProvider.GetUtcNow().ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture) + "-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3)),
        Fingerprint = fingerprint,
        StartedAt = options.TimeProvider.GetUtcNow(),
    };

    /// <summary>
    /// For a resumed run with a files destination: what changed since the run's first snapshot in the block ranges its files
    /// replicas read before the interruption (a rewritten heap, or a row version written after that snapshot), or null when
    /// nothing did and the files can be continued as they are (rows written into ranges not read yet are read anyway).
    /// </summary>
    private static async Task<string?> FilesChangedSinceRunStartAsync(List<ReplicaRunner> runners, RunManifest manifest, CancellationToken ct)
    {
        foreach (var runner in runners.Where(r => r.WritesFiles))
        {
            if (!manifest.FirstSnapshots.TryGetValue(runner.SourceKey, out var first) || first.UncertainFrom == 0)
            {
                return $"the checkpoints of {runner.SourceKey} predate snapshot tracking";
            }

            foreach (var chunk in runner.ReadSoFar())
            {
                if (runner.RewrittenLeaves.Contains(chunk.Relation))
                {
                    return $"{chunk.Relation} was rewritten (TRUNCATE, VACUUM FULL, CLUSTER)";
                }

                if (await runner.Snapshot.HasRowsWrittenSinceAsync(chunk, first, ct).ConfigureAwait(false))
                {
                    return $"rows of {chunk.Relation} were written into blocks read before the interruption";
                }
            }
        }

        return null;
    }

    /// <summary>
    /// A new full run rewrites every file of its plan; a file in the same index folders that the plan does not write (an
    /// earlier plan's replica) would bring back rows deleted since, so it is removed. An index folder belongs to one job.
    /// </summary>
    private void RemoveFilesOfOtherPlans(SyncJob job)
    {
        var planned = job.Flows
            .SelectMany(f => f.Destination is FilesDestination fd
                ? f.Pipelines.Select(p => Path.GetFullPath(new FilesSink(fd.Directory, p.IndexName, f.Name, p.ReplicaName).Path))
                : [])
            .ToHashSet(StringComparer.Ordinal);
        foreach (var folder in planned.Select(Path.GetDirectoryName).Distinct(StringComparer.Ordinal).Where(Directory.Exists))
        {
            foreach (var file in Directory.EnumerateFiles(folder!, "*.ndjson").Where(f => !planned.Contains(Path.GetFullPath(f))))
            {
                File.Delete(file);
                _log.LogInformation("Removed {File}: this full run's plan does not write it, and its rows would come back when the folder is loaded", file);
            }
        }
    }

    /// <summary>The first leaf whose block count in the resumed manifest differs from the handed-over one, or null.</summary>
    private static (string Leaf, long Had, long Now)? OtherBoundaries(SyncJob job, RunManifest manifest, SnapshotHandoff handoff)
    {
        foreach (var source in job.Flows.Select(f => SourceSnapshot.SourceKey(f.SourceConnectionString)).Distinct(StringComparer.Ordinal))
        {
            foreach (var (leaf, blocks) in handoff.Blocks)
            {
                if (manifest.Blocks.TryGetValue(source + "|" + leaf, out var had) && had != blocks)
                {
                    return (leaf, had, blocks);
                }
            }
        }

        return null;
    }

    /// <summary>Every table the job reads from one source database, qualified, each once.</summary>
    internal static List<string> TablesOf(SyncJob job, string sourceKey) =>
        job.Flows.Where(f => SourceSnapshot.SourceKey(f.SourceConnectionString) == sourceKey)
            .SelectMany(f => f.Pipelines).Select(p => Postgres.Sql.Qualified(p.Schema, p.Table)).Distinct(StringComparer.Ordinal).ToList();

    private static void Validate(SyncJob job)
    {
        var flows = new HashSet<string>(StringComparer.Ordinal);
        foreach (var flow in job.Flows)
        {
            if (!flows.Add(flow.Name))
            {
                throw new SyncConfigurationException($"Flow replica name '{flow.Name}' appears twice; every flow replica needs a unique name.");
            }

            var replicas = new HashSet<string>(StringComparer.Ordinal);
            foreach (var p in flow.Pipelines)
            {
                if (!replicas.Add(p.ReplicaName))
                {
                    throw new SyncConfigurationException($"Flow '{flow.Name}': pipeline replica name '{p.ReplicaName}' appears twice.");
                }

                if (p.Partition.Denominator <= 0)
                {
                    throw new SyncConfigurationException($"Flow '{flow.Name}', pipeline '{p.ReplicaName}': no partition range (use PartitionRange.Whole or PartitionRange.ForReplica).");
                }

                if (string.IsNullOrWhiteSpace(p.IndexName))
                {
                    throw new SyncConfigurationException($"Flow '{flow.Name}', pipeline '{p.ReplicaName}': no index name.");
                }
            }
        }

        if (job.Options.BlocksPerChunk <= 0)
        {
            throw new SyncConfigurationException("SyncOptions.BlocksPerChunk must be positive.");
        }
    }

    private static string Fingerprint(SyncJob job)
    {
        var sb = new StringBuilder();
        sb.Append(job.Options.Mode).Append('\n');
        foreach (var f in job.Flows)
        {
            sb.Append("F|").Append(f.Name).Append('|').Append(SourceSnapshot.SourceKey(f.SourceConnectionString)).Append('|').Append(f.Destination switch
            {
                ElasticsearchDestination es => "es:" + es.Uri,
                FilesDestination files => "files:" + Path.GetFullPath(files.Directory),
                _ => f.Destination.GetType().Name,
            }).Append('\n');
            foreach (var p in f.Pipelines)
            {
                sb.Append("P|").Append(p.ReplicaName).Append('|').Append(p.Schema).Append('.').Append(p.Table).Append('|')
                    .Append(string.Join(",", p.KeyColumns)).Append('|').Append(p.IndexName).Append('|').Append(p.IncrementalColumn)
                    .Append('|').Append(p.Partition.ToString()).Append('\n');
            }
        }

        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(sb.ToString())));
    }
}
