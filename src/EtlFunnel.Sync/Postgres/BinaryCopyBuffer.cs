using System.Buffers.Binary;

namespace EtlFunnel.Sync.Postgres;

/// <summary>
/// Reads PostgreSQL's binary COPY format from the raw stream into one reusable buffer, a whole row at a time, so a
/// row's fields are parsed as spans with no per-value allocation and no await per column.
/// </summary>
internal sealed class BinaryCopyBuffer
{
    private static readonly byte[] Signature = [(byte)'P', (byte)'G', (byte)'C', (byte)'O', (byte)'P', (byte)'Y', (byte)'\n', 0xFF, (byte)'\r', (byte)'\n', 0];
    private readonly Stream _stream;
    private byte[] _buffer;
    private int _start;
    private int _end;
    private int _pos;

    public BinaryCopyBuffer(Stream stream, byte[]? buffer)
    {
        _stream = stream;
        _buffer = buffer ?? new byte[1 << 18];
    }

    /// <summary>The buffer, to hand to the next chunk's reader.</summary>
    public byte[] Array => _buffer;

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

    /// <summary>Buffers the next row whole; false at the trailer. Fields are then taken with <see cref="Next"/>.</summary>
    public async ValueTask<bool> StartRowAsync(int expectedFields, CancellationToken ct)
    {
        while (true)
        {
            var length = MeasureRow(expectedFields);
            if (length == -1)
            {
                _start += 2;
                return false;
            }

            if (length > 0)
            {
                _pos = _start + 2;
                _start += length;
                return true;
            }

            await FillAsync(ct).ConfigureAwait(false);
        }
    }

    /// <summary>The next field of the current row; <paramref name="isNull"/> for SQL NULL.</summary>
    public ReadOnlySpan<byte> Next(out bool isNull)
    {
        var length = BinaryPrimitives.ReadInt32BigEndian(_buffer.AsSpan(_pos));
        _pos += 4;
        isNull = length < 0;
        if (isNull)
        {
            return default;
        }

        var value = _buffer.AsSpan(_pos, length);
        _pos += length;
        return value;
    }

    /// <summary>Reads to the end of the COPY data (after the trailer) so the connection is ready for the next command.</summary>
    public async ValueTask DrainAsync(CancellationToken ct)
    {
        _start = _end = 0;
        while (await _stream.ReadAsync(_buffer, ct).ConfigureAwait(false) > 0)
        {
        }
    }

    // Bytes of the next row (field count included) if it is fully buffered; 0 if more data is needed; -1 for the trailer.
    private int MeasureRow(int expectedFields)
    {
        var span = _buffer.AsSpan(_start, _end - _start);
        if (span.Length < 2)
        {
            return 0;
        }

        var fields = BinaryPrimitives.ReadInt16BigEndian(span);
        if (fields == -1)
        {
            return -1;
        }

        if (fields != expectedFields)
        {
            throw new InvalidDataException($"A COPY row has {fields} fields where {expectedFields} were expected.");
        }

        var pos = 2;
        for (var i = 0; i < fields; i++)
        {
            if (span.Length - pos < 4)
            {
                return 0;
            }

            var length = BinaryPrimitives.ReadInt32BigEndian(span[pos..]);
            pos += 4 + Math.Max(length, 0);
            if (pos > span.Length)
            {
                return 0;
            }
        }

        return pos;
    }

    private async ValueTask EnsureAsync(int count, CancellationToken ct)
    {
        while (_end - _start < count)
        {
            await FillAsync(ct).ConfigureAwait(false);
        }
    }

    private async ValueTask FillAsync(CancellationToken ct)
    {
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

        var read = await _stream.ReadAsync(_buffer.AsMemory(_end), ct).ConfigureAwait(false);
        if (read == 0)
        {
            throw new InvalidDataException("The COPY stream ended in the middle of a row.");
        }

        _end += read;
    }
}
