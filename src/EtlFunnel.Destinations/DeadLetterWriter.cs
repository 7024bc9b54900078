using System.Text.Encodings.Web;
using System.Text.Json;

namespace EtlFunnel.Destinations;

/// <summary>
/// The run's dead-letter file: one NDJSON line per permanently rejected document with
/// <c>flow, replica, index, id, status, reason, document</c>. Created on first use.
/// </summary>
internal sealed class DeadLetterWriter : IAsyncDisposable
{
    private static readonly JsonWriterOptions Options = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly string _path;
    private FileStream? _stream;

    public DeadLetterWriter(string directory, string runId)
    {
        _path = Path.GetFullPath(Path.Combine(directory, $"dead-letter-{runId}.ndjson"));
    }

    /// <summary>The file path once anything was written, else null.</summary>
    public string? WrittenPath => _stream is null ? null : _path;

    public async Task WriteAsync(string flow, string replica, string index, string id, int? status, string reason, ReadOnlyMemory<byte> document, CancellationToken ct)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, Options))
        {
            json.WriteStartObject();
            json.WriteString("flow", flow);
            json.WriteString("replica", replica);
            json.WriteString("index", index);
            json.WriteString("id", id);
            if (status is { } s)
            {
                json.WriteNumber("status", s);
            }
            else
            {
                json.WriteNull("status");
            }

            json.WriteString("reason", reason);
            json.WritePropertyName("document");
            json.WriteRawValue(document.Span, skipInputValidation: true);
            json.WriteEndObject();
        }

        buffer.WriteByte((byte)'\n');
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_stream is null)
            {
                Directory.CreateDirectory(Path.GetDirectoryName(_path)!);
                _stream = new FileStream(_path, FileMode.Append, FileAccess.Write, FileShare.Read, 1 << 16, FileOptions.Asynchronous);
            }

            await _stream.WriteAsync(buffer.GetBuffer().AsMemory(0, (int)buffer.Length), ct).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    public async Task FlushAsync(CancellationToken ct)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_stream is not null)
            {
                await _stream.FlushAsync(ct).ConfigureAwait(false);
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_stream is not null)
        {
            await _stream.DisposeAsync().ConfigureAwait(false);
        }

        _gate.Dispose();
    }
}
