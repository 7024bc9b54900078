using EtlFunnel.Sync.Documents;
using EtlFunnel.Sync.Postgres;
using EtlFunnel.Sync.Sinks;
using EtlFunnel.Sync.State;
using Npgsql;

namespace EtlFunnel.Sync.Runtime;

/// <summary>A leaf relation's share for this replica: blocks [Start, End), End null = open-ended (also covers blocks past <see cref="Blocks"/>).</summary>
internal readonly record struct Segment(string Relation, long Start, long? End, long Blocks)
{
    public long Width => (End ?? Blocks) - Start;
}

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
    private long _retries;
    private long _batches;

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

    public async Task<ReplicaReport> RunAsync(CancellationToken ct)
    {
        var started = Options.TimeProvider.GetTimestamp();
        var previous = _job.Store.Load(_flow.Name, _pipeline.ReplicaName);
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

            await using var sink = _sinkFactory();
            await sink.OpenAsync(resumed ? state.FileOffset : null, append: state.RunFromWatermark is not null, ct).ConfigureAwait(false);
            state.FileOffset = await sink.FlushAsync(ct).ConfigureAwait(false);
            await SaveAsync(state).ConfigureAwait(false);

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
                    _job.Log.Warning(ex, "Replica {Flow}/{Replica}: source connection lost; reconnecting ({Attempt}/{Max}) and resuming from the checkpoint",
                        _flow.Name, _pipeline.ReplicaName, reconnects, Options.MaxSourceReconnects);
                    await sink.RewindAsync(state.FileOffset, CancellationToken.None).ConfigureAwait(false);
                    await Task.Delay(Options.RetryBaseDelay * Math.Pow(2, reconnects - 1), Options.TimeProvider, ct).ConfigureAwait(false);
                }
            }

            state.Completed = true;
            state.Watermark = state.RunToWatermark ?? state.Watermark;
            await SaveAsync(state).ConfigureAwait(false);
            var outcome = state.DeadLettered > 0 ? SyncOutcome.CompletedWithRejections : SyncOutcome.Succeeded;
            return Report(state, outcome, started, resumed, null);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return Report(state, SyncOutcome.Cancelled, started, resumed, null);
        }
        catch (Exception ex)
        {
            _job.Log.Error(ex, "Replica {Flow}/{Replica} failed", _flow.Name, _pipeline.ReplicaName);
            return Report(state, SyncOutcome.Failed, started, resumed, ex.Message);
        }
    }

    private async Task<ReplicaState> FreshStateAsync(ReplicaState? previous, CancellationToken ct)
    {
        string? from = null, to = null;
        if (_pipeline.IncrementalColumn is { } column)
        {
            to = await _snapshot.MaxAsync(_layout.QualifiedName, column, ct).ConfigureAwait(false);
            if (Options.Mode == SyncMode.Incremental)
            {
                from = previous?.Watermark;
            }
        }

        return new ReplicaState
        {
            RunId = _job.RunId,
            Segment = 0,
            NextBlock = _segments.Count > 0 ? _segments[0].Start : 0,
            Watermark = previous?.Watermark,
            RunFromWatermark = from,
            RunToWatermark = to ?? previous?.Watermark,
        };
    }

    private async Task<string?> IncrementalFilterAsync(ReplicaState state, CancellationToken ct)
    {
        if (_pipeline.IncrementalColumn is not { } column || state.RunFromWatermark is not { } from)
        {
            return null;
        }

        var (type, category) = await _snapshot.ColumnTypeAsync(_layout.QualifiedName, column, ct).ConfigureAwait(false);
        var bound = $"{Sql.Literal(from)}::{type}";
        var margin = category switch
        {
            'D' => $" - interval '{(long)Options.IncrementalTimeMargin.TotalMilliseconds} milliseconds'",
            'N' => $" - {Options.IncrementalNumericMargin}",
            _ => "",
        };
        return $"{Sql.Ident(column)} > ({bound}{margin})";
    }

    private async Task ReadRemainingAsync(PartitionReader reader, IReplicaSink sink, ReplicaState state, CancellationToken ct)
    {
        await using var connection = new NpgsqlConnection(CopyConnectionString(_snapshot.ConnectionString));
        await connection.OpenAsync(ct).ConfigureAwait(false);
        await using (var begin = new NpgsqlCommand(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; " +
            $"SET TRANSACTION SNAPSHOT {Sql.Literal(_snapshot.SnapshotId)}; " +
            "SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO'", connection))
        {
            await begin.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }

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
        }
    }

    private async Task<(long Rows, long Indexed, long Dead, long Retries)> ProcessChunkAsync(
        PartitionReader reader, NpgsqlConnection connection, IReplicaSink sink, BlockChunk chunk, ReplicaState state, CancellationToken ct)
    {
        var maxInFlight = Math.Max(1, Math.Min(_props.MaxInFlight, sink.MaxInFlight));
        var free = _freeBatches;
        var pending = new Queue<(Task<BatchOutcome> Task, DocumentBatch Batch)>();
        long indexed = 0, dead = 0, retries = 0;
        var batch = free.Count > 0 ? free.Pop() : new DocumentBatch(_pipeline.IndexName, Math.Min(_props.BatchBytes, 1 << 20), _job.ExternalVersion);

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
            batch = free.Count > 0 ? free.Pop() : new DocumentBatch(_pipeline.IndexName, Math.Min(_props.BatchBytes, 1 << 20), _job.ExternalVersion);
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
            rows = await reader.ReadAsync(connection, chunk, () => batch, _props.BatchSize, _props.BatchBytes, Dispatch, ct).ConfigureAwait(false);
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
    private static string CopyConnectionString(string connectionString)
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
        ex is NpgsqlException or System.IO.IOException or System.Net.Sockets.SocketException
        || (ex is InvalidOperationException && ex.InnerException is NpgsqlException);

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
