using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using EtlFunnel.Execution.Models;

namespace EtlFunnel.Scripting.Transforming;

// The binary form of a transform batch (protocol version 2): one buffer per direction, no JSON-in-JSON, no per-row strings
// on the wire. All integers are little-endian int32.
//   request: count, then per row: op (1 byte: 0 upsert, 1 delete), id length, id (UTF-8), document length, document (the
//            engine's JSON bytes as they are).
//   reply:   count, then per row: outcome (1 byte, TransformOutcome), flags (1 byte, ReplyFlags), then the fields the flags
//            name, each a length and UTF-8 bytes, in this order: id, index, error, document. A written upsert without a
//            document is unchanged: the host reuses the document it sent.

/// <summary>Which optional fields a reply row carries.</summary>
[Flags]
internal enum ReplyFlags : byte
{
    None = 0,

    /// <summary>The transformer set another <c>_id</c>.</summary>
    Id = 1,

    /// <summary>The transformer routed the row to an index.</summary>
    Index = 2,

    /// <summary>The row failed: the hook's <c>file(line,col)</c> and message.</summary>
    Error = 4,

    /// <summary>The transformer edited the document: the new JSON follows.</summary>
    Document = 8,
}

/// <summary>One row of a decoded transform request; <see cref="Json"/> is a slice of the request buffer.</summary>
internal readonly record struct TransformInput(string Id, RowOperation Operation, ReadOnlyMemory<byte> Json);

/// <summary>A growable byte buffer from the shared pool whose written bytes can be patched (a length written after its value).</summary>
internal sealed class PooledBuffer : IBufferWriter<byte>, IDisposable
{
    private byte[] buffer;

    public PooledBuffer(int capacity) => buffer = ArrayPool<byte>.Shared.Rent(Math.Max(capacity, 256));

    public int Length { get; private set; }

    public ReadOnlyMemory<byte> Written => buffer.AsMemory(0, Length);

    public void Advance(int count) => Length += count;

    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return buffer.AsMemory(Length);
    }

    public Span<byte> GetSpan(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return buffer.AsSpan(Length);
    }

    public void WriteInt32(int value)
    {
        BinaryPrimitives.WriteInt32LittleEndian(GetSpan(4), value);
        Length += 4;
    }

    public void WriteByte(byte value)
    {
        GetSpan(1)[0] = value;
        Length++;
    }

    /// <summary>Writes a length and the UTF-8 of <paramref name="text"/>.</summary>
    public void WriteString(string text)
    {
        var span = GetSpan(4 + Encoding.UTF8.GetMaxByteCount(text.Length));
        var n = Encoding.UTF8.GetBytes(text, span[4..]);
        BinaryPrimitives.WriteInt32LittleEndian(span, n);
        Length += 4 + n;
    }

    public void WriteBytes(ReadOnlySpan<byte> bytes)
    {
        WriteInt32(bytes.Length);
        bytes.CopyTo(GetSpan(bytes.Length));
        Length += bytes.Length;
    }

    public void Patch(int at, int value) => BinaryPrimitives.WriteInt32LittleEndian(buffer.AsSpan(at), value);

    public void Dispose()
    {
        var old = buffer;
        buffer = [];
        Length = 0;
        if (old.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(old);
        }
    }

    private void Ensure(int sizeHint)
    {
        var need = Length + Math.Max(sizeHint, 1);
        if (need <= buffer.Length)
        {
            return;
        }

        var bigger = ArrayPool<byte>.Shared.Rent(Math.Max(need, buffer.Length * 2));
        buffer.AsSpan(0, Length).CopyTo(bigger);
        if (buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        buffer = bigger;
    }
}

/// <summary>A batch of rows for a transformer, encoded in one pooled buffer as it crosses the pipe to the worker.</summary>
internal sealed class TransformRequest : IDisposable
{
    private readonly PooledBuffer buffer;

    public TransformRequest(int capacityBytes)
    {
        buffer = new PooledBuffer(capacityBytes + 4);
        buffer.WriteInt32(0);
    }

    public int Count { get; private set; }

