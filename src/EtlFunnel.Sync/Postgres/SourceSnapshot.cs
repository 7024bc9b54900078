using Npgsql;

namespace EtlFunnel.Sync.Postgres;

/// <summary>
/// The coordinator of one source database: a REPEATABLE READ transaction that exports its snapshot and stays open for the
/// whole run, so every replica transaction can import it (the way <c>pg_dump -j</c> does). Table layouts and watermark
/// maxima are read inside that same snapshot.
/// </summary>
internal sealed class SourceSnapshot : IAsyncDisposable
{
    private readonly NpgsqlConnection _connection;
    private readonly NpgsqlTransaction _transaction;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly Dictionary<string, Task<TableLayout>> _layouts = new(StringComparer.Ordinal);

    private SourceSnapshot(string connectionString, NpgsqlConnection connection, NpgsqlTransaction transaction, string snapshotId)
    {
        ConnectionString = connectionString;
        _connection = connection;
        _transaction = transaction;
        SnapshotId = snapshotId;
    }

    public string ConnectionString { get; }

    public string SnapshotId { get; }

    public static async Task<SourceSnapshot> OpenAsync(string connectionString, CancellationToken ct)
    {
        var conn = new NpgsqlConnection(connectionString);
        try
        {
            await conn.OpenAsync(ct).ConfigureAwait(false);
            var tx = await conn.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, ct).ConfigureAwait(false);
            await using var cmd = new NpgsqlCommand("SELECT pg_export_snapshot()", conn, tx);
            var id = (string)(await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false))!;
            return new SourceSnapshot(connectionString, conn, tx, id);
        }
        catch
        {
            await conn.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// A coordinator that imports a snapshot exported elsewhere (CDC: the one <c>CREATE_REPLICATION_SLOT ... EXPORT_SNAPSHOT</c>
    /// exported, valid while that replication session stays open and idle) instead of exporting its own.
    /// </summary>
    public static async Task<SourceSnapshot> ImportAsync(string connectionString, string snapshotId, CancellationToken ct)
    {
        var conn = new NpgsqlConnection(connectionString);
        try
        {
            await conn.OpenAsync(ct).ConfigureAwait(false);
            var tx = await conn.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, ct).ConfigureAwait(false);
            await using var cmd = new NpgsqlCommand($"SET TRANSACTION SNAPSHOT {Sql.Literal(snapshotId)}", conn, tx);
            await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            return new SourceSnapshot(connectionString, conn, tx, snapshotId);
        }
        catch
        {
            await conn.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>A stable key for the source database (host, port, database), used in state.</summary>
    public static string SourceKey(string connectionString)
    {
        var b = new NpgsqlConnectionStringBuilder(connectionString);
        return $"{b.Host}:{b.Port}/{b.Database}";
    }

    public Task<TableLayout> DescribeAsync(string schema, string table, IReadOnlyList<string> keyColumns, CancellationToken ct)
    {
        var key = Sql.Qualified(schema, table) + "|" + string.Join(",", keyColumns);
        lock (_layouts)
        {
            if (!_layouts.TryGetValue(key, out var task))
            {
                task = Locked(() => DescribeCoreAsync(schema, table, keyColumns, ct), ct);
                _layouts[key] = task;
            }

            return task;
        }
    }

    /// <summary>The largest value of <paramref name="column"/> in the snapshot, as PostgreSQL text, or null for an empty table.</summary>
    public Task<string?> MaxAsync(string qualifiedTable, string column, CancellationToken ct) =>
        Locked(async () =>
        {
            await using var cmd = new NpgsqlCommand($"SELECT max({Sql.Ident(column)})::text FROM {qualifiedTable}", _connection, _transaction);
            var v = await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false);
            return v as string;
        }, ct);

    /// <summary>The type name and category (pg_type.typcategory) of a column.</summary>
    public Task<(string Type, char Category)> ColumnTypeAsync(string qualifiedTable, string column, CancellationToken ct) =>
        Locked(async () =>
        {
            await using var cmd = new NpgsqlCommand(
                "SELECT format_type(a.atttypid, a.atttypmod), t.typcategory FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid " +
                "WHERE a.attrelid = $1::regclass AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
                _connection, _transaction);
            cmd.Parameters.AddWithValue(qualifiedTable);
            cmd.Parameters.AddWithValue(column);
            await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
            if (!await r.ReadAsync(ct).ConfigureAwait(false))
            {
                throw new SyncConfigurationException($"Incremental column \"{column}\" does not exist in {qualifiedTable}. Fix `incremental:` in the pipeline config.");
            }

            return (r.GetString(0), r.GetChar(1));
        }, ct);

    private async Task<T> Locked<T>(Func<Task<T>> action, CancellationToken ct)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            return await action().ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task<TableLayout> DescribeCoreAsync(string schema, string table, IReadOnlyList<string> keyColumns, CancellationToken ct)
    {
        var qualified = Sql.Qualified(schema, table);
        await using (var exists = new NpgsqlCommand("SELECT to_regclass($1) IS NOT NULL", _connection, _transaction))
        {
            exists.Parameters.AddWithValue(qualified);
            if (!(bool)(await exists.ExecuteScalarAsync(ct).ConfigureAwait(false))!)
            {
                throw new SyncConfigurationException($"Source table {qualified} does not exist in {SourceKey(ConnectionString)}.");
            }
        }

        var columns = new List<ColumnInfo>();
        await using (var cmd = new NpgsqlCommand(
            "SELECT a.attname, t.typname, bt.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid " +
            "LEFT JOIN pg_type bt ON bt.oid = t.typbasetype " +
            "WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum", _connection, _transaction))
        {
            cmd.Parameters.AddWithValue(qualified);
            await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
            while (await r.ReadAsync(ct).ConfigureAwait(false))
            {
                // A domain reads like its base type.
                var type = r.IsDBNull(2) ? r.GetString(1) : r.GetString(2);
                columns.Add(new ColumnInfo(r.GetString(0), type, ColumnInfo.KindOf(type)));
            }
        }

        var keys = keyColumns.ToList();
        if (keys.Count == 0)
        {
            await using var cmd = new NpgsqlCommand(
                "SELECT a.attname FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord) " +
                "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum " +
                "WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY k.ord", _connection, _transaction);
            cmd.Parameters.AddWithValue(qualified);
            await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
            while (await r.ReadAsync(ct).ConfigureAwait(false))
            {
                keys.Add(r.GetString(0));
            }

            if (keys.Count == 0)
            {
                throw new SyncConfigurationException(
                    $"Table {qualified} has no primary key, so documents would have no stable _id. Add a primary key, or set the pipeline's key columns.");
            }
        }

        foreach (var k in keys.Where(k => columns.All(c => c.Name != k)))
        {
            throw new SyncConfigurationException($"Key column \"{k}\" does not exist in {qualified}.");
        }

        var leaves = new List<LeafRelation>();
        await using (var cmd = new NpgsqlCommand(
            "SELECT format('%I.%I', n.nspname, c.relname), pg_relation_size(c.oid) / current_setting('block_size')::bigint " +
            "FROM (SELECT $1::regclass AS relid UNION SELECT relid FROM pg_partition_tree($1::regclass) WHERE isleaf) p " +
            "JOIN pg_class c ON c.oid = p.relid JOIN pg_namespace n ON n.oid = c.relnamespace " +
            "WHERE c.relkind IN ('r', 'm') ORDER BY c.oid", _connection, _transaction))
        {
            cmd.Parameters.AddWithValue(qualified);
            await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
            while (await r.ReadAsync(ct).ConfigureAwait(false))
            {
                leaves.Add(new LeafRelation(r.GetString(0), r.GetInt64(1)));
            }
        }

        return new TableLayout(qualified, columns, keys, leaves);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _transaction.RollbackAsync().ConfigureAwait(false);
        }
        catch (NpgsqlException)
        {
            // The coordinator may already be gone; the snapshot dies with it either way.
        }
        catch (InvalidOperationException)
        {
        }

        await _transaction.DisposeAsync().ConfigureAwait(false);
        await _connection.DisposeAsync().ConfigureAwait(false);
        _gate.Dispose();
    }
}
