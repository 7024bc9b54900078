using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using EtlFunnel.Destinations;
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
    private readonly TableLayout _layout;
    private readonly JsonRowWriter _json;
    private readonly string[] _keyParts;
    private readonly string _selectList;
    private readonly string? _extraFilter;
    private readonly int _integerKeyOrdinal = -1;
    // Reused across the chunks of a replica (one reader per replica, chunks read one after the other).
    private byte[]? _bufferArray;

    public PartitionReader(TableLayout layout, string? extraFilter)
    {
        _layout = layout;
        _extraFilter = extraFilter;
        _json = new JsonRowWriter(layout.Columns);
        _keyParts = new string[layout.KeyColumns.Count];
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

    /// <summary>
    /// Reads the chunk into <paramref name="current"/>'s batch; <paramref name="onFull"/> is called whenever it holds
    /// <paramref name="maxDocs"/> documents or <paramref name="maxBytes"/> bytes.
    /// </summary>
    public async Task<long> ReadAsync(
        NpgsqlConnection connection,
        BlockChunk chunk,
        Func<DocumentBatch> current,
        int maxDocs,
        int maxBytes,
        Func<ValueTask> onFull,
        CancellationToken ct)
    {
        // The raw binary stream parsed here: Npgsql's exporter costs a call chain and, for text, a byte[] per value.
        await using var raw = await connection.BeginRawBinaryCopyAsync(CopyCommand(chunk), ct).ConfigureAwait(false);
        return await DecodeAsync(raw, current, maxDocs, maxBytes, onFull, ct).ConfigureAwait(false);
    }

    /// <summary>Decodes a binary COPY stream of <see cref="CopyCommand"/>'s shape into documents (the part of <see cref="ReadAsync"/> after the COPY started).</summary>
    public async Task<long> DecodeAsync(Stream raw, Func<DocumentBatch> current, int maxDocs, int maxBytes, Func<ValueTask> onFull, CancellationToken ct)
    {
        var fields = _layout.Columns.Count + (_integerKeyOrdinal >= 0 ? 0 : _layout.KeyColumns.Count);
        long rows = 0;
        var copy = new BinaryCopyBuffer(raw, _bufferArray, fields);
        await copy.ReadHeaderAsync(ct).ConfigureAwait(false);
        while (true)
        {
            var status = DecodeBuffered(copy, current(), maxDocs, maxBytes, ref rows);
            if (status == DecodeStatus.BatchFull)
            {
                await onFull().ConfigureAwait(false);
            }
            else if (status == DecodeStatus.NeedMore)
            {
                await copy.FillAsync(ct).ConfigureAwait(false);
            }
            else
            {
                break;
            }
        }

        _bufferArray = copy.Array;
        await copy.DrainAsync(ct).ConfigureAwait(false);
        return rows;
    }

    private enum DecodeStatus
    {
        NeedMore,
        BatchFull,
        End,
    }

    // Every row already buffered, in one synchronous loop: no await and no delegate call per row.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private DecodeStatus DecodeBuffered(BinaryCopyBuffer copy, DocumentBatch batch, int maxDocs, int maxBytes, ref long rows)
    {
        var writer = batch.Writer;
        while (batch.Count < maxDocs && batch.Bytes < maxBytes)
        {
            switch (copy.TryReadRow())
            {
                case CopyRowStatus.NeedMore:
                    return DecodeStatus.NeedMore;
                case CopyRowStatus.End:
                    return DecodeStatus.End;
            }

            var start = batch.Bytes;
            _json.Write(copy.Array, copy.Offsets, copy.Lengths, writer);
            batch.Add(Id(copy), start);
            rows++;
        }

        return DecodeStatus.BatchFull;
    }

    private string Id(BinaryCopyBuffer copy)
    {
        var row = copy.Array;
        var offsets = copy.Offsets;
        var lengths = copy.Lengths;
        if (_integerKeyOrdinal >= 0)
        {
            var at = _integerKeyOrdinal;
            if (lengths[at] < 0)
            {
                throw NullKey(_layout.Columns[at].Name);
            }

            var value = row.AsSpan(offsets[at], lengths[at]);
            return (_layout.Columns[at].Kind switch
            {
                ColumnKind.Int16 => BinaryPrimitives.ReadInt16BigEndian(value),
                ColumnKind.Int32 => BinaryPrimitives.ReadInt32BigEndian(value),
                _ => BinaryPrimitives.ReadInt64BigEndian(value),
            }).ToString(CultureInfo.InvariantCulture);
        }

        var first = _layout.Columns.Count;
        var parts = _keyParts;
        for (var k = 0; k < parts.Length; k++)
        {
            var length = lengths[first + k];
            if (length < 0)
            {
                throw NullKey(_layout.KeyColumns[k]);
            }

            parts[k] = Encoding.UTF8.GetString(row, offsets[first + k], length);
        }

        return DocumentId.Compose(parts);
    }

    private SyncConfigurationException NullKey(string column) => new(
        $"Key column \"{column}\" is NULL in a row of {_layout.QualifiedName}; document ids need non-null keys. Use key columns that are NOT NULL (e.g. the primary key).");
}
