using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace EtlFunnel.Sync.Postgres;

/// <summary>What <see cref="BinaryCopyBuffer.TryReadRow"/> found at the read position.</summary>
internal enum CopyRowStatus
{
    /// <summary>A whole row is buffered; its fields are in <see cref="BinaryCopyBuffer.Offsets"/> / <see cref="BinaryCopyBuffer.Lengths"/>.</summary>
    Row,

    /// <summary>The next row is not buffered whole yet: call <see cref="BinaryCopyBuffer.FillAsync"/>.</summary>
    NeedMore,

    /// <summary>The COPY trailer: no more rows.</summary>
    End,
}

/// <summary>
/// Reads PostgreSQL's binary COPY format from the raw stream into one reusable buffer. Rows are parsed synchronously
/// as long as they are buffered whole (one pass over the field headers, no per-row await); the stream is read in
/// big steps only when the buffer runs dry.
/// </summary>
internal sealed class BinaryCopyBuffer
{
    private static readonly byte[] Signature = [(byte)'P', (byte)'G', (byte)'C', (byte)'O', (byte)'P', (byte)'Y', (byte)'\n', 0xFF, (byte)'\r', (byte)'\n', 0];

    // Npgsql's raw COPY stream returns at most one CopyData message (one row) per read: keep reading until this much
    // is buffered, so decoding then runs over many rows without awaiting.
    private const int FillTarget = 1 << 16;
    private readonly Stream _stream;
    private byte[] _buffer;
    private int _start;
    private int _end;
    private bool _streamEnded;

    public BinaryCopyBuffer(Stream stream, byte[]? buffer, int fields)
    {
        _stream = stream;
        _buffer = buffer ?? new byte[1 << 18];
        Offsets = new int[fields];
        Lengths = new int[fields];
    }

    /// <summary>The buffer, to hand to the next chunk's reader; the current row's fields are slices of it.</summary>
    public byte[] Array => _buffer;

    /// <summary>Start of each field of the current row in <see cref="Array"/>.</summary>
    public int[] Offsets { get; }

    /// <summary>Length of each field of the current row; -1 for SQL NULL.</summary>
    public int[] Lengths { get; }

    /// <summary>Reads and checks the file header (signature, flags, extension area).</summary>
    public async ValueTask ReadHeaderAsync(CancellationToken ct)
    {
        await EnsureAsync(19, ct).ConfigureAwait(false);
        if (!_buffer.AsSpan(_start, 11).SequenceEqual(Signature))
        {
            throw new InvalidDataException("The COPY stream does not start with the binary COPY signature.");
        }

        var extension = BinaryPrimitives.ReadInt32BigEndian(_buffer.AsSpan(_start + 15));
        _start += 19;
        await EnsureAsync(extension, ct).ConfigureAwait(false);
        _start += extension;
    }

    /// <summary>Parses the next row if it is buffered whole (fields into <see cref="Offsets"/>/<see cref="Lengths"/>) and moves past it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public CopyRowStatus TryReadRow()
    {
        var buffer = _buffer;
        var start = _start;
        var available = _end - start;
        if (available < 2)
        {
            return NeedMoreOrFail(available);
        }

        var fields = BinaryPrimitives.ReadInt16BigEndian(buffer.AsSpan(start));
        if (fields == -1)
        {
            _start = start + 2;
            return CopyRowStatus.End;
        }

        var offsets = Offsets;
        var lengths = Lengths;
        if (fields != offsets.Length)
        {
            throw new InvalidDataException($"A COPY row has {fields} fields where {offsets.Length} were expected.");
        }

        var pos = start + 2;
        var end = _end;
        for (var i = 0; i < offsets.Length; i++)
        {
            if (end - pos < 4)
            {
                return NeedMoreOrFail(available);
            }

            var length = BinaryPrimitives.ReadInt32BigEndian(buffer.AsSpan(pos));
            pos += 4;
            offsets[i] = pos;
            lengths[i] = length;
            if (length > 0)
            {
                if (end - pos < length)
                {
                    return NeedMoreOrFail(available);
                }

                pos += length;
            }
        }

        _start = pos;
        return CopyRowStatus.Row;
    }

    /// <summary>Reads more of the stream: at least one more message, up to <see cref="FillTarget"/> buffered bytes while reads keep completing.</summary>
    public async ValueTask FillAsync(CancellationToken ct)
    {
        if (_streamEnded)
        {
            throw new InvalidDataException("The COPY stream ended in the middle of a row.");
        }

        var buffered = _end - _start;
        if (_start > 0)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, buffered);
            _start = 0;
            _end = buffered;
        }

        if (_end == _buffer.Length)
        {
            // A row larger than the buffer: grow to fit it (rows are bounded by PostgreSQL's 1 GB field limit).
            System.Array.Resize(ref _buffer, _buffer.Length * 2);
        }

        var target = Math.Min(_buffer.Length, _end + FillTarget);
        do
        {
            var read = await _stream.ReadAsync(_buffer.AsMemory(_end), ct).ConfigureAwait(false);
            if (read == 0)
            {
                _streamEnded = true;
                return;
            }

            _end += read;
        }
        while (_end < target);
    }

    /// <summary>Reads to the end of the COPY data (after the trailer) so the connection is ready for the next command.</summary>
    public async ValueTask DrainAsync(CancellationToken ct)
    {
        _start = _end = 0;
        if (_streamEnded)
        {
            return;
        }

        while (await _stream.ReadAsync(_buffer, ct).ConfigureAwait(false) > 0)
        {
        }
    }

    private CopyRowStatus NeedMoreOrFail(int available) =>
        _streamEnded
            ? throw new InvalidDataException(available == 0
                ? "The COPY stream ended without its trailer."
                : "The COPY stream ended in the middle of a row.")
            : CopyRowStatus.NeedMore;

    private async ValueTask EnsureAsync(int count, CancellationToken ct)
    {
        while (_end - _start < count)
        {
            await FillAsync(ct).ConfigureAwait(false);
            if (_streamEnded && _end - _start < count)
            {
                throw new InvalidDataException("The COPY stream ended inside its header.");
            }
        }
    }
}
