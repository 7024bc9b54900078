using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using EtlFunnel.Sync.Documents;
using Npgsql;
using NpgsqlTypes;

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
        var columns = _layout.Columns;
        var keyCount = _layout.KeyColumns.Count;
        var keyParts = new string[keyCount];
        long rows = 0;
        using var json = new Utf8JsonWriter(Stream.Null, WriterOptions);
        await using var exporter = await connection.BeginBinaryExportAsync(CopyCommand(chunk), ct).ConfigureAwait(false);
        while (await exporter.StartRowAsync(ct).ConfigureAwait(false) != -1)
        {
            var batch = current();
            var start = batch.Bytes;
            json.Reset(batch.Writer);
            json.WriteStartObject();
            for (var i = 0; i < columns.Count; i++)
            {
                json.WritePropertyName(_names[i]);
                if (exporter.IsNull)
                {
                    if (i == _integerKeyOrdinal)
                    {
                        throw NullKey(columns[i].Name);
                    }

                    exporter.Skip();
                    json.WriteNullValue();
                    continue;
                }

                if (i == _integerKeyOrdinal)
                {
                    var key = columns[i].Kind switch
                    {
                        ColumnKind.Int16 => exporter.Read<short>(NpgsqlDbType.Smallint),
                        ColumnKind.Int32 => exporter.Read<int>(NpgsqlDbType.Integer),
                        _ => exporter.Read<long>(NpgsqlDbType.Bigint),
                    };
                    json.WriteNumberValue(key);
                    keyParts[0] = key.ToString(CultureInfo.InvariantCulture);
                    continue;
                }

                WriteValue(exporter, columns[i].Kind, json);
            }

            json.WriteEndObject();
            json.Flush();
            for (var k = 0; k < keyCount && _integerKeyOrdinal < 0; k++)
            {
                if (exporter.IsNull)
                {
                    throw NullKey(_layout.KeyColumns[k]);
                }

                keyParts[k] = exporter.Read<string>(NpgsqlDbType.Text);
            }

            batch.Add(DocumentId.Compose(keyParts), start);
            rows++;
            if (isFull(batch))
            {
                await onFull().ConfigureAwait(false);
            }
        }

        return rows;
    }

    // Synchronous reads: the row was just started and values are mostly in Npgsql's buffer; an await per column costs more
    // than the rare blocking refill (bounded by the worker pool).
    private static void WriteValue(NpgsqlBinaryExporter exporter, ColumnKind kind, Utf8JsonWriter json)
    {
        switch (kind)
        {
            case ColumnKind.Int16:
                json.WriteNumberValue(exporter.Read<short>(NpgsqlDbType.Smallint));
                break;
            case ColumnKind.Int32:
                json.WriteNumberValue(exporter.Read<int>(NpgsqlDbType.Integer));
                break;
            case ColumnKind.Int64:
                json.WriteNumberValue(exporter.Read<long>(NpgsqlDbType.Bigint));
                break;
            case ColumnKind.Float4:
                WriteFloat(json, exporter.Read<float>(NpgsqlDbType.Real));
                break;
            case ColumnKind.Float8:
                WriteDouble(json, exporter.Read<double>(NpgsqlDbType.Double));
                break;
            case ColumnKind.Bool:
                json.WriteBooleanValue(exporter.Read<bool>(NpgsqlDbType.Boolean));
                break;
            case ColumnKind.Text:
                // Binary COPY carries text as its UTF-8 bytes, the same wire shape as bytea: no decode/re-encode round trip.
                json.WriteStringValue(exporter.Read<byte[]>(NpgsqlDbType.Bytea));
                break;
            case ColumnKind.Uuid:
                json.WriteStringValue(exporter.Read<Guid>(NpgsqlDbType.Uuid));
                break;
            case ColumnKind.Bytea:
                json.WriteBase64StringValue(exporter.Read<byte[]>(NpgsqlDbType.Bytea));
                break;
            default:
                WriteRaw(json, exporter.Read<byte[]>(NpgsqlDbType.Bytea));
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

    private static void WriteRaw(Utf8JsonWriter json, byte[] value)
    {
        // PostgreSQL's JSON is valid already; only embedded raw json values may carry line breaks, which NDJSON cannot hold.
        if (value.AsSpan().IndexOfAny((byte)'\n', (byte)'\r') < 0)
        {
            json.WriteRawValue(value, skipInputValidation: true);
            return;
        }

        using var doc = JsonDocument.Parse(value);
        doc.RootElement.WriteTo(json);
    }
}
