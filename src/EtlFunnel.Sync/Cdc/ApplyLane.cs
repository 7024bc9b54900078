using System.Threading.Channels;

namespace EtlFunnel.Sync.Cdc;

/// <summary>
/// One apply lane: changes of the documents that hash to it, written in stream order, one batch in flight. Lanes run in
/// parallel; since one document always hashes to the same lane, its changes are never reordered. <see cref="Confirmed"/>
/// counts the changes the destination confirmed, so the stream knows how far it may acknowledge the slot.
/// </summary>
internal sealed class ApplyLane
{
    private readonly Channel<ChangeItem> _channel;
    private readonly int _maxBatch;
    private long _enqueued;
    private long _confirmed;
    private long _conflicts;
    private long _dead;
    private long _retries;

    public ApplyLane(int capacity, int maxBatch)
    {
        _channel = Channel.CreateBounded<ChangeItem>(new BoundedChannelOptions(Math.Max(1, capacity)) { SingleReader = true, SingleWriter = true });
        _maxBatch = Math.Max(1, maxBatch);
    }

    /// <summary>Changes handed to this lane (written by the stream reader only).</summary>
    public long Enqueued => _enqueued;

    public long Confirmed => Volatile.Read(ref _confirmed);

    public long Conflicts => Volatile.Read(ref _conflicts);

    public long DeadLettered => Volatile.Read(ref _dead);

    public long Retries => Volatile.Read(ref _retries);

    public ValueTask EnqueueAsync(ChangeItem item, CancellationToken ct)
    {
        _enqueued++;
        return _channel.Writer.WriteAsync(item, ct);
    }

    public void Complete() => _channel.Writer.TryComplete();

    /// <summary>Writes batches until the lane is completed and empty; a destination failure ends the lane with that error.</summary>
    public async Task RunAsync(IChangeSink sink, Func<ValueTask>? afterBatch, CancellationToken ct)
    {
        var batch = new List<ChangeItem>(_maxBatch);
        var reader = _channel.Reader;
        while (await reader.WaitToReadAsync(ct).ConfigureAwait(false))
        {
            batch.Clear();
            // Whatever queued up while the previous batch was in flight goes together: big batches under load, no added latency when quiet.
            while (batch.Count < _maxBatch && reader.TryRead(out var item))
            {
                batch.Add(item);
            }

            var outcome = await sink.WriteAsync(batch, ct).ConfigureAwait(false);
            Interlocked.Add(ref _conflicts, outcome.Conflicts);
            Interlocked.Add(ref _dead, outcome.DeadLettered);
            Interlocked.Add(ref _retries, outcome.Retries);
            Interlocked.Add(ref _confirmed, batch.Count);
            if (afterBatch is not null)
            {
                await afterBatch().ConfigureAwait(false);
            }
        }
    }

    /// <summary>The lane for a document: FNV-1a of index and id, so the same document always lands in the same lane.</summary>
    public static int For(string index, string id, int lanes)
    {
        if (lanes <= 1)
        {
            return 0;
        }

        var hash = 2166136261u;
        foreach (var ch in index)
        {
            hash = (hash ^ ch) * 16777619u;
        }

        hash = (hash ^ 0xFFFF) * 16777619u;
        foreach (var ch in id)
        {
            hash = (hash ^ ch) * 16777619u;
        }

        return (int)(hash % (uint)lanes);
    }
}
