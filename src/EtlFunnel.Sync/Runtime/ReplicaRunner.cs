using EtlFunnel.Destinations;
using EtlFunnel.Sync.Postgres;
using EtlFunnel.Sync.State;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace EtlFunnel.Sync.Runtime;

/// <summary>A leaf relation's share for this replica: blocks [Start, End), End null = open-ended (also covers blocks past <see cref="Blocks"/>).</summary>
internal readonly record struct Segment(string Relation, long Start, long? End, long Blocks)
{
    public long Width => (End ?? Blocks) - Start;
}

/// <summary>
/// What a replica of a resumed run re-reads in the block ranges it read before the interruption, whose snapshot is gone:
/// rows matching <see cref="WrittenSince"/> (written after the first snapshot, possibly moved there by an update), and
/// everything in <see cref="RewrittenLeaves"/> (a rewrite moved every row).
/// </summary>
internal sealed record CatchUp(string WrittenSince, IReadOnlySet<string> RewrittenLeaves);

/// <summary>
/// Runs one pipeline replica: reads its block ranges chunk by chunk inside the run's snapshot, writes batches with a
/// bounded number in flight, and checkpoints after each chunk once the destination confirmed all of it. A broken source
/// connection is reopened (same snapshot) and the unconfirmed chunk read again.
/// </summary>
internal sealed class ReplicaRunner
{
    private readonly JobContext _job;
    private readonly SyncFlow _flow;
    private readonly SyncPipeline _pipeline;
    private readonly SourceSnapshot _snapshot;
    private readonly TableLayout _layout;
    private readonly IReadOnlyList<Segment> _segments;
    private readonly Func<IReplicaSink> _sinkFactory;
    private readonly Func<bool> _sinkHasOutput;
    private readonly ReplicaProps _props;
    // Batch buffers are reused across chunks: at most max_in_flight + 1 of them per replica.
    private readonly Stack<DocumentBatch> _freeBatches = new();
    private long _resumedRows;
    private long _retries;
    private long _batches;
    private long _started;
    private int? _batchSize;

    public ReplicaRunner(JobContext job, SyncFlow flow, SyncPipeline pipeline, SourceSnapshot snapshot, TableLayout layout,
        IReadOnlyList<Segment> segments, ReplicaProps props, Func<IReplicaSink> sinkFactory, Func<bool> sinkHasOutput)
    {
        _sinkHasOutput = sinkHasOutput;
        _job = job;
        _flow = flow;
        _pipeline = pipeline;
        _snapshot = snapshot;
        _layout = layout;
        _segments = segments;
        _props = props;
        _sinkFactory = sinkFactory;
    }

    private SyncOptions Options => _job.Options;

    /// <summary>Set when this run resumes after its first snapshot was lost and the destination can replace documents (Elasticsearch).</summary>
    public CatchUp? CatchUp { get; init; }

    /// <summary>Leaf relations whose heap was rewritten since the run started (resumed runs only).</summary>
    public IReadOnlySet<string> RewrittenLeaves { get; init; } = new HashSet<string>();

    /// <summary>The index the documents are written to when it is not the pipeline's (a full run's physical index behind the alias).</summary>
    public string? TargetIndex { get; init; }

    /// <summary>The batch-level hooks that apply to this replica (write rule, termination, checkpoint); null when none do.</summary>
    public Batching.PipelineHookRunner? PipelineHooks { get; init; }

    /// <summary>Whether this replica writes into a files destination.</summary>
    public bool WritesFiles => _flow.Destination is FilesDestination;

    public SourceSnapshot Snapshot => _snapshot;

    /// <summary>The block ranges this replica read (and checkpointed) in this run before it was interrupted.</summary>
    public List<BlockChunk> ReadSoFar()
    {
        var state = _job.Store.Load(_flow.Name, _pipeline.ReplicaName);
        return state is null || state.RunId != _job.RunId ? [] : ReadRanges(state).Select(c => c.Chunk).ToList();
    }

