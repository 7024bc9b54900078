using System.Buffers;
using System.Text.Encodings.Web;
using System.Text.Json;
using EtlFunnel.Sync.Documents;

namespace EtlFunnel.Sync.Sinks;

/// <summary>
/// Bulk-ready NDJSON: an action line <c>{"index":{"_index":..,"_id":..}}</c> then the source line, per document, into
/// <c>&lt;dir&gt;/&lt;index&gt;/&lt;flow&gt;.&lt;replica&gt;.ndjson</c>. A resumed replica truncates its file to the checkpointed
/// length, so rows of an unconfirmed chunk are never written twice.
/// </summary>
internal sealed class FilesSink : IReplicaSink
{
    private static readonly byte[] Newline = "\n"u8.ToArray();
    private static readonly JsonWriterOptions Options = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, SkipValidation = true };
    private readonly ArrayBufferWriter<byte> _out = new(1 << 16);
    private FileStream? _stream;

    public FilesSink(string directory, string index, string flow, string replica)
    {
        Path = System.IO.Path.Combine(directory, State.StateStore.SafeName(index), $"{State.StateStore.SafeName(flow)}.{State.StateStore.SafeName(replica)}.ndjson");
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
        using (var json = new Utf8JsonWriter(_out, Options))
        {
            foreach (var item in batch.Items)
            {
                json.Reset(_out);
                json.WriteStartObject();
                json.WriteStartObject("index");
                json.WriteString("_index", batch.Index);
                json.WriteString("_id", item.Id);
                json.WriteEndObject();
                json.WriteEndObject();
                json.Flush();
                _out.Write(Newline);
                _out.Write(batch.Source(item).Span);
                _out.Write(Newline);
            }
        }

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
