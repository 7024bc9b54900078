using Npgsql;

namespace EtlFunnel.Sync.Postgres;

/// <summary>
/// The coordinator of one source database: a REPEATABLE READ transaction that exports its snapshot and stays open for the
/// whole run, so every replica transaction can import it (the way <c>pg_dump -j</c> does). Table layouts and watermark
/// maxima are read inside that same snapshot.
/// </summary>
internal sealed partial class SourceSnapshot : IAsyncDisposable
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

    /// <summary>The run's snapshot as <c>pg_current_snapshot()</c> text (xmin:xmax:xip), used to tell rows written after it.</summary>
    public string CurrentSnapshot { get; private set; } = "";

    /// <summary>
    /// Opens the coordinator: pins the session settings, takes ACCESS SHARE locks on <paramref name="tables"/> (a partitioned
    /// table's lock covers its partitions) BEFORE the snapshot is taken, then exports the snapshot. LOCK TABLE does not take
    /// the transaction snapshot, so no TRUNCATE / VACUUM FULL / CLUSTER can commit between the snapshot and the locks; they
    /// wait for the run instead of emptying the heap it reads.
    /// </summary>
    public static Task<SourceSnapshot> OpenAsync(string connectionString, IReadOnlyCollection<string> tables, TimeSpan lockTimeout, CancellationToken ct) =>
        OpenCoreAsync(connectionString, tables, lockTimeout, null, null, ct);

    /// <summary>
    /// A coordinator that imports a snapshot exported elsewhere (CDC: the one <c>CREATE_REPLICATION_SLOT ... EXPORT_SNAPSHOT</c>
    /// exported, valid while that replication session stays open and idle) instead of exporting its own; settings and locks as
    /// <see cref="OpenAsync"/>. The locks come after the snapshot here: a TRUNCATE committed in between reaches a CDC flow
    /// through the stream anyway.
    /// </summary>
    public static Task<SourceSnapshot> ImportAsync(string connectionString, string snapshotId, IReadOnlyCollection<string> tables, TimeSpan lockTimeout, CancellationToken ct) =>
        OpenCoreAsync(connectionString, tables, lockTimeout, snapshotId, null, ct);

    /// <summary>
    /// A coordinator that imports the snapshot another process's coordinator exported and keeps open (a cluster run's planner,
    /// <see cref="ExportedSnapshots"/>); settings and locks as <see cref="ImportAsync"/>. When the snapshot cannot be imported
    /// (its exporting session ended), here or in a reader session opened later, the run fails with <paramref name="whenGone"/>.
    /// </summary>
    public static Task<SourceSnapshot> ImportExportedAsync(string connectionString, string snapshotId, IReadOnlyCollection<string> tables, TimeSpan lockTimeout, string whenGone, CancellationToken ct) =>
        OpenCoreAsync(connectionString, tables, lockTimeout, snapshotId, whenGone, ct);

    private static async Task<SourceSnapshot> OpenCoreAsync(string connectionString, IReadOnlyCollection<string> tables, TimeSpan lockTimeout, string? importedSnapshot, string? whenGone, CancellationToken ct)
    {
        var conn = new NpgsqlConnection(connectionString);
        try
        {
            await conn.OpenAsync(ct).ConfigureAwait(false);
            var tx = await conn.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, ct).ConfigureAwait(false);
            if (importedSnapshot is not null)
            {
                // SET TRANSACTION SNAPSHOT must be the transaction's first statement.
                await using var import = new NpgsqlCommand($"SET TRANSACTION SNAPSHOT {Sql.Literal(importedSnapshot)}", conn, tx);
                try
                {
                    await import.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
                }
                catch (PostgresException ex) when (whenGone is not null && IsSnapshotGone(ex))
                {
                    throw new SyncConfigurationException(whenGone, ex);
                }
            }

            await using (var pin = new NpgsqlCommand(SessionSettings(conn) + $"; SET LOCAL lock_timeout = {LockTimeoutMs(lockTimeout)}", conn, tx))
            {
                await pin.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            }

            foreach (var table in tables)
            {
                await LockAsync(conn, tx, table, lockTimeout, SourceKey(connectionString), ct).ConfigureAwait(false);
            }

            // pg_current_snapshot() lists in-progress top-level ids only, not subtransaction ids; every (sub)transaction id
            // holds a lock on itself until its top-level transaction ends, so pg_locks, read in the same statement just after
            // the snapshot was taken, names them (see FirstSnapshot).
            await using var cmd = new NpgsqlCommand(
                (importedSnapshot is null ? "SELECT pg_export_snapshot(), s::text, " : $"SELECT {Sql.Literal(importedSnapshot)}, s::text, ") +
                " pg_snapshot_xmin(s)::text::bigint, pg_snapshot_xmax(s)::text::bigint, " +
                "array(SELECT x::text::bigint FROM pg_snapshot_xip(s) x), " +
                "array(SELECT transactionid::text::bigint FROM pg_locks WHERE locktype = 'transactionid' AND granted) " +
                "FROM pg_current_snapshot() s", conn, tx);
            await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
            await r.ReadAsync(ct).ConfigureAwait(false);
            var xmin = r.GetInt64(2);
            var xmax = r.GetInt64(3);
            var xip = r.GetFieldValue<long[]>(4);
            var locked = r.GetFieldValue<long[]>(5).Select(x => Widen(x, xmax)).ToHashSet();
            var gone = xip.Where(x => !locked.Contains(x)).DefaultIfEmpty(xmax).Min();
            return new SourceSnapshot(connectionString, conn, tx, r.GetString(0))
            {
                CurrentSnapshot = r.GetString(1),
                Xmax = xmax,
                First = new State.FirstSnapshot
                {
                    Xmin = xmin,
                    UncertainFrom = Math.Min(xmax, gone),
                    Running = [.. xip.Concat(locked.Where(x => x >= xmin && x < xmax)).Distinct().Order()],
                },
                LockTimeout = lockTimeout,
                _tables = tables,
                _whenGone = whenGone,
            };
        }
        catch
        {
            await conn.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>This snapshot's horizon, recorded in the manifest when it is the run's first.</summary>
    public State.FirstSnapshot First { get; private init; } = new();

    /// <summary>64-bit xmax of this snapshot: every row version visible in it was written by a transaction below it.</summary>
    public long Xmax { get; private init; }

    // A 32-bit id below (or near) xmax in 64 bits: the candidate of xmax's epoch, or of the one before when that is above xmax.
    private static long Widen(long xid32, long xmax)
    {
        var full = ((xmax >> 32) << 32) | xid32;
        return full > xmax ? full - (1L << 32) : full;
    }

    /// <summary>
    /// A condition on a row version (under this snapshot): its inserting transaction may have committed after
    /// <paramref name="first"/> (see <see cref="State.FirstSnapshot"/>). The 32-bit <c>xmin</c> column is widened to 64 bits
    /// with this snapshot's epoch (every visible version's transaction is below <see cref="Xmax"/> and within 2^31 of it;
    /// an older frozen version can only come out too new, which re-reads it: harmless). xmin 0..2 (bootstrap, frozen) is old.
    /// </summary>
    public string WrittenSince(State.FirstSnapshot first)
    {
        var epoch = (Xmax >> 32) << 32;
        var raw = $"({epoch} | xmin::text::bigint)";
        var full = $"(CASE WHEN {raw} > {Xmax} THEN {raw} - 4294967296 ELSE {raw} END)";
        var running = first.Running.Count == 0 ? "false"
            : $"{full} = ANY('{{{string.Join(",", first.Running.Select(x => x.ToString(System.Globalization.CultureInfo.InvariantCulture)))}}}'::bigint[])";
        return $"(xmin::text::bigint >= 3 AND {full} >= {first.Xmin} AND ({full} >= {first.UncertainFrom} OR {running}))";
    }

    /// <summary>Whether any row of <paramref name="chunk"/> visible in this snapshot matches <see cref="WrittenSince"/> (stops at the first).</summary>
    public Task<bool> HasRowsWrittenSinceAsync(BlockChunk chunk, State.FirstSnapshot first, CancellationToken ct) =>
        Locked(async () =>
        {
            var range = $"ctid >= '({chunk.StartBlock},0)'::tid" + (chunk.EndBlock is { } end ? $" AND ctid < '({end},0)'::tid" : "");
            await using var cmd = new NpgsqlCommand(
                $"SELECT EXISTS (SELECT 1 FROM ONLY {chunk.Relation} WHERE {range} AND {WrittenSince(first)})", _connection, _transaction);
            return (bool)(await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false))!;
        }, ct);

    /// <summary>How long a session waits for a table lock before the run fails with a message naming the table.</summary>
    public TimeSpan LockTimeout { get; private init; }

    private IReadOnlyCollection<string> _tables = [];

    private string? _whenGone;

    /// <summary>The server's answer to <c>SET TRANSACTION SNAPSHOT</c> of an id no open transaction exports (any more).</summary>
    private static bool IsSnapshotGone(PostgresException ex) =>
        ex.SqlState == PostgresErrorCodes.InvalidParameterValue && ex.MessageText.Contains("snapshot", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// The settings every coordinator and replica session pins (as pg_dump does), so database- or role-level
    /// <c>ALTER ... SET</c> cannot change documents, <c>_id</c> text or kill an idle snapshot holder.
    /// </summary>
    internal static string SessionSettings(NpgsqlConnection connection)
    {
        var sql = "SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, MDY'; SET LOCAL IntervalStyle = 'postgres'; " +
            "SET LOCAL extra_float_digits = 3; SET LOCAL bytea_output = 'hex'; SET LOCAL idle_in_transaction_session_timeout = 0; " +
            "SET LOCAL statement_timeout = 0";
        // transaction_timeout exists from PostgreSQL 17 on (pg_dump 17 disables it too).
        return connection.PostgreSqlVersion.Major >= 17 ? sql + "; SET LOCAL transaction_timeout = 0" : sql;
    }

    private static bool IsSqlAscii(NpgsqlConnection connection) =>
        connection.PostgresParameters.TryGetValue("server_encoding", out var encoding) && encoding == "SQL_ASCII";

    private static long LockTimeoutMs(TimeSpan timeout) => timeout <= TimeSpan.Zero ? 0 : Math.Max(1, (long)timeout.TotalMilliseconds);

    internal static async Task LockAsync(NpgsqlConnection conn, NpgsqlTransaction? tx, string table, TimeSpan lockTimeout, string source, CancellationToken ct)
    {
        try
        {
            await using var cmd = new NpgsqlCommand($"LOCK TABLE {table} IN ACCESS SHARE MODE", conn, tx);
            await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.LockNotAvailable)
        {
            throw new SyncConfigurationException(
                $"Could not lock {table} in {source} within {lockTimeout.TotalSeconds:0.###} s: another session holds or is queued for a conflicting lock " +
                "(a TRUNCATE, VACUUM FULL, CLUSTER, ALTER TABLE or an explicit LOCK). The sync holds ACCESS SHARE locks for the whole run so that such " +
                "rewrites wait for it instead of losing rows. Let that session finish (see pg_locks / pg_blocking_pids) and run again, or raise SyncOptions.LockTimeout.",
                ex);
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UndefinedTable)
        {
            throw new SyncConfigurationException($"Source table {table} does not exist in {source}.", ex);
        }
    }

    /// <summary>
    /// A reader session for a replica: a READ ONLY transaction importing the run's snapshot, with the pinned settings and
    /// ACCESS SHARE on every table of the run. Sessions are pooled for the run: one that already holds the locks never queues
    /// behind a TRUNCATE that waits for the coordinator (a fresh lock request would, and the run could never finish).
    /// </summary>
    public async Task<NpgsqlConnection> RentSessionAsync(string readerConnectionString, CancellationToken ct)
    {
        lock (_idle)
        {
            if (_idle.Count > 0)
            {
                return _idle.Pop();
            }
        }

        return await OpenSessionAsync(readerConnectionString, ct).ConfigureAwait(false);
    }

    /// <summary>Gives a healthy session (its transaction still usable) back to the pool; others are closed.</summary>
    public async ValueTask ReturnSessionAsync(NpgsqlConnection connection, bool healthy)
    {
        if (healthy && connection.FullState == System.Data.ConnectionState.Open)
        {
            lock (_idle)
            {
                _idle.Push(connection);
                return;
            }
        }

        await connection.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Opens <paramref name="count"/> reader sessions right after the coordinator locked the tables, before a rewrite can queue.</summary>
    public async Task WarmAsync(string readerConnectionString, int count, CancellationToken ct)
    {
        for (var i = 0; i < count; i++)
        {
            var session = await OpenSessionAsync(readerConnectionString, ct).ConfigureAwait(false);
            lock (_idle)
            {
                _idle.Push(session);
            }
        }
    }

    private async Task<NpgsqlConnection> OpenSessionAsync(string readerConnectionString, CancellationToken ct)
    {
        var connection = new NpgsqlConnection(readerConnectionString);
        try
        {
            await connection.OpenAsync(ct).ConfigureAwait(false);
            await using (var begin = new NpgsqlCommand(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; " +
                $"SET TRANSACTION SNAPSHOT {Sql.Literal(SnapshotId)}; " + SessionSettings(connection) + $"; SET LOCAL lock_timeout = {LockTimeoutMs(LockTimeout)}" +
                // A SQL_ASCII database may hold bytes that are no UTF-8; converted to UTF-8 the server refuses the whole COPY.
                // Read as they are, the writer turns each invalid byte into U+FFFD (JsonRowWriter).
                (IsSqlAscii(connection) ? "; SET LOCAL client_encoding = 'SQL_ASCII'" : ""), connection))
            {
                try
                {
                    await begin.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
                }
                catch (PostgresException ex) when (_whenGone is not null && IsSnapshotGone(ex))
                {
                    throw new SyncConfigurationException(_whenGone, ex);
                }
            }

            foreach (var table in _tables)
            {
                await LockAsync(connection, null, table, LockTimeout, SourceKey(ConnectionString), ct).ConfigureAwait(false);
            }

            return connection;
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private readonly Stack<NpgsqlConnection> _idle = new();

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
        var foreign = new List<string>();
        await using (var cmd = new NpgsqlCommand(
            "SELECT format('%I.%I', n.nspname, c.relname), pg_relation_size(c.oid) / current_setting('block_size')::bigint, c.relkind, " +
            "c.relfilenode::bigint, coalesce(pg_relation_filenode(c.oid), 0)::bigint " +
            "FROM (SELECT $1::regclass AS relid UNION SELECT relid FROM pg_partition_tree($1::regclass) WHERE isleaf) p " +
            "JOIN pg_class c ON c.oid = p.relid JOIN pg_namespace n ON n.oid = c.relnamespace " +
            "WHERE c.relkind IN ('r', 'm', 'f') ORDER BY c.oid", _connection, _transaction))
        {
            cmd.Parameters.AddWithValue(qualified);
            await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
            while (await r.ReadAsync(ct).ConfigureAwait(false))
            {
                if (r.GetChar(2) == 'f')
                {
                    foreign.Add(r.GetString(0));
                    continue;
                }

                // pg_class as of the snapshot against the relation's current file (read from the catalog cache, not the
                // snapshot): they differ only if a rewrite committed after the snapshot, which the locks taken before it exclude.
                if (r.GetInt64(3) != r.GetInt64(4))
                {
                    throw new SyncConfigurationException(
                        $"{r.GetString(0)} in {SourceKey(ConnectionString)} was rewritten (TRUNCATE, VACUUM FULL, CLUSTER) after the run's snapshot was taken; " +
                        "its rows are not readable under that snapshot. Run again.", new RelationRewrittenException(r.GetString(0)));
                }

                leaves.Add(new LeafRelation(r.GetString(0), r.GetInt64(1), r.GetInt64(3)));
            }
        }

        return new TableLayout(qualified, columns, keys, leaves) { ForeignLeaves = foreign };
    }

    public async ValueTask DisposeAsync()
    {
        NpgsqlConnection[] idle;
        lock (_idle)
        {
            idle = [.. _idle];
            _idle.Clear();
        }

        foreach (var session in idle)
        {
            await session.DisposeAsync().ConfigureAwait(false);
        }

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

/// <summary>
/// Marks (as the inner exception) a run stopped because a relation was rewritten between an imported snapshot and its locks;
/// only a CDC flow's snapshot, which imports the slot's, can meet it, and it retakes the snapshot.
/// </summary>
internal sealed class RelationRewrittenException(string relation) : Exception($"{relation} was rewritten after the snapshot")
{
    public string Relation { get; } = relation;
}