    // Chunks of BlocksPerChunk blocks covering what the checkpoint says was read: every segment before the current one
    // (all of them once completed) and the current one up to its next block.
    private List<(BlockChunk Chunk, bool Rewritten)> ReadRanges(ReplicaState state)
    {
        var chunks = new List<(BlockChunk Chunk, bool Rewritten)>();
        for (var i = 0; i < _segments.Count && (state.Completed || i <= state.Segment); i++)
        {
            var segment = _segments[i];
            var done = state.Completed || i < state.Segment;
            long? readEnd = done ? segment.End : state.NextBlock;
            var rewritten = RewrittenLeaves.Contains(segment.Relation);
            for (var start = segment.Start; readEnd is null || start < readEnd; start += Options.BlocksPerChunk)
            {
                long? end = start + Options.BlocksPerChunk;
                if (readEnd is { } re && end >= re)
                {
                    end = re;
                }
                else if (readEnd is null && end >= segment.Blocks)
                {
                    // The open-ended tail of a fully read last share: everything from here on.
                    end = null;
                }

                chunks.Add((new BlockChunk(segment.Relation, start, end), rewritten));
                if (end is null)
                {
                    break;
                }
            }
        }

        return chunks;
    }

    /// <summary>The source database this replica reads (its snapshot's key).</summary>
    public string SourceKey => SourceSnapshot.SourceKey(_snapshot.ConnectionString);

    public async Task<ReplicaReport> RunAsync(CancellationToken ct)
    {
        var started = Options.TimeProvider.GetTimestamp();
        _started = started;
        var previous = _job.Store.Load(_flow.Name, _pipeline.ReplicaName);
        // Rows an interrupted run of this job already read: progress shows them as resumed, apart from rows read now.
        _resumedRows = previous is not null && previous.RunId == _job.RunId ? previous.RowsRead : 0;
        if (previous is { Completed: true } && previous.RunId == _job.RunId && CatchUp is not null && _segments.Count > 0)
        {
            try
            {
                await using var sink = _sinkFactory();
                await sink.OpenAsync(previous.FileOffset, append: true, ct).ConfigureAwait(false);
                await CatchUpAsync(sink, previous, ct).ConfigureAwait(false);
                await SaveAsync(previous).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return Report(previous, SyncOutcome.Cancelled, started, resumed: true, null);
            }
            catch (Exception ex)
            {
                _job.Log.LogError(ex, "Replica {Flow}/{Replica} failed re-reading what moved while the run was interrupted", _flow.Name, _pipeline.ReplicaName);
                return Report(previous, SyncOutcome.Failed, started, resumed: true, ex.Message);
            }
        }

        if (previous is { Completed: true } && previous.RunId == _job.RunId)
        {
            return Report(previous, previous.DeadLettered > 0 ? SyncOutcome.CompletedWithRejections : SyncOutcome.Succeeded, started, resumed: true, null);
        }

        var resumed = previous is { Completed: false } && previous.RunId == _job.RunId;
        var state = previous ?? new ReplicaState();
        if (ct.IsCancellationRequested)
        {
            return Report(resumed ? state : new ReplicaState(), SyncOutcome.Cancelled, started, resumed, null);
        }

        try
        {
            if (!resumed && _segments.Count == 0 && !_sinkHasOutput())
            {
                // An empty share (common when a plan has far more replicas than the table has blocks): no connection,
                // no state, no file. A later run recomputes it from the block counts of that run.
                return Report(new ReplicaState(), SyncOutcome.Succeeded, started, resumed: false, null);
            }

            if (!resumed)
            {
                state = await FreshStateAsync(previous, ct).ConfigureAwait(false);
            }

            if (PipelineHooks is { } hooks)
            {
                // Once per replica start, before anything is read: a failing rule leaves the last checkpoint as it was.
                await hooks.StartAsync(started, ct).ConfigureAwait(false);
                _batchSize = hooks.BatchSize;
            }

            await using var sink = _sinkFactory();
            await sink.OpenAsync(resumed ? state.FileOffset : null, append: state.RunFrom is not null || state.RunFromWatermark is not null, ct).ConfigureAwait(false);
            state.FileOffset = await sink.FlushAsync(ct).ConfigureAwait(false);
            await SaveAsync(state).ConfigureAwait(false);

            if (resumed && CatchUp is not null)
            {
                await CatchUpAsync(sink, state, ct).ConfigureAwait(false);
                await SaveAsync(state).ConfigureAwait(false);
            }

            var filter = await IncrementalFilterAsync(state, ct).ConfigureAwait(false);
            var reader = new PartitionReader(_layout, filter);
            var reconnects = 0;
            while (state.Segment < _segments.Count)
            {
                try
                {
                    await ReadRemainingAsync(reader, sink, state, ct).ConfigureAwait(false);
                }
                catch (Exception ex) when (IsSourceFailure(ex) && !ct.IsCancellationRequested && reconnects < Options.MaxSourceReconnects)
                {
                    reconnects++;
                    _retries++;
                    _job.Log.LogWarning(ex, "Replica {Flow}/{Replica}: source connection lost; reconnecting ({Attempt}/{Max}) and resuming from the checkpoint",
                        _flow.Name, _pipeline.ReplicaName, reconnects, Options.MaxSourceReconnects);
                    await sink.RewindAsync(state.FileOffset, CancellationToken.None).ConfigureAwait(false);
                    await Task.Delay(Options.RetryBaseDelay * Math.Pow(2, reconnects - 1), Options.TimeProvider, ct).ConfigureAwait(false);
                }
            }

            state.Completed = true;
            CommitWatermark(state);
            await SaveAsync(state).ConfigureAwait(false);
            var outcome = state.DeadLettered > 0 ? SyncOutcome.CompletedWithRejections : SyncOutcome.Succeeded;
            return Report(state, outcome, started, resumed, null);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return Report(state, SyncOutcome.Cancelled, started, resumed, null);
        }
        catch (Exception ex) when (Stop(ex) is { } stop)
        {
            _job.Log.LogWarning("Replica {Flow}/{Replica} stopped by a hook after {Rows} rows: {Reason}; run again to resume from its checkpoint",
                _flow.Name, _pipeline.ReplicaName, state.RowsRead, stop.Message);
            return Report(state, SyncOutcome.Stopped, started, resumed, null) with { StoppedBy = stop.Message };
        }
        catch (Exception ex)
        {
            _job.Log.LogError(ex, "Replica {Flow}/{Replica} failed", _flow.Name, _pipeline.ReplicaName);
            return Report(state, SyncOutcome.Failed, started, resumed, ex.Message);
        }
    }

