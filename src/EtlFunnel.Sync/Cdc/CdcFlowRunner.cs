using System.Globalization;
using Elastic.Clients.Elasticsearch;
using Elastic.Transport;
using EtlFunnel.Destinations;
using EtlFunnel.Sync.Postgres;
using EtlFunnel.Sync.State;
using Microsoft.Extensions.Logging;
using Npgsql;
using Npgsql.Replication;
using Npgsql.Replication.PgOutput;
using Npgsql.Replication.PgOutput.Messages;
using NpgsqlTypes;

namespace EtlFunnel.Sync.Cdc;

/// <summary>
/// One CDC flow (all replicas of one configured flow, one source database): checks, publication, slot, the snapshot under the
/// slot's exported snapshot, then the stream applied through lanes, acknowledging only what every lane confirmed.
/// </summary>
internal sealed class CdcFlowRunner
{
    internal const string MessagePrefix = "etlfunnel";
    private const string StateFlow = "$cdc";
    private const string StateReplica = "slot";
    private readonly IReadOnlyList<SyncFlow> _flows;
    private readonly CdcFlowSettings _settings;
    private readonly CdcRunOptions _run;
    private readonly SyncOptions _options;
    private readonly ILogger _log;
    private readonly IProgress<SyncProgress>? _progress;
    private readonly string _where;
    private readonly List<CdcTable> _tables = [];
    // The transformers that apply to each table (AppliesTo as loaded when the stream starts); tables without any are absent.
    private readonly Dictionary<CdcTable, IReadOnlyList<Transforming.IBatchTransformer>> _transformers = [];
    // Written by the stream loop, read by the status monitor: both under the queue's lock.
    private readonly Queue<(NpgsqlLogSequenceNumber Lsn, long[] Counts, DateTime? Committed)> _pendingAcks = new();
    private DateTime? _receiving;
    private NpgsqlLogSequenceNumber _acked;
    private long _lastSave;

    public CdcFlowRunner(IReadOnlyList<SyncFlow> flows, CdcFlowSettings settings, CdcRunOptions run, SyncOptions options, ILogger log, IProgress<SyncProgress>? progress)
    {
        _flows = flows;
        _settings = settings;
        _run = run;
        _log = log;
        _progress = progress;
        _where = settings.ConfiguredAt ?? $"CDC flow '{flows[0].Name}' (slot {settings.Slot})";
        // Each slot keeps its snapshot's manifest and checkpoints apart from other runs in the same store.
        _options = options with
        {
            Mode = SyncMode.Cdc,
            StateDirectory = Path.Combine(options.StateDirectory, "cdc", StateStore.SafeName(settings.Slot)),
            StateTable = options.StateTable is { } table ? table with { Scope = $"{table.Scope}/cdc/{settings.Slot}" } : null,
        };
    }

    private SyncFlow First => _flows[0];

    // The flow name transformers match and see, as the snapshot's replicas give it.
    private string TransformFlow => First.ConfiguredFlow ?? First.Name;

