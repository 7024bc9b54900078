using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Elastic.Clients.Elasticsearch;
using EtlFunnel.Sync.Postgres;
using EtlFunnel.Sync.Runtime;
using EtlFunnel.Sync.Sinks;
using EtlFunnel.Sync.State;
using Serilog;

namespace EtlFunnel.Sync;

/// <summary>
/// Runs a <see cref="SyncJob"/>: every pipeline replica reads its partition of its table from one exported snapshot per
/// source database, maps rows to JSON documents and writes them to Elasticsearch or NDJSON files, checkpointing as it goes.
/// </summary>
public sealed class SyncEngine
{
    private readonly ILogger _log;
    private readonly SyncTestHooks? _hooks;

    /// <summary>Creates an engine that logs to <paramref name="logger"/> (default: Serilog's static logger).</summary>
    public SyncEngine(ILogger? logger = null)
        : this(logger, null)
    {
    }

    internal SyncEngine(ILogger? logger, SyncTestHooks? hooks)
    {
        _log = (logger ?? Log.Logger).ForContext<SyncEngine>();
        _hooks = hooks;
    }

    /// <summary>
    /// CDC snapshot phase: every source database in <paramref name="importedSnapshots"/> (by <see cref="SourceSnapshot.SourceKey"/>)
    /// is read in that exported snapshot instead of a fresh <c>pg_export_snapshot()</c>, and every document is written with
    /// <paramref name="externalVersion"/> (the slot's consistent point).
    /// </summary>
    internal SyncEngine(ILogger? logger, IReadOnlyDictionary<string, string> importedSnapshots, long externalVersion)
        : this(logger, null)
    {
        _importedSnapshots = importedSnapshots;
        _externalVersion = externalVersion;
    }

    private readonly IReadOnlyDictionary<string, string>? _importedSnapshots;
    private readonly long? _externalVersion;

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
            _log.Information("Cancelled before any replica started");
            return new SyncReport { Outcome = SyncOutcome.Cancelled, Replicas = [], Duration = options.TimeProvider.GetElapsedTime(started) };
        }

        await using var storeScope = store.ConfigureAwait(false);
        var fingerprint = Fingerprint(job);
        var manifest = store.LoadManifest();
        if (manifest is { Completed: false } && manifest.Fingerprint != fingerprint)
        {
            _log.Warning("The job changed since the interrupted run {RunId}; starting a new run instead of resuming it", manifest.RunId);
        }

        var resuming = manifest is { Completed: false } && manifest.Fingerprint == fingerprint;
        if (!resuming)
        {
            manifest = new RunManifest
            {
                RunId = options.TimeProvider.GetUtcNow().ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture) + "-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3)),
                Fingerprint = fingerprint,
                StartedAt = options.TimeProvider.GetUtcNow(),
            };
        }
        else
        {
            _log.Information("Resuming interrupted run {RunId} from {Store}", manifest!.RunId, store.Description);
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

            var runners = new List<ReplicaRunner>();
            foreach (var flow in job.Flows)
            {
                var sourceKey = SourceSnapshot.SourceKey(flow.SourceConnectionString);
                if (!snapshots.TryGetValue(sourceKey, out var snapshot))
                {
                    snapshot = _importedSnapshots is not null && _importedSnapshots.TryGetValue(sourceKey, out var imported)
                        ? await SourceSnapshot.ImportAsync(flow.SourceConnectionString, imported, cancellationToken).ConfigureAwait(false)
                        : await SourceSnapshot.OpenAsync(flow.SourceConnectionString, cancellationToken).ConfigureAwait(false);
                    snapshots[sourceKey] = snapshot;
                }

                ElasticsearchClient? client = null;
                if (flow.Destination is ElasticsearchDestination es && !clients.TryGetValue(es, out client))
                {
                    client = ElasticsearchSink.CreateClient(es);
                    clients[es] = client;
                }

                foreach (var pipeline in flow.Pipelines)
                {
                    var layout = await snapshot.DescribeAsync(pipeline.Schema, pipeline.Table, pipeline.KeyColumns, cancellationToken).ConfigureAwait(false);
                    var segments = new List<Segment>();
                    foreach (var leaf in layout.Leaves)
                    {
                        // Block counts are fixed per run, so a resumed run keeps exactly the same partition boundaries.
                        var key = sourceKey + "|" + leaf.QualifiedName;
                        if (!manifest.Blocks.TryGetValue(key, out var blocks))
                        {
                            blocks = leaf.Blocks;
                            manifest.Blocks[key] = blocks;
                        }

                        var segment = new Segment(leaf.QualifiedName, pipeline.Partition.StartBlock(blocks), pipeline.Partition.EndBlock(blocks), blocks);
                        if (segment.End is null || segment.End > segment.Start)
                        {
                            segments.Add(segment);
                        }
                    }

                    var props = ReplicaProps.From(pipeline.Props, $"{flow.Name}/{pipeline.ReplicaName}");
                    var (f, p, c) = (flow, pipeline, client);
                    Func<IReplicaSink> sink = f.Destination switch
                    {
                        FilesDestination files => () => new FilesSink(files.Directory, p.IndexName, f.Name, p.ReplicaName),
                        ElasticsearchDestination => () => new ElasticsearchSink(c!, deadLetters, options, props.MaxInFlight, f.Name, p.ReplicaName),
                        _ => throw new SyncConfigurationException($"Flow '{flow.Name}': unsupported destination {flow.Destination.GetType().Name}."),
                    };
                    // A files replica with an old file must still run, to truncate what a previous run left there.
                    Func<bool> hasOutput = f.Destination is FilesDestination fd
                        ? () => File.Exists(new FilesSink(fd.Directory, p.IndexName, f.Name, p.ReplicaName).Path)
                        : () => false;
                    runners.Add(new ReplicaRunner(context, flow, pipeline, snapshot, layout, segments, props, sink, hasOutput));
                }
            }

            foreach (var (destination, client) in clients)
            {
                foreach (var index in job.Flows.Where(f => Equals(f.Destination, destination)).SelectMany(f => f.Pipelines).Select(p => p.IndexName).Distinct(StringComparer.Ordinal))
                {
                    await ElasticsearchSink.EnsureIndexAsync(client, index, cancellationToken).ConfigureAwait(false);
                }
            }

            await store.SaveManifestAsync(manifest, cancellationToken).ConfigureAwait(false);
            var reports = new ReplicaReport[runners.Count];
            await Parallel.ForEachAsync(
                Enumerable.Range(0, runners.Count),
                new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, options.MaxConcurrency) },
                async (i, _) => reports[i] = await runners[i].RunAsync(cancellationToken).ConfigureAwait(false)).ConfigureAwait(false);

            var outcome = reports.Length == 0 ? SyncOutcome.Succeeded : reports.Max(r => r.Outcome);
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
                    _log.Warning("Could not mark run {RunId} completed: {Error}", manifest.RunId, ex.Message);
                }
            }

            var report = new SyncReport
            {
                Outcome = outcome,
                Replicas = reports,
                Duration = options.TimeProvider.GetElapsedTime(started),
                DeadLetterFile = deadLetters.WrittenPath,
            };
            _log.Information("{Summary}", report.Summary);
            return report;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Cancelled while preparing: nothing was read or written, so there is nothing to drain.
            _log.Information("Cancelled before any replica started");
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