    private static Batching.PipelineStoppedException? Stop(Exception? ex)
    {
        for (; ex is not null; ex = ex.InnerException)
        {
            if (ex is Batching.PipelineStoppedException stop)
            {
                return stop;
            }
        }

        return null;
    }

    private TimeSpan TimeMargin => _pipeline.IncrementalTimeMargin ?? Options.IncrementalTimeMargin;

    private async Task<ReplicaState> FreshStateAsync(ReplicaState? previous, CancellationToken ct)
    {
        Watermark? from = null, to = null;
        string? legacyFrom = null;
        if (_pipeline.IncrementalColumn is { } column)
        {
            var probe = await _snapshot.ProbeWatermarkAsync(_layout.QualifiedName, column, TimeMargin, ct).ConfigureAwait(false);
            to = probe.Max;
            if (probe.FutureRows > 0 && probe.ClaimWarning())
            {
                _job.Log.LogWarning(
                    "{Table}: {Rows} rows have {Column} later than the source's now() + {Margin}; they are read by every incremental run and do not move the watermark (fix their values if they are wrong)",
                    _layout.QualifiedName, probe.FutureRows, column, TimeMargin);
            }

            if (Options.Mode == SyncMode.Incremental)
            {
                if (previous?.WatermarkValue is { } typed)
                {
                    if (typed.Kind == probe.Kind && typed.Type == probe.Type)
                    {
                        from = typed;
                    }
                    else
                    {
                        _job.Log.LogWarning("{Table}: incremental column {Column} is now {Type} (the watermark was taken as {Old}); reading everything once",
                            _layout.QualifiedName, column, probe.Type, typed.Type);
                    }
                }
                else
                {
                    // State of an earlier version: its text watermark is read once, then replaced by a typed one.
                    legacyFrom = previous?.Watermark;
                }
            }
        }

        return new ReplicaState
        {
            RunId = _job.RunId,
            Segment = 0,
            NextBlock = _segments.Count > 0 ? _segments[0].Start : 0,
            WatermarkValue = previous?.WatermarkValue,
            Watermark = previous?.Watermark,
            RunFrom = from,
            RunFromWatermark = legacyFrom,
            RunTo = to,
        };
    }

    /// <summary>The run's watermark replaces the last one, in full and incremental mode alike (a full run resets it to its own maximum).</summary>
    private void CommitWatermark(ReplicaState state)
    {
        if (_pipeline.IncrementalColumn is null)
        {
            state.WatermarkValue = null;
            state.Watermark = null;
            return;
        }

        // A run an earlier version started (and this one resumed) carries only its text watermark.
        var legacy = state.RunTo is null && state.RunFrom is null && state.RunToWatermark is not null;
        state.WatermarkValue = state.RunTo;
        state.Watermark = legacy ? state.RunToWatermark : null;
    }

