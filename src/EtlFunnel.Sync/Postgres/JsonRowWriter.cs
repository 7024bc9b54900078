using System.Buffers;
using System.Buffers.Binary;
using System.Buffers.Text;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Unicode;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace EtlFunnel.Sync.Postgres;

/// <summary>
/// Turns one binary COPY row into its JSON document, writing UTF-8 straight into the batch buffer: one size bound per
/// row, then integers, uuids, booleans, plain text and PostgreSQL-made JSON are copied or formatted in place. The output
/// is byte-for-byte what <see cref="Utf8JsonWriter"/> (relaxed escaping) writes; the rare values that need more than a
/// copy (text with characters to escape, JSON with line breaks) go through a <see cref="Utf8JsonWriter"/> itself.
/// </summary>
internal sealed class JsonRowWriter
{
    internal static readonly JavaScriptEncoder Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping;

    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = Encoder, SkipValidation = true };
    private static ReadOnlySpan<byte> Hex => "0123456789abcdef"u8;

    private readonly ColumnKind[] _kinds;
    // `{"name":` for the first column, `,"name":` for the others.
    private readonly byte[][] _prefixes;
    private readonly int _fixedBound;
    private readonly Utf8JsonWriter _slow = new(Stream.Null, WriterOptions);

    public JsonRowWriter(IReadOnlyList<ColumnInfo> columns)
    {
        _kinds = columns.Select(c => c.Kind).ToArray();
        _prefixes = columns.Select((c, i) =>
            (byte[])[(byte)(i == 0 ? '{' : ','), (byte)'"', .. JsonEncodedText.Encode(c.Name, Encoder).EncodedUtf8Bytes, (byte)'"', (byte)':']).ToArray();
        _fixedBound = _prefixes.Sum(p => p.Length) + 2; // + "{}" of an empty table, or the closing brace
    }

    /// <summary>Writes the document of the row whose first <see cref="ColumnCount"/> fields are given (the rest are key texts).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Write(byte[] row, int[] offsets, int[] lengths, IBufferWriter<byte> output)
    {
        var kinds = _kinds;
        var span = output.GetSpan(Bound(row, offsets, lengths, 0));
        var pos = 0;
        if (kinds.Length == 0)
        {
            span[pos++] = (byte)'{';
        }

        for (var i = 0; i < kinds.Length; i++)
        {
            var prefix = _prefixes[i];
            prefix.CopyTo(span[pos..]);
            pos += prefix.Length;
            var length = lengths[i];
            if (length < 0)
            {
                "null"u8.CopyTo(span[pos..]);
                pos += 4;
                continue;
            }

            var value = new ReadOnlySpan<byte>(row, offsets[i], length);
            var written = WriteValue(kinds[i], value, span[pos..]);
            if (written < 0)
            {
                // A value the fast path does not copy: written by Utf8JsonWriter itself, then the rest of the row continues.
                output.Advance(pos);
                WriteSlow(kinds[i], value, output);
                span = output.GetSpan(Bound(row, offsets, lengths, i + 1));
                pos = 0;
                continue;
            }

            pos += written;
        }

        span[pos++] = (byte)'}';
        output.Advance(pos);
    }

    /// <summary>Number of columns in the document.</summary>
    public int ColumnCount => _kinds.Length;

    /// <summary>Writes the decimal text of <paramref name="value"/> (what PostgreSQL and Utf8JsonWriter write) and returns its length.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int WriteInteger(long value, Span<byte> destination)
    {
        if (value < 0)
        {
            if (value == long.MinValue)
            {
                "-9223372036854775808"u8.CopyTo(destination);
                return 20;
            }

            destination[0] = (byte)'-';
            return WriteDigits((ulong)-value, destination[1..]) + 1;
        }

        return WriteDigits((ulong)value, destination);
    }

    private static int WriteDigits(ulong value, Span<byte> destination)
    {
        var count = CountDigits(value);
        var i = count;
        while (value >= 10)
        {
            var next = value / 10;
            destination[--i] = (byte)('0' + (value - (next * 10)));
            value = next;
        }

        destination[0] = (byte)('0' + value);
        return count;
    }

    private static int CountDigits(ulong value)
    {
        var digits = 1;
        while (value >= 10)
        {
            value /= 10;
            digits++;
        }

        return digits;
    }

    // Room the fast path needs for columns [from, end) plus the closing brace; values it does not copy are measured again when met.
    private int Bound(byte[] row, int[] offsets, int[] lengths, int from)
    {
        var bound = _fixedBound;
        var kinds = _kinds;
        for (var i = from; i < kinds.Length; i++)
        {
            var length = lengths[i];
            bound += length < 0 ? 4 : kinds[i] switch
            {
                ColumnKind.Int16 => 6,
                ColumnKind.Int32 => 11,
                ColumnKind.Int64 => 20,
                ColumnKind.Float4 or ColumnKind.Float8 => 32,
                ColumnKind.Bool => 5,
                ColumnKind.Uuid => 38,
                ColumnKind.Bytea => (2 * length) + 5,
                ColumnKind.Numeric => PgNumeric.MaxTextLength(row.AsSpan(offsets[i], length)),
                ColumnKind.TimestampTz or ColumnKind.Timestamp => PgDateTime.MaxJsonLength,
                ColumnKind.Date => PgDateTime.MaxJsonLength,
                _ => length + 2, // text (quoted) and raw JSON
            };
        }

        return bound;
    }

    // Binary COPY values: integers and floats big-endian, bool one byte, uuid 16 bytes in text order, text its UTF-8 bytes.
    // Returns the bytes written, or -1 when the value needs the slow path.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int WriteValue(ColumnKind kind, ReadOnlySpan<byte> value, Span<byte> destination)
    {
        switch (kind)
        {
            case ColumnKind.Int16:
                return WriteInteger(BinaryPrimitives.ReadInt16BigEndian(value), destination);
            case ColumnKind.Int32:
                return WriteInteger(BinaryPrimitives.ReadInt32BigEndian(value), destination);
            case ColumnKind.Int64:
                return WriteInteger(BinaryPrimitives.ReadInt64BigEndian(value), destination);
            case ColumnKind.Float4:
                {
                    var v = BinaryPrimitives.ReadSingleBigEndian(value);
                    return float.IsFinite(v)
                        ? v.TryFormat(destination, out var n, provider: CultureInfo.InvariantCulture) ? n : throw new InvalidOperationException("float4 does not fit its bound")
                        : WriteQuoted(float.IsNaN(v) ? "NaN"u8 : v > 0 ? "Infinity"u8 : "-Infinity"u8, destination);
                }

            case ColumnKind.Float8:
                {
                    var v = BinaryPrimitives.ReadDoubleBigEndian(value);
                    return double.IsFinite(v)
                        ? v.TryFormat(destination, out var n, provider: CultureInfo.InvariantCulture) ? n : throw new InvalidOperationException("float8 does not fit its bound")
                        : WriteQuoted(double.IsNaN(v) ? "NaN"u8 : v > 0 ? "Infinity"u8 : "-Infinity"u8, destination);
                }

            case ColumnKind.Bool:
                if (value[0] != 0)
                {
                    "true"u8.CopyTo(destination);
                    return 4;
                }

                "false"u8.CopyTo(destination);
                return 5;
            case ColumnKind.Text:
                if (Encoder.FindFirstCharacterToEncodeUtf8(value) >= 0)
                {
                    return -1;
                }

                return WriteQuoted(value, destination);
            case ColumnKind.Uuid:
                return WriteUuid(value, destination);
            case ColumnKind.Numeric:
                return PgNumeric.WriteJson(value, destination);
            case ColumnKind.TimestampTz:
                return PgDateTime.WriteTimestampJson(BinaryPrimitives.ReadInt64BigEndian(value), withZone: true, destination);
            case ColumnKind.Timestamp:
                return PgDateTime.WriteTimestampJson(BinaryPrimitives.ReadInt64BigEndian(value), withZone: false, destination);
            case ColumnKind.Date:
                return PgDateTime.WriteDateJson(BinaryPrimitives.ReadInt32BigEndian(value), destination);
            case ColumnKind.Bytea:
                {
                    // PostgreSQL's own JSON of bytea ("\\x00ff", what to_json writes for a nested bytea too): one encoding everywhere.
                    "\"\\\\x"u8.CopyTo(destination);
                    var hex = Hex;
                    var at = 4;
                    foreach (var b in value)
                    {
                        destination[at++] = hex[b >> 4];
                        destination[at++] = hex[b & 0xF];
                    }

                    destination[at++] = (byte)'"';
                    return at;
                }

            default:
                // PostgreSQL's JSON is valid already; only embedded json values may carry line breaks, which NDJSON cannot
                // hold, and only a SQL_ASCII database can hand out bytes that are not UTF-8.
                if (value.IndexOfAny((byte)'\n', (byte)'\r') >= 0 || !Utf8.IsValid(value))
                {
                    return -1;
                }

                value.CopyTo(destination);
                return value.Length;
        }
    }

    private static int WriteQuoted(ReadOnlySpan<byte> text, Span<byte> destination)
    {
        destination[0] = (byte)'"';
        text.CopyTo(destination[1..]);
        destination[text.Length + 1] = (byte)'"';
        return text.Length + 2;
    }

    // The 8-4-4-4-12 lowercase form, as Guid's "D" format writes it.
    private static int WriteUuid(ReadOnlySpan<byte> value, Span<byte> destination)
    {
        destination = destination[..38];
        destination[0] = (byte)'"';
        var hex = Hex;
        var at = 1;
        for (var i = 0; i < 16; i++)
        {
            if (i is 4 or 6 or 8 or 10)
            {
                destination[at++] = (byte)'-';
            }

            destination[at++] = hex[value[i] >> 4];
            destination[at++] = hex[value[i] & 0xF];
        }

        destination[37] = (byte)'"';
        return 38;
    }

    private void WriteSlow(ColumnKind kind, ReadOnlySpan<byte> value, IBufferWriter<byte> output)
    {
        if (kind != ColumnKind.Text)
        {
            // Valid JSON text: a line break can only stand between tokens (inside strings PostgreSQL requires escapes), so it
            // becomes a space; bytes that are not UTF-8 (SQL_ASCII databases) become U+FFFD. No parse: deep nesting, duplicate
            // keys, \u0000 and huge numbers pass as they are.
            var text = Utf8.IsValid(value) ? value : Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(value));
            var span = output.GetSpan(text.Length);
            for (var i = 0; i < text.Length; i++)
            {
                span[i] = text[i] is (byte)'\n' or (byte)'\r' ? (byte)' ' : text[i];
            }

            output.Advance(text.Length);
            return;
        }

        _slow.Reset(output);
        if (Utf8.IsValid(value))
        {
            _slow.WriteStringValue(value);
        }
        else
        {
            // Only a SQL_ASCII database stores text that is not UTF-8: each invalid byte becomes U+FFFD.
            _slow.WriteStringValue(Encoding.UTF8.GetString(value));
        }

        _slow.Flush();
    }
}
