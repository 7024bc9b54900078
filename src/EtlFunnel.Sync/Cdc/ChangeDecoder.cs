using System.Buffers;
using System.Text.Json;
using EtlFunnel.Destinations;
using EtlFunnel.Sync.Documents;
using EtlFunnel.Sync.Postgres;
using Npgsql;
using Npgsql.Replication.PgOutput;
using Npgsql.Replication.PgOutput.Messages;

namespace EtlFunnel.Sync.Cdc;

/// <summary>What the stream knows of a published relation since its last Relation message.</summary>
internal sealed class RelationState(CdcTable? table, CdcColumn[] columns, int[] keyOrdinals)
{
    /// <summary>The flow's table, or null when the relation is not one this flow syncs.</summary>
    public CdcTable? Table { get; } = table;

    public CdcColumn[] Columns { get; } = columns;

    public int[] KeyOrdinals { get; } = keyOrdinals;
}

/// <summary>One tuple of a change: PostgreSQL text per column (null for NULL) and which values are unchanged TOAST (not sent).</summary>
internal readonly record struct TupleValues(string?[] Texts, bool[] Unchanged)
{
    public bool AnyUnchanged => Array.IndexOf(Unchanged, true) >= 0;
}

/// <summary>
/// Turns pgoutput tuples into documents and ids. Relation messages (sent before the first change after any schema change) rebuild
/// the column list, so added and dropped columns show in the next document without a restart. Column types are looked up once
/// per type OID; values only PostgreSQL can render go through a helper connection (TimeZone UTC, DateStyle ISO, like the snapshot).
/// </summary>
internal sealed class ChangeDecoder : IAsyncDisposable
{
    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JsonRowWriter.Encoder, SkipValidation = true };
    private readonly NpgsqlConnection _helper;
    private readonly Dictionary<string, CdcTable> _tables;
    private readonly Dictionary<uint, CdcColumn> _types = [];
    private readonly Dictionary<uint, RelationState> _relations = [];
    private readonly Dictionary<string, NpgsqlCommand> _renderCommands = new(StringComparer.Ordinal);
    private readonly ArrayBufferWriter<byte> _buffer = new(4096);
    private readonly Utf8JsonWriter _writer;

    private ChangeDecoder(NpgsqlConnection helper, IEnumerable<CdcTable> tables)
    {
        _helper = helper;
        _tables = tables.ToDictionary(t => t.Qualified, StringComparer.Ordinal);
        _writer = new Utf8JsonWriter(_buffer, WriterOptions);
    }

    /// <summary>Values rendered by the server (arrays, composites) and TOAST values read back from the table.</summary>
    public long ServerRoundTrips { get; private set; }

    public static async Task<ChangeDecoder> OpenAsync(string connectionString, IEnumerable<CdcTable> tables, CancellationToken ct)
    {
        var helper = new NpgsqlConnection(connectionString);
        await helper.OpenAsync(ct).ConfigureAwait(false);
        await CdcSource.ExecuteAsync(helper, "SET TimeZone = 'UTC'; SET DateStyle = 'ISO'", ct).ConfigureAwait(false);
        return new ChangeDecoder(helper, tables);
    }

    public bool TryGet(RelationMessage relation, out RelationState state) => _relations.TryGetValue(relation.RelationId, out state!);

    public async Task<RelationState> OnRelationAsync(RelationMessage message, CancellationToken ct)
    {
        var qualified = Sql.Qualified(message.Namespace, message.RelationName);
        _tables.TryGetValue(qualified, out var table);
        var columns = new CdcColumn[message.Columns.Count];
        for (var i = 0; i < columns.Length; i++)
        {
            var c = message.Columns[i];
            columns[i] = await TypeAsync(c.DataTypeId, ct).ConfigureAwait(false) with { Name = c.ColumnName };
        }

        var keys = Array.Empty<int>();
        if (table is not null)
        {
            keys = table.KeyColumns.Select(k => Array.FindIndex(columns, c => c.Name == k)).ToArray();
            if (keys.Any(k => k < 0))
            {
                throw new SyncConfigurationException(
                    $"Table {qualified}: a key column of the documents' _id ({string.Join(", ", table.KeyColumns)}) is no longer in the table; its documents cannot be addressed. Fix the key (or the table) and resync the flow.");
            }
        }

        var state = new RelationState(table, columns, keys);
        _relations[message.RelationId] = state;
        return state;
    }

    public static async Task<TupleValues> ReadAsync(ReplicationTuple tuple, int count, CancellationToken ct)
    {
        var texts = new string?[count];
        var unchanged = new bool[count];
        var i = 0;
        await foreach (var value in tuple.ConfigureAwait(false))
        {
            if (i < count)
            {
                if (value.IsUnchangedToastedValue)
                {
                    unchanged[i] = true;
                }
                else if (!value.IsDBNull)
                {
                    texts[i] = await value.Get<string>(ct).ConfigureAwait(false);
                }
            }

            i++;
        }

        return new TupleValues(texts, unchanged);
    }

    /// <summary>The document <c>_id</c>: the key columns' text, composed as the snapshot composes it.</summary>
    public static string Id(RelationState relation, string?[] texts)
    {
        if (relation.KeyOrdinals.Length == 1)
        {
            return texts[relation.KeyOrdinals[0]] ?? "";
        }

        return DocumentId.Compose(relation.KeyOrdinals.Select(k => texts[k] ?? "").ToArray());
    }

    /// <summary>
    /// Fills values the change did not carry (unchanged TOAST): from the old row when REPLICA IDENTITY FULL sent it, else
    /// reads the row's current values. Returns false when the row no longer exists (a later change in the stream deletes it).
    /// </summary>
    public async Task<bool> FillUnchangedAsync(RelationState relation, TupleValues values, TupleValues? old, CancellationToken ct)
    {
        var missing = new List<int>();
        for (var i = 0; i < values.Texts.Length; i++)
        {
            if (!values.Unchanged[i])
            {
                continue;
            }

            if (old is { } o && i < o.Texts.Length && !o.Unchanged[i] && o.Texts[i] is { } previous)
            {
                values.Texts[i] = previous;
                values.Unchanged[i] = false;
            }
            else
            {
                missing.Add(i);
            }
        }

        if (missing.Count == 0)
        {
            return true;
        }

        var cols = relation.Columns;
        var sql = $"SELECT {string.Join(", ", missing.Select(i => Sql.Ident(cols[i].Name) + "::text"))} FROM {relation.Table!.Qualified} WHERE " +
            string.Join(" AND ", relation.KeyOrdinals.Select((k, n) => $"{Sql.Ident(cols[k].Name)} = ${n + 1}::text::{cols[k].SqlType}"));
        await using var cmd = new NpgsqlCommand(sql, _helper);
        foreach (var k in relation.KeyOrdinals)
        {
            cmd.Parameters.AddWithValue(values.Texts[k] ?? "");
        }

        ServerRoundTrips++;
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        if (!await r.ReadAsync(ct).ConfigureAwait(false))
        {
            return false;
        }

        for (var n = 0; n < missing.Count; n++)
        {
            values.Texts[missing[n]] = r.IsDBNull(n) ? null : r.GetString(n);
            values.Unchanged[missing[n]] = false;
        }

        return true;
    }

    /// <summary>
    /// The JSON document of a full row, byte for byte what the snapshot path writes for it. With <paramref name="presentOnly"/>
    /// (a replica-identity key tuple, whose other columns are not sent) only the columns that have a value are written.
    /// </summary>
    public async Task<byte[]> RenderAsync(RelationState relation, string?[] texts, CancellationToken ct, bool presentOnly = false)
    {
        _buffer.ResetWrittenCount();
        _writer.Reset(_buffer);
        _writer.WriteStartObject();
        var cols = relation.Columns;
        for (var i = 0; i < cols.Length; i++)
        {
            if (presentOnly && texts[i] is null)
            {
                continue;
            }

            _writer.WritePropertyName(cols[i].Name);
            if (texts[i] is not { } text)
            {
                _writer.WriteNullValue();
            }
            else if (!PgTextJson.TryWrite(_writer, cols[i], text))
            {
                PgTextJson.WriteJsonText(_writer, await RenderOnServerAsync(cols[i], text, ct).ConfigureAwait(false));
            }
        }

        _writer.WriteEndObject();
        _writer.Flush();
        return _buffer.WrittenSpan.ToArray();
    }

    private async Task<string> RenderOnServerAsync(CdcColumn column, string text, CancellationToken ct)
    {
        var sql = $"SELECT to_json($1::text::{column.SqlType})::text";
        if (!_renderCommands.TryGetValue(sql, out var cmd))
        {
            cmd = new NpgsqlCommand(sql, _helper);
            cmd.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
            await cmd.PrepareAsync(ct).ConfigureAwait(false);
            _renderCommands[sql] = cmd;
        }

        cmd.Parameters[0].Value = text;
        ServerRoundTrips++;
        return (string)(await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false))!;
    }

    private async Task<CdcColumn> TypeAsync(uint oid, CancellationToken ct)
    {
        if (_types.TryGetValue(oid, out var known))
        {
            return known;
        }

        await using var cmd = new NpgsqlCommand(
            "SELECT coalesce(bt.typname, t.typname)::text, coalesce(bt.typcategory, t.typcategory), format_type(t.oid, NULL), " +
            "EXISTS (SELECT 1 FROM pg_cast c WHERE c.castsource = coalesce(bt.oid, t.oid) AND c.casttarget IN ('json'::regtype, 'jsonb'::regtype)) " +
            "FROM pg_type t LEFT JOIN pg_type bt ON bt.oid = t.typbasetype WHERE t.oid = $1", _helper);
        cmd.Parameters.AddWithValue(NpgsqlTypes.NpgsqlDbType.Oid, oid);
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        if (!await r.ReadAsync(ct).ConfigureAwait(false))
        {
            throw new InvalidOperationException($"The change stream names column type OID {oid}, which pg_type does not have.");
        }

        var type = r.GetString(0);
        var column = new CdcColumn("", ColumnInfo.KindOf(type), type, r.GetChar(1), r.GetString(2), r.GetBoolean(3));
        _types[oid] = column;
        return column;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var cmd in _renderCommands.Values)
        {
            await cmd.DisposeAsync().ConfigureAwait(false);
        }

        await _writer.DisposeAsync().ConfigureAwait(false);
        await _helper.DisposeAsync().ConfigureAwait(false);
    }
}