    private async Task<string?> IncrementalFilterAsync(ReplicaState state, CancellationToken ct)
    {
        if (_pipeline.IncrementalColumn is not { } column)
        {
            return null;
        }

        if (state.RunFrom is { } from)
        {
            var probe = await _snapshot.ProbeWatermarkAsync(_layout.QualifiedName, column, TimeMargin, ct).ConfigureAwait(false);
            return from.Filter(column, probe.BaseType, TimeMargin, _pipeline.IncrementalNumericMargin ?? Options.IncrementalNumericMargin);
        }

        if (state.RunFromWatermark is not { } legacy)
        {
            return null;
        }

        // The text an earlier version stored, cast under the read session's UTC / ISO settings.
        var (type, category) = await _snapshot.ColumnTypeAsync(_layout.QualifiedName, column, ct).ConfigureAwait(false);
        var bound = $"{Sql.Literal(legacy)}::{type}";
        var margin = category switch
        {
            'D' => $" - interval '{(long)TimeMargin.TotalMilliseconds} milliseconds'",
            'N' => $" - {(_pipeline.IncrementalNumericMargin ?? Options.IncrementalNumericMargin).ToString(System.Globalization.CultureInfo.InvariantCulture)}",
            _ => "",
        };
        return $"({Sql.Ident(column)} > ({bound}{margin}) OR {Sql.Ident(column)} IS NULL)";
    }

    /// <summary>
    /// Re-reads, under this run's (new) snapshot, what may have moved into the block ranges the replica read before the
    /// interruption (see <see cref="CatchUp"/>). Not checkpointed: an interruption here repeats it on the next resume.
    /// </summary>
    private async Task CatchUpAsync(IReplicaSink sink, ReplicaState state, CancellationToken ct)
    {
        var catchUp = CatchUp!;
        var incremental = await IncrementalFilterAsync(state, ct).ConfigureAwait(false);
        var moved = new PartitionReader(_layout, incremental is null ? catchUp.WrittenSince : $"{incremental} AND {catchUp.WrittenSince}");
        var whole = new PartitionReader(_layout, incremental);
        var chunks = ReadRanges(state);
        if (chunks.Count == 0)
        {
            return;
        }

        var connection = await _snapshot.RentSessionAsync(CopyConnectionString(_snapshot.ConnectionString), ct).ConfigureAwait(false);
        var healthy = false;
        long rows = 0, indexed = 0;
        try
        {
            foreach (var (chunk, all) in chunks)
            {
                var (r, i, dead, retries) = await ProcessChunkAsync(all ? whole : moved, connection, sink, chunk, state, ct).ConfigureAwait(false);
                rows += r;
                indexed += i;
                state.DeadLettered += dead;
                _retries += retries;
            }

            await _job.DeadLetters.FlushAsync(CancellationToken.None).ConfigureAwait(false);
            state.FileOffset = await sink.FlushAsync(CancellationToken.None).ConfigureAwait(false);
            healthy = true;
        }
        finally
        {
            await _snapshot.ReturnSessionAsync(connection, healthy).ConfigureAwait(false);
        }

        state.RowsRead += rows;
        state.DocsIndexed += indexed;
        state.ReReadAfterResume += rows;
        _job.Log.LogInformation("Replica {Flow}/{Replica}: re-read {Rows} rows written or moved while the run was interrupted", _flow.Name, _pipeline.ReplicaName, rows);
    }

    private async Task ReadRemainingAsync(PartitionReader reader, IReplicaSink sink, ReplicaState state, CancellationToken ct)
    {
        var connection = await _snapshot.RentSessionAsync(CopyConnectionString(_snapshot.ConnectionString), ct).ConfigureAwait(false);
        var healthy = false;
        try
        {
            await ReadSegmentsAsync(reader, connection, sink, state, ct).ConfigureAwait(false);
            healthy = true;
        }
        finally
        {
            await _snapshot.ReturnSessionAsync(connection, healthy).ConfigureAwait(false);
        }
    }

