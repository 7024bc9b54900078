using System.Buffers;

namespace EtlFunnel.Destinations;

/// <summary>
/// Bulk-ready NDJSON: an action line <c>{"index":{"_index":..,"_id":..}}</c> then the source line, per document, into
/// <c>&lt;dir&gt;/&lt;index&gt;/&lt;flow&gt;.&lt;replica&gt;.ndjson</c>. A resumed replica truncates its file to the checkpointed
/// length, so rows of an unconfirmed chunk are never written twice.
/// </summary>
internal sealed class FilesSink : IReplicaSink
{
    private readonly ArrayBufferWriter<byte> _out = new(1 << 16);
    private FileStream? _stream;

    public FilesSink(string directory, string index, string flow, string replica)
    {
        Path = System.IO.Path.Combine(directory, FileNames.Safe(index), $"{FileNames.Safe(flow)}.{FileNames.Safe(replica)}.ndjson");
    }

    public string Path { get; }

    public int MaxInFlight => 1;

    public Task OpenAsync(long? position, bool append, CancellationToken ct)
    {
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(Path)!);
        _stream = new FileStream(Path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read, 1 << 20, FileOptions.Asynchronous);
        var start = position ?? (append ? _stream.Length : 0);
        if (start > _stream.Length)
        {
            throw new InvalidOperationException(
                $"{Path} is shorter ({_stream.Length} bytes) than its checkpoint ({start} bytes); it was changed outside the engine. Delete the replica's state to start it over.");
        }

        _stream.SetLength(start);
        _stream.Position = start;
        return Task.CompletedTask;
    }

    public async Task<BatchOutcome> WriteAsync(DocumentBatch batch, CancellationToken ct)
    {
        var stream = _stream ?? throw new InvalidOperationException("Sink not opened.");
        _out.ResetWrittenCount();
        batch.WriteBulk(_out);
        await stream.WriteAsync(_out.WrittenMemory, ct).ConfigureAwait(false);
        return new BatchOutcome(batch.Count, 0, 0);
    }

    public async Task<long> FlushAsync(CancellationToken ct)
    {
        var stream = _stream ?? throw new InvalidOperationException("Sink not opened.");
        // Into the OS page cache: survives kill -9 of this process (not a power cut).
        await stream.FlushAsync(ct).ConfigureAwait(false);
        return stream.Position;
    }

    public async Task RewindAsync(long position, CancellationToken ct)
    {
        var stream = _stream ?? throw new InvalidOperationException("Sink not opened.");
        await stream.FlushAsync(ct).ConfigureAwait(false);
        stream.SetLength(position);
        stream.Position = position;
    }

    public async ValueTask DisposeAsync()
    {
        if (_stream is not null)
        {
            await _stream.DisposeAsync().ConfigureAwait(false);
        }
    }
}