    /// <summary>The encoded batch (valid until <see cref="Dispose"/>).</summary>
    public ReadOnlyMemory<byte> Body
    {
        get
        {
            buffer.Patch(0, Count);
            return buffer.Written;
        }
    }

    public void Add(string id, RowOperation operation, ReadOnlySpan<byte> json)
    {
        buffer.WriteByte((byte)operation);
        buffer.WriteString(id);
        buffer.WriteBytes(json);
        Count++;
    }

    public void Dispose() => buffer.Dispose();

    /// <summary>Decodes a request body; the documents are slices of <paramref name="body"/>.</summary>
    public static TransformInput[] Read(ReadOnlyMemory<byte> body)
    {
        var reader = new FrameReader(body);
        var count = reader.Count();
        var rows = new TransformInput[count];
        for (var i = 0; i < count; i++)
        {
            var op = reader.Byte();
            var id = Encoding.UTF8.GetString(reader.Field().Span);
            rows[i] = new TransformInput(id, op == 1 ? RowOperation.Delete : RowOperation.Upsert, reader.Field());
        }

        reader.End();
        return rows;
    }
}

/// <summary>Encodes a transformer's results, one per row in input order, into one pooled buffer.</summary>
internal sealed class TransformReplyWriter : IDisposable
{
    private readonly PooledBuffer buffer;
    private int count;

    public TransformReplyWriter(int capacityBytes)
    {
        buffer = new PooledBuffer(capacityBytes + 4);
        buffer.WriteInt32(0);
    }

    /// <summary>The encoded reply (valid until <see cref="Dispose"/>).</summary>
    public ReadOnlyMemory<byte> Body
    {
        get
        {
            buffer.Patch(0, count);
            return buffer.Written;
        }
    }

    /// <summary>A row without a new document: skipped, failed, a delete, or an upsert the transformer did not edit.</summary>
    public void Add(TransformOutcome outcome, string? newId, string? index, string? error)
    {
        Begin(outcome, newId, index, error, ReplyFlags.None);
    }

    /// <summary>A written upsert whose document <paramref name="writeDocument"/> writes (its length is patched in after).</summary>
    public void AddDocument(string? newId, string? index, Action<IBufferWriter<byte>> writeDocument)
    {
        Begin(TransformOutcome.Written, newId, index, null, ReplyFlags.Document);
        var at = buffer.Length;
        buffer.WriteInt32(0);
        writeDocument(buffer);
        buffer.Patch(at, buffer.Length - at - 4);
    }

    public void Dispose() => buffer.Dispose();

    private void Begin(TransformOutcome outcome, string? newId, string? index, string? error, ReplyFlags flags)
    {
        flags |= (newId is null ? ReplyFlags.None : ReplyFlags.Id) | (index is null ? ReplyFlags.None : ReplyFlags.Index) | (error is null ? ReplyFlags.None : ReplyFlags.Error);
        buffer.WriteByte((byte)outcome);
        buffer.WriteByte((byte)flags);
        if (newId is not null)
        {
            buffer.WriteString(newId);
        }

        if (index is not null)
        {
            buffer.WriteString(index);
        }

        if (error is not null)
        {
            buffer.WriteString(error);
        }

        count++;
    }
}

/// <summary>
/// A decoded transform reply: per row the outcome, the new id (null: the row's own), the index (null: the pipeline's), the
/// error, and the edited document as a slice of the reply buffer (empty with <see cref="IsUnchanged"/>: the input document).
/// </summary>
internal sealed class TransformReply
{
    private readonly Entry[] entries;
    private readonly ReadOnlyMemory<byte> body;
    private ReadOnlyMemory<byte> lastIndexBytes;
    private string? lastIndex;

    private TransformReply(ReadOnlyMemory<byte> body, Entry[] entries) => (this.body, this.entries) = (body, entries);

    public int Count => entries.Length;

    public TransformOutcome Outcome(int row) => entries[row].Outcome;

    /// <summary>True for a written row whose document the transformer did not edit.</summary>
    public bool IsUnchanged(int row) => entries[row].Outcome == TransformOutcome.Written && (entries[row].Flags & ReplyFlags.Document) == 0;

    public string? NewId(int row) => entries[row].Id is { Length: > 0 } id ? Encoding.UTF8.GetString(body.Span.Slice(id.Start, id.Length)) : null;