    private async Task ReadSegmentsAsync(PartitionReader reader, NpgsqlConnection connection, IReplicaSink sink, ReplicaState state, CancellationToken ct)
    {
        while (state.Segment < _segments.Count)
        {
            var segment = _segments[state.Segment];
            var limit = segment.End ?? segment.Blocks;
            BlockChunk chunk;
            bool segmentDone;
            if (state.NextBlock >= 0 && state.NextBlock < limit)
            {
                var end = Math.Min(state.NextBlock + Options.BlocksPerChunk, limit);
                chunk = new BlockChunk(segment.Relation, state.NextBlock, end);
                segmentDone = end == limit && segment.End is not null;
            }
            else if (segment.End is null && state.NextBlock >= 0)
            {
                // Open-ended tail: rows in blocks added after the block count was taken.
                chunk = new BlockChunk(segment.Relation, Math.Max(state.NextBlock, segment.Blocks), null);
                segmentDone = true;
            }
            else
            {
                chunk = default;
                segmentDone = true;
            }

            if (chunk.Relation is not null)
            {
                var (rows, indexed, dead, retries) = await ProcessChunkAsync(reader, connection, sink, chunk, state, ct).ConfigureAwait(false);
                await _job.DeadLetters.FlushAsync(CancellationToken.None).ConfigureAwait(false);
                state.FileOffset = await sink.FlushAsync(CancellationToken.None).ConfigureAwait(false);
                state.RowsRead += rows;
                state.DocsIndexed += indexed;
                state.DeadLettered += dead;
                _retries += retries;
                state.NextBlock = chunk.EndBlock ?? -1;
            }

            if (segmentDone || state.NextBlock < 0 || (segment.End is { } e && state.NextBlock >= e))
            {
                state.Segment++;
                state.NextBlock = state.Segment < _segments.Count ? _segments[state.Segment].Start : 0;
            }

            await SaveAsync(state).ConfigureAwait(false);
            ReportProgress(state, 0, null);
            if (PipelineHooks is { } hooks && state.Segment < _segments.Count)
            {
                // After the checkpoint is durable; nothing is left to stop once the last one is written.
                var rowsThisRun = state.RowsRead - _resumedRows;
                await hooks.AfterCheckpointAsync(n => new Execution.Models.CheckpointInfo
                {
                    Pipeline = hooks.Pipeline,
                    RowsRead = state.RowsRead,
                    DocsIndexed = state.DocsIndexed,
                    Batches = Interlocked.Read(ref _batches),
                    Checkpoints = n,
                    DeadLettered = state.DeadLettered,
                    Elapsed = Options.TimeProvider.GetElapsedTime(_started),
                    Position = $"{_segments[state.Segment].Relation} block {state.NextBlock}",
                }, rowsThisRun, _started, Options.TimeProvider, ct).ConfigureAwait(false);
            }
        }
    }

    private async Task<(long Rows, long Indexed, long Dead, long Retries)> ProcessChunkAsync(
        PartitionReader reader, NpgsqlConnection connection, IReplicaSink sink, BlockChunk chunk, ReplicaState state, CancellationToken ct)
    {
        var maxInFlight = Math.Max(1, Math.Min(_props.MaxInFlight, sink.MaxInFlight));
        var free = _freeBatches;
        var pending = new Queue<(Task<BatchOutcome> Task, DocumentBatch Batch)>();
        long indexed = 0, dead = 0, retries = 0;
        var batch = free.Count > 0 ? free.Pop() : new DocumentBatch(TargetIndex ?? _pipeline.IndexName, Math.Min(_props.BatchBytes, 1 << 20), _job.ExternalVersion);

        async ValueTask Complete()
        {
            var (task, done) = pending.Dequeue();
            var outcome = await task.ConfigureAwait(false);
            indexed += outcome.Indexed;
            dead += outcome.DeadLettered;
            retries += outcome.Retries;
            done.Clear();
            free.Push(done);
        }

        async ValueTask Dispatch()
        {
            if (batch.Count == 0)
            {
                return;
            }

            while (pending.Count >= maxInFlight)
            {
                await Complete().ConfigureAwait(false);
            }

            // Sends are not cancelled: a batch already handed over is drained so its outcome is known.
            pending.Enqueue((sink.WriteAsync(batch, CancellationToken.None), batch));
            batch = free.Count > 0 ? free.Pop() : new DocumentBatch(TargetIndex ?? _pipeline.IndexName, Math.Min(_props.BatchBytes, 1 << 20), _job.ExternalVersion);
            var number = Interlocked.Increment(ref _batches);
            ReportProgress(state, indexed, null);
            if (_job.Hooks?.AfterDispatch is { } hook)
            {
                await hook(new BatchDispatched(_flow.Name, _pipeline.ReplicaName, connection.ProcessID, number)).ConfigureAwait(false);
            }
        }

        long rows;
        try
        {
            rows = await reader.ReadAsync(connection, chunk, () => batch, _batchSize ?? _props.BatchSize, _props.BatchBytes, Dispatch, ct).ConfigureAwait(false);
            await Dispatch().ConfigureAwait(false);
        }
        finally
        {
            // Drain whatever is in flight before this chunk is checkpointed, read again, or abandoned.
            var drainErrors = new List<Exception>();
            while (pending.Count > 0)
            {
                try
                {
                    await Complete().ConfigureAwait(false);
                }
                catch (Exception ex)
                {
                    drainErrors.Add(ex);
                }
            }

            batch.Clear();
            free.Push(batch);
            if (drainErrors.Count > 0)
            {
                throw new InvalidOperationException($"Writing to the destination failed: {drainErrors[0].Message}", drainErrors[0]);
            }
        }

        return (rows, indexed, dead, retries);
    }

