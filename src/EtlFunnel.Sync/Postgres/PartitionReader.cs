using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using EtlFunnel.Sync.Documents;
using Npgsql;

namespace EtlFunnel.Sync.Postgres;

/// <summary>A contiguous block range of one leaf relation; <see cref="EndBlock"/> null means "to the end of the heap".</summary>
internal readonly record struct BlockChunk(string Relation, long StartBlock, long? EndBlock);

/// <summary>
/// Streams one block chunk of a leaf relation with <c>COPY (SELECT ... WHERE ctid range) TO STDOUT (FORMAT BINARY)</c>
/// (a TID Range Scan touches only those blocks) and turns each row into a JSON document.
/// </summary>
internal sealed class PartitionReader
{
    private static readonly JsonWriterOptions WriterOptions = new()
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        SkipValidation = true,
    };

    private readonly TableLayout _layout;
    private readonly JsonEncodedText[] _names;
    private readonly string _selectList;
    private readonly string? _extraFilter;
    private readonly int _integerKeyOrdinal = -1;
    // Reused across the chunks of a replica (one reader per replica, chunks read one after the other).
    private byte[]? _bufferArray;

    public PartitionReader(TableLayout layout, string? extraFilter)
    {
        _layout = layout;
        _extraFilter = extraFilter;
        _names = layout.Columns.Select(c => JsonEncodedText.Encode(c.Name, JavaScriptEncoder.UnsafeRelaxedJsonEscaping)).ToArray();
        // A single integer key is formatted from the value already read (same text as PostgreSQL's); other keys come as ::text.
        if (layout.KeyColumns.Count == 1
            && layout.Columns.FirstOrDefault(c => c.Name == layout.KeyColumns[0]) is { Kind: ColumnKind.Int16 or ColumnKind.Int32 or ColumnKind.Int64 } key)
        {
            _integerKeyOrdinal = layout.Columns.ToList().IndexOf(key);
        }

        var keyTexts = _integerKeyOrdinal >= 0 ? [] : layout.KeyColumns.Select(k => $"{Sql.Ident(k)}::text");
        _selectList = string.Join(", ", layout.Columns.Select(c => c.Expression).Concat(keyTexts));
    }

    public string CopyCommand(BlockChunk chunk)
    {
        var where = new List<string>();
        if (chunk.StartBlock > 0)
        {
            where.Add($"ctid >= '({chunk.StartBlock},0)'::tid");
        }

        if (chunk.EndBlock is { } end)
        {
            where.Add($"ctid < '({end},0)'::tid");
        }

        if (_extraFilter is not null)
        {
            where.Add(_extraFilter);
        }

        var whereSql = where.Count == 0 ? "" : " WHERE " + string.Join(" AND ", where);
        return $"COPY (SELECT {_selectList} FROM ONLY {chunk.Relation}{whereSql}) TO STDOUT (FORMAT BINARY)";
    }

    /// <summary>Reads the chunk; <paramref name="current"/> receives documents and <paramref name="onFull"/> is called whenever it fills up.</summary>
    public async Task<long> ReadAsync(
        NpgsqlConnection connection,
        BlockChunk chunk,
        Func<DocumentBatch> current,
        Func<DocumentBatch, bool> isFull,
        Func<ValueTask> onFull,
        CancellationToken ct)
    {
        var keyCount = _layout.KeyColumns.Count;
        var keyParts = new string[keyCount];
        var fields = _layout.Columns.Count + (_integerKeyOrdinal >= 0 ? 0 : keyCount);
        long rows = 0;
        using var json = new Utf8JsonWriter(Stream.Null, WriterOptions);
        // The raw binary stream parsed here: Npgsql's exporter costs a call chain and, for text, a byte[] per value.
        await using var raw = await connection.BeginRawBinaryCopyAsync(CopyCommand(chunk), ct).ConfigureAwait(false);
        var copy = new BinaryCopyBuffer(raw, _bufferArray);
        await copy.ReadHeaderAsync(ct).ConfigureAwait(false);
        while (await copy.StartRowAsync(fields, ct).ConfigureAwait(false))
        {
            var batch = current();
            var start = batch.Bytes;
            WriteRow(copy, json, batch.Writer, keyParts);
            batch.Add(DocumentId.Compose(keyParts), start);
            rows++;
            if (isFull(batch))
            {
                await onFull().ConfigureAwait(false);
            }
        }

        _bufferArray = copy.Array;
        await copy.DrainAsync(ct).ConfigureAwait(false);
        return rows;
    }

    private void WriteRow(BinaryCopyBuffer copy, Utf8JsonWriter json, IBufferWriter<byte> output, string[] keyParts)
    {
        var columns = _layout.Columns;
        json.Reset(output);
        json.WriteStartObject();
        for (var i = 0; i < columns.Count; i++)
        {
            json.WritePropertyName(_names[i]);
            var value = copy.Next(out var isNull);
            if (isNull)
            {
                if (i == _integerKeyOrdinal)
                {
                    throw NullKey(columns[i].Name);
                }

                json.WriteNullValue();
                continue;
            }

            if (i == _integerKeyOrdinal)
            {
                var key = columns[i].Kind switch
                {
                    ColumnKind.Int16 => BinaryPrimitives.ReadInt16BigEndian(value),
                    ColumnKind.Int32 => BinaryPrimitives.ReadInt32BigEndian(value),
                    _ => BinaryPrimitives.ReadInt64BigEndian(value),
                };
                json.WriteNumberValue(key);
                keyParts[0] = key.ToString(CultureInfo.InvariantCulture);
                continue;
            }

            WriteValue(value, columns[i].Kind, json);
        }

        json.WriteEndObject();
        json.Flush();
        for (var k = 0; k < keyParts.Length && _integerKeyOrdinal < 0; k++)
        {
            var value = copy.Next(out var isNull);
            if (isNull)
            {
                throw NullKey(_layout.KeyColumns[k]);
            }

            keyParts[k] = Encoding.UTF8.GetString(value);
        }
    }

    // Binary COPY values: integers and floats big-endian, bool one byte, uuid 16 bytes in text order, text its UTF-8 bytes.
    private static void WriteValue(ReadOnlySpan<byte> value, ColumnKind kind, Utf8JsonWriter json)
    {
        switch (kind)
        {
            case ColumnKind.Int16:
                json.WriteNumberValue(BinaryPrimitives.ReadInt16BigEndian(value));
                break;
            case ColumnKind.Int32:
                json.WriteNumberValue(BinaryPrimitives.ReadInt32BigEndian(value));
                break;
            case ColumnKind.Int64:
                json.WriteNumberValue(BinaryPrimitives.ReadInt64BigEndian(value));
                break;
            case ColumnKind.Float4:
                WriteFloat(json, BinaryPrimitives.ReadSingleBigEndian(value));
                break;
            case ColumnKind.Float8:
                WriteDouble(json, BinaryPrimitives.ReadDoubleBigEndian(value));
                break;
            case ColumnKind.Bool:
                json.WriteBooleanValue(value[0] != 0);
                break;
            case ColumnKind.Text:
                json.WriteStringValue(value);
                break;
            case ColumnKind.Uuid:
                json.WriteStringValue(new Guid(value, bigEndian: true));
                break;
            case ColumnKind.Bytea:
                json.WriteBase64StringValue(value);
                break;
            default:
                WriteRaw(json, value);
                break;
        }
    }

    private SyncConfigurationException NullKey(string column) => new(
        $"Key column \"{column}\" is NULL in a row of {_layout.QualifiedName}; document ids need non-null keys. Use key columns that are NOT NULL (e.g. the primary key).");

    private static void WriteFloat(Utf8JsonWriter json, float v)
    {
        if (float.IsFinite(v))
        {
            json.WriteNumberValue(v);
        }
        else
        {
            json.WriteStringValue(float.IsNaN(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity");
        }
    }

    private static void WriteDouble(Utf8JsonWriter json, double v)
    {
        if (double.IsFinite(v))
        {
            json.WriteNumberValue(v);
        }
        else
        {
            json.WriteStringValue(double.IsNaN(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity");
        }
    }

    private static void WriteRaw(Utf8JsonWriter json, ReadOnlySpan<byte> value)
    {
        // PostgreSQL's JSON is valid already; only embedded raw json values may carry line breaks, which NDJSON cannot hold.
        if (value.IndexOfAny((byte)'\n', (byte)'\r') < 0)
        {
            json.WriteRawValue(value, skipInputValidation: true);
            return;
        }

        using var doc = JsonDocument.Parse(value.ToArray());
        doc.RootElement.WriteTo(json);
    }
}