    public string? Index(int row)
    {
        if (entries[row].Index is not { Length: > 0 } at)
        {
            return null;
        }

        // Routed rows of a batch mostly share an index: one string for a run of equal names.
        var bytes = body.Slice(at.Start, at.Length);
        if (lastIndex is null || !bytes.Span.SequenceEqual(lastIndexBytes.Span))
        {
            (lastIndexBytes, lastIndex) = (bytes, Encoding.UTF8.GetString(bytes.Span));
        }

        return lastIndex;
    }

    public string? Error(int row) => entries[row].Error is { Length: > 0 } e ? Encoding.UTF8.GetString(body.Span.Slice(e.Start, e.Length)) : null;

    /// <summary>The edited document (a slice of the reply); empty unless the transformer edited it.</summary>
    public ReadOnlyMemory<byte> Json(int row) => body.Slice(entries[row].Json.Start, entries[row].Json.Length);

    /// <summary>Decodes a reply body for a request of <paramref name="expected"/> rows.</summary>
    public static TransformReply Read(ReadOnlyMemory<byte> body, int expected)
    {
        var reader = new FrameReader(body);
        var count = reader.Count();
        if (count != expected)
        {
            throw new InvalidDataException($"the worker answered {count} results for a batch of {expected} rows");
        }

        var entries = new Entry[count];
        for (var i = 0; i < count; i++)
        {
            var outcome = (TransformOutcome)reader.Byte();
            var flags = (ReplyFlags)reader.Byte();
            var id = (flags & ReplyFlags.Id) != 0 ? reader.Span() : default;
            var index = (flags & ReplyFlags.Index) != 0 ? reader.Span() : default;
            var error = (flags & ReplyFlags.Error) != 0 ? reader.Span() : default;
            var json = (flags & ReplyFlags.Document) != 0 ? reader.Span() : default;
            entries[i] = new Entry(outcome, flags, id, index, error, json);
        }

        reader.End();
        return new TransformReply(body, entries);
    }

    private readonly record struct Entry(TransformOutcome Outcome, ReplyFlags Flags, FrameSlice Id, FrameSlice Index, FrameSlice Error, FrameSlice Json);
}

/// <summary>Where a field's bytes are in a frame body.</summary>
internal readonly record struct FrameSlice(int Start, int Length);

/// <summary>Reads a transform frame body, checking every length against what is left (a bad frame is <see cref="InvalidDataException"/>).</summary>
internal struct FrameReader(ReadOnlyMemory<byte> body)
{
    private int at;

    public int Count()
    {
        var n = Int32();
        return n >= 0 && n <= body.Length ? n : throw Bad();
    }

    public byte Byte()
    {
        if (at >= body.Length)
        {
            throw Bad();
        }

        return body.Span[at++];
    }

    public ReadOnlyMemory<byte> Field()
    {
        var (start, length) = Span();
        return body.Slice(start, length);
    }

    public FrameSlice Span()
    {
        var length = Int32();
        if (length < 0 || length > body.Length - at)
        {
            throw Bad();
        }

        var start = at;
        at += length;
        return new FrameSlice(start, length);
    }

    public readonly void End()
    {
        if (at != body.Length)
        {
            throw Bad();
        }
    }

    private int Int32()
    {
        if (body.Length - at < 4)
        {
            throw Bad();
        }

        var value = BinaryPrimitives.ReadInt32LittleEndian(body.Span[at..]);
        at += 4;
        return value;
    }

    private readonly InvalidDataException Bad() => new($"a transform frame is malformed at byte {at} of {body.Length}");
}

/// <summary>
/// A transformer that takes a batch in its binary form, with no object per row: the hook worker's transformers and the
/// in-process ones both are. The host's adapter (<c>Runtime.Hooks.BatchTransformers</c>) uses it when it can.
/// </summary>
internal interface IFrameTransformer
{
    /// <summary>Transforms one batch under one budget, as <see cref="IDataTransformer.TransformAsync"/> does.</summary>
    Task<TransformReply> TransformFramesAsync(TransformTarget target, TransformRequest request, TimeSpan budget, CancellationToken cancellationToken);
}