    // A COPY stream is one long read: a 1 MB receive buffer (Npgsql's default is 8 KB) takes it in far fewer socket
    // reads and thread-pool hops, which measured 25 - 30 % less wall time for 1M rows. A larger value the user set is kept.
    internal static string CopyConnectionString(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        if (builder.ReadBufferSize < CopyReadBufferSize)
        {
            builder.ReadBufferSize = CopyReadBufferSize;
        }

        return builder.ConnectionString;
    }

    private const int CopyReadBufferSize = 1 << 20;

    private static bool IsSourceFailure(Exception ex) =>
        ex is PostgresException pg ? IsTransient(pg)
        : ex is NpgsqlException or System.IO.IOException or System.Net.Sockets.SocketException
        || (ex is InvalidOperationException && ex.InnerException is NpgsqlException and not PostgresException);

    // A server error is retried only when reading again can succeed: connection exceptions (08), operator intervention
    // such as pg_terminate_backend (57), insufficient resources (53), transaction rollbacks (40) and system errors (58).
    // Data exceptions (22: a value that cannot be converted), undefined objects and the like fail again on every attempt.
    internal static bool IsTransient(PostgresException ex) =>
        ex.SqlState.Length == 5 && ex.SqlState[..2] is "08" or "57" or "53" or "40" or "58";

    // Not cancellable: the chunk it records is confirmed, and a drained run must keep it.
    private Task SaveAsync(ReplicaState state)
    {
        state.UpdatedAt = Options.TimeProvider.GetUtcNow();
        return _job.Store.SaveAsync(_flow.Name, _pipeline.ReplicaName, state, CancellationToken.None);
    }

    private void ReportProgress(ReplicaState state, long inChunk, SyncOutcome? outcome)
    {
        if (_job.Progress is not { } progress)
        {
            return;
        }

        long done = 0;
        for (var i = 0; i < _segments.Count; i++)
        {
            var s = _segments[i];
            done += i < state.Segment ? s.Width : i == state.Segment && state.NextBlock >= s.Start ? Math.Min(state.NextBlock - s.Start, s.Width) : 0;
        }

        progress.Report(new SyncProgress
        {
            Flow = _flow.Name,
            Replica = _pipeline.ReplicaName,
            RowsRead = state.RowsRead + inChunk,
            RowsResumed = _resumedRows,
            DocsIndexed = state.DocsIndexed + inChunk,
            BlocksDone = done,
            BlocksTotal = _segments.Sum(s => s.Width),
            Outcome = outcome,
        });
    }

    private ReplicaReport Report(ReplicaState state, SyncOutcome outcome, long started, bool resumed, string? error)
    {
        ReportProgress(state, 0, outcome);
        return new ReplicaReport
        {
            Flow = _flow.Name,
            Replica = _pipeline.ReplicaName,
            Table = _layout.QualifiedName,
            Index = _pipeline.IndexName,
            Outcome = outcome,
            RowsRead = state.RowsRead,
            DocsIndexed = state.DocsIndexed,
            DeadLettered = state.DeadLettered,
            Retries = _retries,
            Resumed = resumed,
            Duration = Options.TimeProvider.GetElapsedTime(started),
            Error = error,
        };
    }
}