    public async Task<CdcReport> RunAsync(CancellationToken ct)
    {
        var started = _options.TimeProvider.GetTimestamp();
        try
        {
            return await RunCoreAsync(started, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Stopped while setting up (a slot being created, a snapshot being retaken): nothing was acknowledged past
            // what the state holds, so this is a plain cancel, as one during the stream is.
            return new CdcReport
            {
                Outcome = SyncOutcome.Cancelled,
                ConfirmedLsn = _acked == default ? null : _acked.ToString(),
                Duration = _options.TimeProvider.GetElapsedTime(started),
            };
        }
    }

    private async Task<CdcReport> RunCoreAsync(long started, CancellationToken ct)
    {
        CdcReport Report(SyncOutcome outcome, SyncReport? snapshot, IReadOnlyList<ApplyLane> lanes, string? error) => new()
        {
            Outcome = outcome,
            Snapshot = snapshot,
            ChangesApplied = lanes.Sum(l => l.Confirmed),
            VersionConflicts = lanes.Sum(l => l.Conflicts),
            DeadLettered = lanes.Sum(l => l.DeadLettered),
            ConfirmedLsn = _acked == default ? null : _acked.ToString(),
            Duration = _options.TimeProvider.GetElapsedTime(started),
            Error = error,
        };

        var cs = First.SourceConnectionString;
        await using var conn = new NpgsqlConnection(cs);
        await conn.OpenAsync(ct).ConfigureAwait(false);
        await ResolveTablesAsync(conn, ct).ConfigureAwait(false);
        await CdcSource.CheckAsync(conn, _tables, _where, _log, ct).ConfigureAwait(false);
        if (First.Destination is FilesDestination && _settings.Truncate == CdcTruncatePolicy.DeleteAll)
        {
            throw new SyncConfigurationException($"{_where}: `truncate: delete_all` needs an Elasticsearch destination (a files destination cannot list the documents to delete); use `truncate: stop`.");
        }

        await CdcSource.EnsurePublicationAsync(conn, _settings.Publication, _tables, _log, ct).ConfigureAwait(false);
        var existing = await CdcSource.FindSlotAsync(conn, _settings.Slot, ct).ConfigureAwait(false);
        if (existing is not null)
        {
            CdcSource.EnsureUsable(existing, _where);
        }

        await using var store = await StateStores.OpenAsync(_options, ct).ConfigureAwait(false);
        var checkpoint = store.Load(StateFlow, StateReplica);
        var replicationCs = ReplicationConnectionString(cs);
        await using var repl = new LogicalReplicationConnection(replicationCs);
        await repl.Open(ct).ConfigureAwait(false);

        PgOutputReplicationSlot slot;
        SyncReport? snapshot = null;
        NpgsqlLogSequenceNumber? start = null;
        if (existing is null)
        {
            slot = await CreateSlotAsync(repl, _settings.Slot, temporary: false, ct).ConfigureAwait(false);
            checkpoint = new ReplicaState { RunId = slot.ConsistentPoint.ToString(), Watermark = slot.ConsistentPoint.ToString() };
            await SaveAsync(store, checkpoint).ConfigureAwait(false);
            _log.LogInformation("{Where}: created slot {Slot} at {Lsn}; taking the snapshot in its exported snapshot {Snapshot}", _where, _settings.Slot, slot.ConsistentPoint, slot.SnapshotName);
            try
            {
                snapshot = await SnapshotAsync(slot.SnapshotName!, slot.ConsistentPoint, ct).ConfigureAwait(false);
            }
            catch (SyncConfigurationException ex) when (ex.InnerException is RelationRewrittenException rewritten)
            {
                // The slot's snapshot is imported and only then locked: a TRUNCATE (or VACUUM FULL, CLUSTER) that committed in
                // between left a heap that snapshot cannot read. The slot keeps every change since its consistent point, so a
                // newer snapshot (taken after the rewrite) is as good; its documents carry its own, higher version.
                _log.LogWarning("{Where}: {Relation} was rewritten while the snapshot started; taking it again", _where, rewritten.Relation);
                snapshot = await RetakeSnapshotAsync(replicationCs, ct).ConfigureAwait(false);
            }
        }
        else
        {
            slot = new PgOutputReplicationSlot(_settings.Slot);
            if (checkpoint is not { Completed: true })
            {
                // The slot exists but its snapshot never completed (a crash or stop mid-snapshot, or lost state): read a fresh
                // snapshot from a temporary slot. The stream from this slot's position still carries every change since its
                // consistent point, and versions make the changes older than the new snapshot harmless.
                _log.LogInformation("{Where}: slot {Slot} exists but its snapshot did not complete; taking a new snapshot", _where, _settings.Slot);
                checkpoint ??= new ReplicaState { RunId = existing.ConfirmedLsn ?? "" };
                snapshot = await RetakeSnapshotAsync(replicationCs, ct).ConfigureAwait(false);
            }
            else if (checkpoint.Watermark is { } saved && NpgsqlLogSequenceNumber.TryParse(saved, out var lsn))
            {
                start = lsn;
                _acked = lsn;
            }
        }

        if (snapshot is not null && snapshot.Outcome is not (SyncOutcome.Succeeded or SyncOutcome.CompletedWithRejections))
        {
            return Report(snapshot.Outcome, snapshot, [], snapshot.Outcome == SyncOutcome.Cancelled ? null : "the snapshot failed; run again to take it again (the slot keeps every change since)");
        }

        checkpoint!.Completed = true;
        await SaveAsync(store, checkpoint).ConfigureAwait(false);
        return await StreamAsync(conn, repl, slot, start, store, checkpoint, snapshot, Report, ct).ConfigureAwait(false);
    }

    private async Task<CdcReport> StreamAsync(NpgsqlConnection conn, LogicalReplicationConnection repl, PgOutputReplicationSlot slot, NpgsqlLogSequenceNumber? start,
        IStateStore store, ReplicaState checkpoint, SyncReport? snapshot, Func<SyncOutcome, SyncReport?, IReadOnlyList<ApplyLane>, string?, CdcReport> report, CancellationToken ct)
    {
        var laneCount = CdcEngine.LaneCount(_flows);
        var lanes = Enumerable.Range(0, laneCount).Select(_ => new ApplyLane(_run.LaneCapacity, _run.MaxBatchSize)).ToArray();
        await using var deadLetters = new DeadLetterWriter(_options.DeadLetterDirectory, $"cdc-{StateStore.SafeName(_settings.Slot)}-{_options.TimeProvider.GetUtcNow():yyyyMMdd'T'HHmmss'Z'}");
        var client = First.Destination is ElasticsearchDestination es ? ElasticsearchSink.CreateClient(es) : null;
        if (client is not null)
        {
            foreach (var index in _tables.Select(t => t.Index).Distinct(StringComparer.Ordinal))
            {
                await ElasticsearchSink.EnsureIndexAsync(client, index, ct).ConfigureAwait(false);
            }
        }

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var sinks = lanes.Select((_, i) => client is not null
            ? (IChangeSink)new ElasticsearchChangeSink(client, deadLetters, _options, First.Name, $"cdc-{i}")
            : new FilesChangeSink(((FilesDestination)First.Destination).Directory, First.Name, i)).ToArray();
        if (_transformers.Count > 0)
        {
            // Transformers run in the lanes, on each batch of changes (one call per table and transformer), after the lane is chosen
            // by the source row's own id: every change of a row stays in its lane's order whatever _id the transformer gives it.
            sinks = [.. sinks.Select((sink, i) => (IChangeSink)new TransformingChangeSink(sink, _transformers, deadLetters, TransformFlow, $"cdc-{i}", _options.TransformBudget, _options.TransformerCounts))];
        }

        // Lanes keep writing after a stop request until their queues are empty; only a failure cancels them.
        using var laneFailure = new CancellationTokenSource();
        var laneTasks = lanes.Select((lane, i) => Task.Run(async () =>
        {
            try
            {
                await lane.RunAsync(sinks[i], _run.AfterLaneBatch, laneFailure.Token).ConfigureAwait(false);
            }
            catch
            {
                await stop.CancelAsync().ConfigureAwait(false);
                throw;
            }
        }, CancellationToken.None)).ToArray();

        await using var decoder = await ChangeDecoder.OpenAsync(First.SourceConnectionString, _tables, ct).ConfigureAwait(false);
        var caughtUpToken = $"caught-up:{_settings.Slot}:{Guid.NewGuid():N}";
        var target = await EmitAsync(conn, caughtUpToken, ct).ConfigureAwait(false);
        using var heartbeatStop = CancellationTokenSource.CreateLinkedTokenSource(stop.Token);
        var heartbeat = HeartbeatAsync(First.SourceConnectionString, heartbeatStop.Token);
        var floor = start ?? slot.ConsistentPoint;
        var monitor = MonitorAsync(First.SourceConnectionString, lanes, floor, heartbeatStop.Token);
        _log.LogInformation("{Where}: streaming slot {Slot} (publication {Publication}) from {Start} with {Lanes} apply lane(s); caught up at {Target}",
            _where, _settings.Slot, _settings.Publication, start?.ToString() ?? slot.ConsistentPoint.ToString(), laneCount, target);

        string? error = null;
        var outcome = SyncOutcome.Cancelled;
        var caughtUp = false;
        long version = 0;
        try
        {
            var options = new PgOutputReplicationOptions(_settings.Publication, PgOutputProtocolVersion.V1, binary: false, messages: true);
            await foreach (var message in repl.StartReplication(slot, options, stop.Token, start).ConfigureAwait(false))
            {
                switch (message)
                {
                    case BeginMessage begin:
                        version = (long)(ulong)begin.TransactionFinalLsn;
                        lock (_pendingAcks)
                        {
                            _receiving = begin.TransactionCommitTimestamp;
                        }

                        break;
                    case RelationMessage relation:
                        await decoder.OnRelationAsync(relation, stop.Token).ConfigureAwait(false);
                        break;
                    case InsertMessage insert:
                        {
                            if (!decoder.TryGet(insert.Relation, out var rel))
                            {
                                rel = await decoder.OnRelationAsync(insert.Relation, stop.Token).ConfigureAwait(false);
                            }

                            var values = await ChangeDecoder.ReadAsync(insert.NewRow, rel.Columns.Length, stop.Token).ConfigureAwait(false);
                            if (rel.Table is { } table)
                            {
                                await UpsertAsync(decoder, lanes, rel, table, values, null, null, false, version, stop.Token).ConfigureAwait(false);
                            }

                            break;
                        }

                    case UpdateMessage update:
                        {
                            if (!decoder.TryGet(update.Relation, out var rel))
                            {
                                rel = await decoder.OnRelationAsync(update.Relation, stop.Token).ConfigureAwait(false);
                            }

                            // The old key (index identity) or old row (REPLICA IDENTITY FULL) comes first and must be read first.
                            var keyOnly = update is IndexUpdateMessage;
                            TupleValues? old = update switch
                            {
                                IndexUpdateMessage keyed => await ChangeDecoder.ReadAsync(keyed.Key, rel.Columns.Length, stop.Token).ConfigureAwait(false),
                                FullUpdateMessage full => await ChangeDecoder.ReadAsync(full.OldRow, rel.Columns.Length, stop.Token).ConfigureAwait(false),
                                _ => null,
                            };
                            var values = await ChangeDecoder.ReadAsync(update.NewRow, rel.Columns.Length, stop.Token).ConfigureAwait(false);
                            if (rel.Table is { } table)
                            {
                                var oldId = old is { } o ? ChangeDecoder.Id(rel, o.Texts) : null;
                                await UpsertAsync(decoder, lanes, rel, table, values, old, oldId, keyOnly, version, stop.Token).ConfigureAwait(false);
                            }

                            break;
                        }

                    case DeleteMessage delete:
                        {
                            if (!decoder.TryGet(delete.Relation, out var rel))
                            {
                                rel = await decoder.OnRelationAsync(delete.Relation, stop.Token).ConfigureAwait(false);
                            }

                            var tuple = delete switch
                            {
                                KeyDeleteMessage keyed => keyed.Key,
                                FullDeleteMessage full => full.OldRow,
                                _ => throw new InvalidOperationException($"Unknown delete message {delete.GetType().Name}."),
                            };
                            var values = await ChangeDecoder.ReadAsync(tuple, rel.Columns.Length, stop.Token).ConfigureAwait(false);
                            if (rel.Table is { } table)
                            {
                                var id = ChangeDecoder.Id(rel, values.Texts);
                                var row = await DeletedRowAsync(decoder, rel, table, values, delete is KeyDeleteMessage, stop.Token).ConfigureAwait(false);
                                await lanes[ApplyLane.For(table.Index, id, lanes.Length)].EnqueueAsync(new ChangeItem(table.Index, id, version, null, table, row), stop.Token).ConfigureAwait(false);
                            }

                            break;
                        }

                    case TruncateMessage truncate:
                        await TruncateAsync(decoder, lanes, truncate, client, deadLetters, version, laneTasks, stop.Token).ConfigureAwait(false);
                        break;
                    case CommitMessage commit:
                        lock (_pendingAcks)
                        {
                            _pendingAcks.Enqueue((commit.TransactionEndLsn, lanes.Select(l => l.Enqueued).ToArray(), commit.TransactionCommitTimestamp));
                            _receiving = null;
                        }

                        break;
                    case LogicalDecodingMessage logical:
                        {
                            using var reader = new StreamReader(logical.Data);
                            var content = await reader.ReadToEndAsync(stop.Token).ConfigureAwait(false);
                            if (logical.Prefix == MessagePrefix)
                            {
                                lock (_pendingAcks)
                                {
                                    _pendingAcks.Enqueue((logical.MessageLsn, lanes.Select(l => l.Enqueued).ToArray(), null));
                                }

                                caughtUp |= content == caughtUpToken;
                            }

                            break;
                        }
                }

                if (caughtUp && _run.UntilCaughtUp)
                {
                    await WaitForLanesAsync(lanes, laneTasks, stop.Token).ConfigureAwait(false);
                    Acknowledge(repl, lanes);
                    await repl.SendStatusUpdate(CancellationToken.None).ConfigureAwait(false);
                    _log.LogInformation("{Where}: caught up at {Lsn}", _where, _acked);
                    outcome = SyncOutcome.Succeeded;
                    break;
                }

                if (Acknowledge(repl, lanes) && _options.TimeProvider.GetElapsedTime(_lastSave) >= TimeSpan.FromSeconds(1))
                {
                    await repl.SendStatusUpdate(stop.Token).ConfigureAwait(false);
                    checkpoint.Watermark = _acked.ToString();
                    await SaveAsync(store, checkpoint).ConfigureAwait(false);
                    ReportProgress(lanes);
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            var failed = laneTasks.FirstOrDefault(t => t.IsFaulted);
            if (failed is not null)
            {
                outcome = SyncOutcome.Failed;
                error = failed.Exception!.InnerException!.Message;
            }
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.ObjectInUse)
        {
            // Another session took the slot between our check and START_REPLICATION (it is released while a snapshot is read).
            _log.LogError(ex, "{Where}: streaming stopped", _where);
            outcome = SyncOutcome.Failed;
            error = $"{_where}: replication slot '{_settings.Slot}' is already active in another session ({ex.MessageText}); is this flow running " +
                "elsewhere? Stop the other sync, or end that session with pg_terminate_backend.";
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            _log.LogError(ex, "{Where}: streaming stopped", _where);
            outcome = SyncOutcome.Failed;
            error = ex.Message;
        }
        finally
        {
            await heartbeatStop.CancelAsync().ConfigureAwait(false);
            foreach (var lane in lanes)
            {
                lane.Complete();
            }

            try
            {
                await Task.WhenAll(laneTasks).ConfigureAwait(false);
            }
            catch (Exception ex) when (outcome != SyncOutcome.Failed)
            {
                outcome = SyncOutcome.Failed;
                error ??= ex.Message;
            }
            catch (Exception)
            {
            }

            try
            {
                await heartbeat.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }

            try
            {
                await monitor.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }

            // Whatever every lane confirmed is acknowledged and saved, also when stopping or failing: nothing past it is lost.
            Acknowledge(repl, lanes);
            checkpoint.Watermark = _acked == default ? checkpoint.Watermark : _acked.ToString();
            await SaveAsync(store, checkpoint).ConfigureAwait(false);
            foreach (var sink in sinks)
            {
                await sink.DisposeAsync().ConfigureAwait(false);
            }
        }

        ReportProgress(lanes);
        var result = report(outcome, snapshot, lanes, error);
        _log.LogInformation("{Where}: {Outcome}; {Changes} change(s) applied ({Conflicts} version conflicts), {Dead} dead-lettered; acknowledged up to {Lsn}",
            _where, outcome, result.ChangesApplied, result.VersionConflicts, result.DeadLettered, result.ConfirmedLsn);
        return result;
    }

    private async Task UpsertAsync(ChangeDecoder decoder, ApplyLane[] lanes, RelationState rel, CdcTable table, TupleValues values, TupleValues? old, string? oldId, bool oldKeyOnly,
        long version, CancellationToken ct)
    {
        var id = ChangeDecoder.Id(rel, values.Texts);
        if (oldId is not null && oldId != id)
        {
            // The key changed: the document under the old id goes (a transformer sees it as a delete of the old key), the row lives on under its new id.
            var row = await DeletedRowAsync(decoder, rel, table, old!.Value, oldKeyOnly, ct).ConfigureAwait(false);
            await lanes[ApplyLane.For(table.Index, oldId, lanes.Length)].EnqueueAsync(new ChangeItem(table.Index, oldId, version, null, table, row), ct).ConfigureAwait(false);
        }

        if (values.AnyUnchanged && !await decoder.FillUnchangedAsync(rel, values, old, ct).ConfigureAwait(false))
        {
            // The row is gone by now: a later change in the stream deletes (or re-keys) it, with a higher version.
            return;
        }

        var source = await decoder.RenderAsync(rel, values.Texts, ct).ConfigureAwait(false);
        await lanes[ApplyLane.For(table.Index, id, lanes.Length)].EnqueueAsync(new ChangeItem(table.Index, id, version, source, table), ct).ConfigureAwait(false);
    }

    // What a delete carried, as the row view of a transformer that applies to its table (null when none does): the key columns
    // (default replica identity), or the whole old row (REPLICA IDENTITY FULL).
    private async Task<byte[]?> DeletedRowAsync(ChangeDecoder decoder, RelationState rel, CdcTable table, TupleValues values, bool keyOnly, CancellationToken ct) =>
        _transformers.ContainsKey(table) ? await decoder.RenderAsync(rel, values.Texts, ct, presentOnly: keyOnly).ConfigureAwait(false) : null;

    private async Task TruncateAsync(ChangeDecoder decoder, ApplyLane[] lanes, TruncateMessage truncate, ElasticsearchClient? client, DeadLetterWriter deadLetters, long version, Task[] laneTasks, CancellationToken ct)
    {
        foreach (var relation in truncate.Relations)
        {
            if (!decoder.TryGet(relation, out var rel))
            {
                rel = await decoder.OnRelationAsync(relation, ct).ConfigureAwait(false);
            }

            if (rel.Table is not { } table)
            {
                continue;
            }

            if (_settings.Truncate == CdcTruncatePolicy.Stop)
            {
                throw new SyncConfigurationException(
                    $"{_where}: table {table.Qualified} was TRUNCATEd (WAL position {new NpgsqlLogSequenceNumber((ulong)version)}) and the flow's policy is `truncate: stop`, so the flow stopped before applying it; " +
                    $"nothing after it was acknowledged. To go on, set `truncate: delete_all` (deletes every document of index '{table.Index}') and run again, " +
                    "or drop the slot (etlfunnel slots drop) and run again for a fresh snapshot.");
            }

            // Everything before the TRUNCATE lands first, then every document of the index is deleted at its version: a replay
            // of this TRUNCATE cannot delete documents written after it (they carry higher versions).
            await WaitForLanesAsync(lanes, laneTasks, ct).ConfigureAwait(false);
            var deleted = await DeleteAllAsync(client!, deadLetters, table.Index, version, ct).ConfigureAwait(false);
            _log.LogInformation("{Where}: {Table} was truncated; deleted {Count} document(s) of index {Index}", _where, table.Qualified, deleted, table.Index);
        }
    }

    private async Task<long> DeleteAllAsync(ElasticsearchClient client, DeadLetterWriter deadLetters, string index, long version, CancellationToken ct)
    {
        var sink = new ElasticsearchChangeSink(client, deadLetters, _options, First.Name, "truncate");
        long deleted = 0, skip = 0;
        while (true)
        {
            await client.Transport.RequestAsync<StringResponse>(new EndpointPath(Elastic.Transport.HttpMethod.POST, $"/{Uri.EscapeDataString(index)}/_refresh"), null, null, null, ct).ConfigureAwait(false);
            var body = string.Create(CultureInfo.InvariantCulture, $"{{\"query\":{{\"match_all\":{{}}}},\"_source\":false,\"from\":{skip},\"size\":1000}}");
            var response = await client.Transport.RequestAsync<StringResponse>(
                new EndpointPath(Elastic.Transport.HttpMethod.POST, $"/{Uri.EscapeDataString(index)}/_search"), PostData.String(body), null, null, ct).ConfigureAwait(false);
            // The transport reports a cancelled request as a response without a status: a stop, not a failed listing.
            ct.ThrowIfCancellationRequested();
            if (response.ApiCallDetails.HttpStatusCode != 200)
            {
                throw new InvalidOperationException($"Listing the documents of index '{index}' to apply a TRUNCATE failed with HTTP {response.ApiCallDetails.HttpStatusCode}: " +
                    (response.ApiCallDetails.OriginalException?.Message ?? response.Body));
            }

            using var json = System.Text.Json.JsonDocument.Parse(response.Body);
            var ids = json.RootElement.GetProperty("hits").GetProperty("hits").EnumerateArray().Select(h => h.GetProperty("_id").GetString()!).ToList();
            if (ids.Count == 0)
            {
                return deleted;
            }

            var outcome = await sink.WriteAsync(ids.Select(id => new ChangeItem(index, id, version, null)).ToList(), ct).ConfigureAwait(false);
            deleted += outcome.Applied - outcome.Conflicts;
            // Documents newer than the TRUNCATE stay; page past them.
            skip += outcome.Conflicts + outcome.DeadLettered;
        }
    }

    private static async Task WaitForLanesAsync(ApplyLane[] lanes, Task[] laneTasks, CancellationToken ct)
    {
        while (lanes.Any(l => l.Confirmed < l.Enqueued))
        {
            if (laneTasks.FirstOrDefault(t => t.IsFaulted) is { } failed)
            {
                throw new InvalidOperationException($"An apply lane failed: {failed.Exception!.InnerException!.Message}", failed.Exception.InnerException);
            }

            await Task.Delay(2, ct).ConfigureAwait(false);
        }
    }

    // Moves the acknowledged position to the last commit (or heartbeat) whose changes every lane confirmed.
    private bool Acknowledge(LogicalReplicationConnection repl, ApplyLane[] lanes)
    {
        var moved = false;
        lock (_pendingAcks)
        {
            while (_pendingAcks.TryPeek(out var head) && AllConfirmed(lanes, head.Counts))
            {
                _pendingAcks.Dequeue();
                if (head.Lsn > _acked)
                {
                    _acked = head.Lsn;
                    moved = true;
                }
            }
        }

        if (moved)
        {
            repl.SetReplicationStatus(_acked);
        }

        return moved;
    }

    private static bool AllConfirmed(ApplyLane[] lanes, long[] counts)
    {
        for (var i = 0; i < lanes.Length; i++)
        {
            if (lanes[i].Confirmed < counts[i])
            {
                return false;
            }
        }

        return true;
    }

    private async Task HeartbeatAsync(string connectionString, CancellationToken ct)
    {
        await Task.Yield();
        try
        {
            await using var conn = new NpgsqlConnection(connectionString);
            await conn.OpenAsync(ct).ConfigureAwait(false);
            while (!ct.IsCancellationRequested)
            {
                await Task.Delay(_run.HeartbeatInterval, _options.TimeProvider, ct).ConfigureAwait(false);
                await EmitAsync(conn, "heartbeat", ct).ConfigureAwait(false);
            }
        }
        catch (NpgsqlException ex)
        {
            _log.LogWarning(ex, "{Where}: heartbeats stopped; on a quiet database the slot now advances only with changes", _where);
        }
    }

    // Every StatusInterval: the source's current WAL position against what every lane applied, and how old the oldest
    // received-but-unapplied commit is. Runs beside the stream loop, which may be waiting for a message while lanes confirm.
    private async Task MonitorAsync(string connectionString, ApplyLane[] lanes, NpgsqlLogSequenceNumber floor, CancellationToken ct)
    {
        if (_run.OnStatus is not { } onStatus)
        {
            return;
        }

        await Task.Yield();
        try
        {
            await using var conn = new NpgsqlConnection(connectionString);
            await conn.OpenAsync(ct).ConfigureAwait(false);
            await using var cmd = new NpgsqlCommand("SELECT pg_current_wal_lsn()", conn);
            while (!ct.IsCancellationRequested)
            {
                var current = (NpgsqlLogSequenceNumber)(await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false))!;
                onStatus(StreamStatus(lanes, floor, current));
                await Task.Delay(_run.StatusInterval, _options.TimeProvider, ct).ConfigureAwait(false);
            }
        }
        catch (NpgsqlException ex)
        {
            _log.LogWarning(ex, "{Where}: lag monitoring stopped (the stream goes on)", _where);
        }
    }

    internal CdcStreamStatus StreamStatus(ApplyLane[] lanes, NpgsqlLogSequenceNumber floor, NpgsqlLogSequenceNumber current)
    {
        NpgsqlLogSequenceNumber applied, acked;
        DateTime? oldest = null;
        lock (_pendingAcks)
        {
            acked = _acked;
            applied = acked > floor ? acked : floor;
            foreach (var (lsn, counts, committed) in _pendingAcks)
            {
                if (AllConfirmed(lanes, counts))
                {
                    applied = lsn > applied ? lsn : applied;
                }
                else if (committed is not null)
                {
                    // Counts only grow, so every later entry is unconfirmed too: this is the oldest waiting commit.
                    oldest = committed;
                    break;
                }
            }

            oldest ??= _receiving;
        }

        var now = _options.TimeProvider.GetUtcNow().UtcDateTime;
        var known = applied != default;
        return new CdcStreamStatus
        {
            Flow = First.ConfiguredFlow ?? First.Name,
            Slot = _settings.Slot,
            Phase = CdcPhase.Streaming,
            Lanes = lanes.Length,
            AppliedLsn = known ? applied.ToString() : null,
            ConfirmedLsn = acked == default ? null : acked.ToString(),
            CurrentWalLsn = current.ToString(),
            LagBytes = known ? (long)((ulong)current > (ulong)applied ? (ulong)current - (ulong)applied : 0) : null,
            LagSeconds = oldest is { } t ? Math.Max(0, (now - DateTime.SpecifyKind(t, DateTimeKind.Utc)).TotalSeconds) : 0,
            ChangesApplied = lanes.Sum(l => l.Confirmed),
        };
    }

    private static async Task<NpgsqlLogSequenceNumber> EmitAsync(NpgsqlConnection conn, string content, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand("SELECT pg_logical_emit_message(false, $1, $2)", conn);
        cmd.Parameters.AddWithValue(MessagePrefix);
        cmd.Parameters.AddWithValue(content);
        return (NpgsqlLogSequenceNumber)(await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false))!;
    }

    /// <summary>
    /// A snapshot from a temporary slot's exported snapshot (the flow's own slot keeps streaming from its position); again,
    /// a few times, if a relation is rewritten between that snapshot and its locks.
    /// </summary>
    private async Task<SyncReport> RetakeSnapshotAsync(string replicationCs, CancellationToken ct)
    {
        for (var attempt = 1; ; attempt++)
        {
            await using var temp = new LogicalReplicationConnection(replicationCs);
            await temp.Open(ct).ConfigureAwait(false);
            var tempName = (_settings.Slot.Length > 56 ? _settings.Slot[..56] : _settings.Slot) + "_resnap";
            var tempSlot = await CreateSlotAsync(temp, tempName, temporary: true, ct).ConfigureAwait(false);
            _log.LogInformation("{Where}: taking a new snapshot at {Lsn}", _where, tempSlot.ConsistentPoint);
            try
            {
                return await SnapshotAsync(tempSlot.SnapshotName!, tempSlot.ConsistentPoint, ct).ConfigureAwait(false);
            }
            catch (SyncConfigurationException ex) when (ex.InnerException is RelationRewrittenException rewritten && attempt < 3)
            {
                _log.LogWarning("{Where}: {Relation} was rewritten while the snapshot started; taking it again", _where, rewritten.Relation);
            }
        }
    }

    private async Task<SyncReport> SnapshotAsync(string snapshotName, NpgsqlLogSequenceNumber consistentPoint, CancellationToken ct)
    {
        _run.OnStatus?.Invoke(new CdcStreamStatus { Flow = First.ConfiguredFlow ?? First.Name, Slot = _settings.Slot, Phase = CdcPhase.Snapshot });
        // The snapshot's checkpoints live beside the stream's, not in the same folder or scope: the stream's store holds that
        // one's single-writer lock for the whole run.
        var options = _options with
        {
            StateDirectory = Path.Combine(_options.StateDirectory, "snapshot"),
            StateTable = _options.StateTable is { } table ? table with { Scope = $"{table.Scope}/snapshot" } : null,
        };
        var job = new SyncJob { Flows = _flows, Options = options };
        var imports = new Dictionary<string, string>(StringComparer.Ordinal) { [SourceSnapshot.SourceKey(First.SourceConnectionString)] = snapshotName };
        var report = await new SyncEngine(_log, imports, (long)(ulong)consistentPoint).RunAsync(job, _progress, ct).ConfigureAwait(false);
        _log.LogInformation("{Where}: snapshot {Outcome}: {Docs} document(s) at version {Version}", _where, report.Outcome, report.DocsIndexed, (ulong)consistentPoint);
        return report;
    }

    private static async Task<PgOutputReplicationSlot> CreateSlotAsync(LogicalReplicationConnection repl, string name, bool temporary, CancellationToken ct)
    {
        try
        {
            return await repl.CreatePgOutputReplicationSlot(name, temporarySlot: temporary, slotSnapshotInitMode: LogicalSlotSnapshotInitMode.Export, cancellationToken: ct).ConfigureAwait(false);
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.DuplicateObject)
        {
            throw new SyncConfigurationException($"Replication slot '{name}' was created by someone else at the same time; is this flow running elsewhere? ({ex.MessageText})");
        }
    }

    private async Task ResolveTablesAsync(NpgsqlConnection conn, CancellationToken ct)
    {
        foreach (var group in _flows.SelectMany(f => f.Pipelines).GroupBy(p => (p.Schema, p.Table, p.IndexName)))
        {
            var pipeline = group.First();
            var keys = pipeline.KeyColumns.ToList();
            var qualified = Sql.Qualified(pipeline.Schema, pipeline.Table);
            if (keys.Count == 0)
            {
                await using var cmd = new NpgsqlCommand(
                    "SELECT a.attname FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord) " +
                    "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum WHERE i.indrelid = to_regclass($1) AND i.indisprimary ORDER BY k.ord", conn);
                cmd.Parameters.AddWithValue(qualified);
                await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
                while (await r.ReadAsync(ct).ConfigureAwait(false))
                {
                    keys.Add(r.GetString(0));
                }
            }

            if (keys.Count == 0)
            {
                throw new SyncConfigurationException($"{_where}: table {qualified} has no primary key, so documents would have no stable _id. Add a primary key, or set the pipeline's key columns.");
            }

            var table = new CdcTable(pipeline.Schema, pipeline.Table, pipeline.IndexName, keys);
            _tables.Add(table);
            var applying = _options.Transformers.Where(t => t.AppliesTo(TransformFlow, table.Schema, table.Table)).ToList();
            if (applying.Count > 0)
            {
                _transformers[table] = applying;
            }
        }
    }

    private void ReportProgress(ApplyLane[] lanes)
    {
        _progress?.Report(new SyncProgress
        {
            Flow = First.Name,
            Replica = "cdc",
            RowsRead = lanes.Sum(l => l.Enqueued),
            DocsIndexed = lanes.Sum(l => l.Confirmed),
        });
    }

    private Task SaveAsync(IStateStore store, ReplicaState state)
    {
        _lastSave = _options.TimeProvider.GetTimestamp();
        state.UpdatedAt = _options.TimeProvider.GetUtcNow();
        return store.SaveAsync(StateFlow, StateReplica, state, CancellationToken.None);
    }

    // The walsender renders values with these settings; the snapshot sessions use the same, so both paths give the same text.
    private static string ReplicationConnectionString(string connectionString)
    {
        var b = new NpgsqlConnectionStringBuilder(connectionString) { Timezone = "UTC", Options = "-c DateStyle=ISO -c IntervalStyle=postgres -c bytea_output=hex -c extra_float_digits=1" };
        return b.ConnectionString;
    }
}
