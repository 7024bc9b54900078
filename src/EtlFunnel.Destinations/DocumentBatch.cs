using System.Buffers;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace EtlFunnel.Destinations;

/// <summary>One document of a batch: its id and where its JSON source sits in the batch buffer.</summary>
internal readonly record struct BatchItem(string Id, int Offset, int Length);

/// <summary>Documents (JSON sources, one after the other in one buffer) bound for one index.</summary>
internal sealed class DocumentBatch
{
    // The escaping every NDJSON line of ours uses (files, bulk bodies, dead letters): non-ASCII text stays as UTF-8.
    internal static readonly JavaScriptEncoder Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping;

    private readonly ArrayBufferWriter<byte> _buffer;
    private readonly byte[] _actionPrefix;

    public DocumentBatch(string index, int capacityBytes, long? version = null)
    {
        Index = index;
        _buffer = new ArrayBufferWriter<byte>(Math.Max(capacityBytes, 256));
        // {"index":{"_index":"<index>","_id": — the same for every document of the batch.
        _actionPrefix = [.. "{\"index\":{\"_index\":"u8, .. Quoted(index), .. ",\"_id\":"u8];
        Version = version;
        // CDC snapshot rows: external versioning at the slot's consistent point (see docs/cdc.md).
        _versionSuffix = version is { } v
            ? Encoding.UTF8.GetBytes(string.Create(System.Globalization.CultureInfo.InvariantCulture, $",\"version\":{v},\"version_type\":\"{ExternalVersionType}\""))
            : [];
    }

    /// <summary>The version type of every versioned write: a row changed several times in one transaction writes the same version (its commit LSN) several times, in order.</summary>
    internal const string ExternalVersionType = "external_gte";

    private readonly byte[] _versionSuffix;

    public string Index { get; }

    /// <summary>The external version of every document of the batch, or null for Elasticsearch's own versioning.</summary>
    public long? Version { get; }

    public List<BatchItem> Items { get; } = [];

    public IBufferWriter<byte> Writer => _buffer;

    public int Bytes => _buffer.WrittenCount;

    public int Count => Items.Count;

    public ReadOnlyMemory<byte> Source(BatchItem item) => _buffer.WrittenMemory.Slice(item.Offset, item.Length);

    public void Add(string id, int start) => Items.Add(new BatchItem(id, start, _buffer.WrittenCount - start));

    public void Clear()
    {
        Items.Clear();
        _buffer.ResetWrittenCount();
    }

    /// <summary>
    /// Writes the Elasticsearch bulk NDJSON of <paramref name="items"/> (all of them when null): per document the action line
    /// <c>{"index":{"_index":..,"_id":..}}</c>, then its source line. The files sink and the Elasticsearch sink both send this.
    /// </summary>
    public void WriteBulk(IBufferWriter<byte> output, IReadOnlyList<BatchItem>? items = null)
    {
        items ??= Items;
        var source = _buffer.WrittenSpan;
        for (var i = 0; i < items.Count; i++)
        {
            var item = items[i];
            // Worst case of the id: 3 UTF-8 bytes per UTF-16 char, plus the quotes; escaping (rare) takes the slow path.
            var maxId = (item.Id.Length * 3) + 2;
            var span = output.GetSpan(_actionPrefix.Length + maxId + _versionSuffix.Length + 4 + item.Length + 1);
            _actionPrefix.CopyTo(span);
            var at = _actionPrefix.Length;
            var idBytes = WriteIdFast(item.Id, span[at..]);
            if (idBytes < 0)
            {
                var quoted = Quoted(item.Id);
                span = output.GetSpan(at + quoted.Length + _versionSuffix.Length + 4 + item.Length + 1);
                _actionPrefix.CopyTo(span);
                quoted.CopyTo(span[at..]);
                idBytes = quoted.Length;
            }

            at += idBytes;
            _versionSuffix.CopyTo(span[at..]);
            at += _versionSuffix.Length;
            "}}\n"u8.CopyTo(span[at..]);
            at += 3;
            source.Slice(item.Offset, item.Length).CopyTo(span[at..]);
            at += item.Length;
            span[at++] = (byte)'\n';
            output.Advance(at);
        }
    }

    /// <summary>Writes <c>"id"</c> when the id is ASCII and needs no escaping and returns its byte count, else -1.</summary>
    private static int WriteIdFast(string id, Span<byte> destination)
    {
        // Non-ASCII ids (rare) go the slow way, which also turns a lone surrogate into \uFFFD as the writer does.
        if (!Ascii.IsValid(id))
        {
            return -1;
        }

        destination[0] = (byte)'"';
        var written = Encoding.UTF8.GetBytes(id, destination[1..]);
        if (Encoder.FindFirstCharacterToEncodeUtf8(destination.Slice(1, written)) >= 0)
        {
            return -1;
        }

        destination[written + 1] = (byte)'"';
        return written + 2;
    }

    private static byte[] Quoted(string value)
    {
        var encoded = JsonEncodedText.Encode(value, Encoder).EncodedUtf8Bytes;
        return [(byte)'"', .. encoded, (byte)'"'];
    }
}
