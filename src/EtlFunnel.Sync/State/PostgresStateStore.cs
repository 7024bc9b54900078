using System.Net.Sockets;
using System.Text.Json;
using System.Text.RegularExpressions;
using Npgsql;
using NpgsqlTypes;
using Polly;
using Polly.Retry;

namespace EtlFunnel.Sync.State;

/// <summary>
/// The PostgreSQL-table checkpoint store: one row per (scope, flow, replica) plus one manifest row per scope, the same
/// JSON as the folder store's files in a <c>jsonb</c> column. Every save is one upsert committed on its own
/// (<c>synchronous_commit = on</c>), so it is durable once the call returns, like the folder store's rename. A fenced scope
/// (<see cref="PostgresStateTable.Fence"/>, a cluster replica) writes only while its lease holds the owner's epoch.
/// The scope's rows are read once when the store opens; only this run writes them afterwards: the store holds a
/// session advisory lock on (table, scope) on a connection of its own while open, so a second run on the same scope
/// gets a clear error instead of interleaving checkpoints (the lock goes with the connection if the process dies).
/// </summary>
internal sealed partial class PostgresStateStore : IStateStore
{
    private const string ManifestKind = "run";
    private const string ReplicaKind = "replica";
    private static readonly JsonSerializerOptions Json = new();

    private readonly NpgsqlDataSource _dataSource;
    private readonly PostgresStateTable _table;
    private readonly string _qualified;
    private readonly ResiliencePipeline _retry;
    private readonly Dictionary<(string Flow, string Replica), byte[]> _replicas = [];
    private RunManifest? _manifest;
    private NpgsqlConnection? _lockConnection;

    private PostgresStateStore(NpgsqlDataSource dataSource, PostgresStateTable table, string qualified, SyncOptions options)
    {
        _dataSource = dataSource;
        _table = table;
        _qualified = qualified;
        _retry = new ResiliencePipelineBuilder { TimeProvider = options.TimeProvider }
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = new PredicateBuilder().Handle<Exception>(IsTransient),
                MaxRetryAttempts = 4,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = options.RetryBaseDelay,
                MaxDelay = TimeSpan.FromSeconds(10),
            })
            .Build();
    }

    public string Description => _table.ToString();

    /// <summary>The DDL of the table (what <see cref="OpenAsync"/> runs when the table is missing).</summary>
    public static string CreateTableSql(string schema, string table) => $"""
        CREATE TABLE IF NOT EXISTS {Quote(schema)}.{Quote(table)} (
            scope      text        NOT NULL,
            kind       text        NOT NULL CHECK (kind IN ('run', 'replica')),
            flow       text        NOT NULL,
            replica    text        NOT NULL,
            state      jsonb       NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (scope, kind, flow, replica)
        )
        """;

    /// <summary>What a privileged user runs so that the connection's user can use the table without CREATE rights.</summary>
    private static string GrantSql(string schema, string table, PostgresStateTable config)
    {
        var user = new NpgsqlConnectionStringBuilder(config.ConnectionString).Username is { Length: > 0 } u ? Quote(u) : "<user>";
        return $"CREATE SCHEMA IF NOT EXISTS {Quote(schema)};\n{CreateTableSql(schema, table)};\n" +
            $"GRANT USAGE ON SCHEMA {Quote(schema)} TO {user};\nGRANT SELECT, INSERT, UPDATE ON {Quote(schema)}.{Quote(table)} TO {user};";
    }

    /// <summary>Splits <c>schema.table</c> (or <c>table</c>, in <c>public</c>); null when the name is not plain lower-case identifiers.</summary>
    public static (string Schema, string Table)? ParseTableName(string name)
    {
        var m = TableNamePattern().Match(name);
        return m.Success ? (m.Groups["schema"].Success ? m.Groups["schema"].Value : "public", m.Groups["table"].Value) : null;
    }

    /// <summary>Creates the table if it is missing and reads the scope's rows; every failure is a clear <see cref="SyncConfigurationException"/>.</summary>
    public static async Task<PostgresStateStore> OpenAsync(PostgresStateTable table, SyncOptions options, CancellationToken cancellationToken)
    {
        var at = table.ConfiguredAt ?? "SyncOptions.StateTable";
        if (ParseTableName(table.Table) is not var (schema, name))
        {
            throw new SyncConfigurationException(
                $"{at}: checkpoint table name '{table.Table}' must be 'schema.table' or 'table' in lower-case letters, digits and '_' (e.g. etlfunnel.checkpoints).");
        }

        if (string.IsNullOrEmpty(table.Scope))
        {
            throw new SyncConfigurationException($"{at}: the checkpoint scope must not be empty.");
        }

        NpgsqlDataSourceBuilder builder;
        try
        {
            builder = new NpgsqlDataSourceBuilder(table.ConnectionString);
        }
        catch (ArgumentException ex)
        {
            throw new SyncConfigurationException($"{at}: the connection string of the checkpoint table is not valid ({ex.Message}).", ex);
        }

        // A checkpoint must survive a server crash once saved, whatever the server's default is.
        builder.ConnectionStringBuilder.Options = (builder.ConnectionStringBuilder.Options + " -c synchronous_commit=on").Trim();
        builder.ConnectionStringBuilder.ApplicationName ??= "etlfunnel-state";
        // Only built-in types are used; skipping the type-catalog load saves a round of queries per run.
        builder.ConfigureTypeLoading(t => t.EnableTypeLoading(false));
        var dataSource = builder.Build();
        var store = new PostgresStateStore(dataSource, table, $"{Quote(schema)}.{Quote(name)}", options);
        try
        {
            await store.CreateIfMissingAsync(schema, name, cancellationToken).ConfigureAwait(false);
            if (table.Fence is null)
            {
                // A fenced scope has one owner by its lease; the lock would outlive a partitioned owner and block its successor.
                await store.LockScopeAsync(at, cancellationToken).ConfigureAwait(false);
            }

            await store.LoadScopeAsync(cancellationToken).ConfigureAwait(false);
            return store;
        }
        catch (Exception ex)
        {
            await store.DisposeAsync().ConfigureAwait(false);
            if (OpenError(ex, table, at, schema, name) is { } error)
            {
                throw error;
            }

            throw;
        }
    }

    private static SyncConfigurationException? OpenError(Exception ex, PostgresStateTable table, string at, string schema, string name) => ex switch
    {
        PostgresException { SqlState: PostgresErrorCodes.InsufficientPrivilege } => new SyncConfigurationException(
            $"{at}: not allowed to create or use the checkpoint table {table.Table} in {table.Server} ({ex.Message}). " +
            $"Create it once as a privileged user:\n{GrantSql(schema, name, table)}", ex),
        PostgresException { SqlState: PostgresErrorCodes.UndefinedColumn or PostgresErrorCodes.DatatypeMismatch } => new SyncConfigurationException(
            $"{at}: {table.Table} in {table.Server} exists but is not an etlfunnel checkpoint table ({ex.Message}); name another table in 'table:' or drop it.", ex),
        _ when IsConnectionFailure(ex) => new SyncConfigurationException(
            $"{at}: cannot reach the checkpoint table {table.Table} in {table.Server} ({ex.Message}). " +
            "Start that PostgreSQL server or fix the connection in 'state:' (or --state), or keep checkpoints in a folder (state: ./.etlfunnel/state), then run again.", ex),
        _ => null,
    };

    public RunManifest? LoadManifest() => _manifest;

    public Task SaveManifestAsync(RunManifest manifest, CancellationToken cancellationToken)
    {
        _manifest = manifest;
        return UpsertAsync(ManifestKind, "", "", JsonSerializer.SerializeToUtf8Bytes(manifest, Json), "the run manifest", cancellationToken);
    }

    public ReplicaState? Load(string flow, string replica)
    {
        byte[]? json;
        lock (_replicas)
        {
            json = _replicas.GetValueOrDefault((flow, replica));
        }

        return json is null ? null : JsonSerializer.Deserialize<ReplicaState>(json, Json);
    }

    public async Task SaveAsync(string flow, string replica, ReplicaState state, CancellationToken cancellationToken)
    {
        // Serialised before the first await: the runner goes on mutating its state object.
        var json = JsonSerializer.SerializeToUtf8Bytes(state, Json);
        await UpsertAsync(ReplicaKind, flow, replica, json, $"the checkpoint of {flow}/{replica}", cancellationToken).ConfigureAwait(false);
        lock (_replicas)
        {
            _replicas[(flow, replica)] = json;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_lockConnection is not null)
        {
            // Back in the pool the session is reset (DISCARD ALL releases the lock), and disposing the data source closes it.
            await _lockConnection.DisposeAsync().ConfigureAwait(false);
        }

        await _dataSource.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Takes the one-writer lock of this (table, scope) or throws a <see cref="SyncConfigurationException"/> naming who holds it.</summary>
    private async Task LockScopeAsync(string at, CancellationToken ct)
    {
        var connection = await _dataSource.OpenConnectionAsync(ct).ConfigureAwait(false);
        _lockConnection = connection;
        await using var cmd = new NpgsqlCommand("SELECT pg_try_advisory_lock(hashtext($1), hashtext($2))", connection);
        cmd.Parameters.AddWithValue(_qualified);
        cmd.Parameters.AddWithValue(_table.Scope);
        if (await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false) is true)
        {
            return;
        }

        await using var who = new NpgsqlCommand(
            "SELECT a.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local'), a.backend_start FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid " +
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = hashtext($1)::oid AND l.objid = hashtext($2)::oid AND l.objsubid = 2 LIMIT 1", connection);
        who.Parameters.AddWithValue(_qualified);
        who.Parameters.AddWithValue(_table.Scope);
        var holder = "another session";
        await using (var r = await who.ExecuteReaderAsync(ct).ConfigureAwait(false))
        {
            if (await r.ReadAsync(ct).ConfigureAwait(false))
            {
                holder = $"server process {r.GetInt32(0)} ('{r.GetString(1)}' from {r.GetString(2)}, connected {r.GetDateTime(3):u})";
            }
        }

        throw new SyncConfigurationException(
            $"{at}: scope '{_table.Scope}' of the checkpoint table {_table} is in use by another etlfunnel run or watch ({holder}). Two writers " +
            "would overwrite each other's checkpoints: wait for the other run to finish or stop it, or give this run its own 'scope:'.");
    }

    private async Task CreateIfMissingAsync(string schema, string name, CancellationToken ct)
    {
        await using var conn = await _dataSource.OpenConnectionAsync(ct).ConfigureAwait(false);
        await using var tx = await conn.BeginTransactionAsync(ct).ConfigureAwait(false);
        // IF NOT EXISTS is not safe against a concurrent create (two watch flows, two processes): serialise on the name.
        // Existing objects are not created again, so a user without CREATE rights can use a table made for them.
        await using (var cmd = new NpgsqlCommand(
            "SELECT pg_advisory_xact_lock(hashtext('etlfunnel.state:' || $1)), to_regnamespace($2) IS NOT NULL, to_regclass($1) IS NOT NULL", conn, tx))
        {
            cmd.Parameters.AddWithValue(_qualified);
            cmd.Parameters.AddWithValue(Quote(schema));
            await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
            await r.ReadAsync(ct).ConfigureAwait(false);
            var (schemaExists, tableExists) = (r.GetBoolean(1), r.GetBoolean(2));
            await r.DisposeAsync().ConfigureAwait(false);
            if (tableExists)
            {
                await tx.CommitAsync(ct).ConfigureAwait(false);
                return;
            }

            var ddl = (schemaExists ? "" : $"CREATE SCHEMA IF NOT EXISTS {Quote(schema)}; ") + CreateTableSql(schema, name);
            await using var create = new NpgsqlCommand(ddl, conn, tx);
            await create.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }

        await tx.CommitAsync(ct).ConfigureAwait(false);
    }

    private async Task LoadScopeAsync(CancellationToken ct)
    {
        await using var cmd = _dataSource.CreateCommand($"SELECT kind, flow, replica, state::text FROM {_qualified} WHERE scope = $1");
        cmd.Parameters.AddWithValue(_table.Scope);
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await r.ReadAsync(ct).ConfigureAwait(false))
        {
            var (kind, flow, replica, json) = (r.GetString(0), r.GetString(1), r.GetString(2), System.Text.Encoding.UTF8.GetBytes(r.GetString(3)));
            try
            {
                if (kind == ManifestKind)
                {
                    _manifest = JsonSerializer.Deserialize<RunManifest>(json, Json);
                }
                else
                {
                    _ = JsonSerializer.Deserialize<ReplicaState>(json, Json);
                    _replicas[(flow, replica)] = json;
                }
            }
            catch (JsonException ex)
            {
                throw new SyncConfigurationException(
                    $"Checkpoint row ({_table.Scope}, {kind}, {flow}, {replica}) of {_table} is not a checkpoint ({ex.Message}). Delete it to start that " +
                    $"{(kind == ManifestKind ? "run" : "replica")} over: DELETE FROM {_qualified} WHERE scope = '{_table.Scope.Replace("'", "''", StringComparison.Ordinal)}' AND kind = '{kind}' AND flow = '{flow.Replace("'", "''", StringComparison.Ordinal)}' AND replica = '{replica.Replace("'", "''", StringComparison.Ordinal)}';", ex);
            }
        }
    }

    private async Task UpsertAsync(string kind, string flow, string replica, byte[] json, string what, CancellationToken ct)
    {
        try
        {
            await _retry.ExecuteAsync(async token =>
            {
                var fence = _table.Fence;
                // Fenced: the write happens only while the lease row still holds this owner's epoch. FOR SHARE makes a
                // takeover (an UPDATE of that row) wait for an in-flight write, so no write of a stale owner lands after it.
                await using var cmd = _dataSource.CreateCommand(fence is null
                    ? $"INSERT INTO {_qualified} (scope, kind, flow, replica, state, updated_at) VALUES ($1, $2, $3, $4, $5, now()) " +
                      "ON CONFLICT (scope, kind, flow, replica) DO UPDATE SET state = EXCLUDED.state, updated_at = EXCLUDED.updated_at"
                    : $"WITH fence AS (SELECT 1 FROM {fence.LeaseTable} WHERE lease_key = $6 AND epoch = $7 FOR SHARE) " +
                      $"INSERT INTO {_qualified} (scope, kind, flow, replica, state, updated_at) SELECT $1, $2, $3, $4, $5, now() FROM fence " +
                      "ON CONFLICT (scope, kind, flow, replica) DO UPDATE SET state = EXCLUDED.state, updated_at = EXCLUDED.updated_at");
                cmd.Parameters.AddWithValue(_table.Scope);
                cmd.Parameters.AddWithValue(kind);
                cmd.Parameters.AddWithValue(flow);
                cmd.Parameters.AddWithValue(replica);
                cmd.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Jsonb, Value = System.Text.Encoding.UTF8.GetString(json) });
                if (fence is not null)
                {
                    cmd.Parameters.AddWithValue(fence.LeaseKey);
                    cmd.Parameters.AddWithValue(fence.Epoch);
                }

                if (await cmd.ExecuteNonQueryAsync(token).ConfigureAwait(false) == 0 && fence is not null)
                {
                    throw new StaleEpochException(fence);
                }
            }, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsConnectionFailure(ex) && !ct.IsCancellationRequested)
        {
            throw new SyncConfigurationException(
                $"could not save {what} to {_table} ({ex.Message}); the last saved checkpoint stays valid: run again once the checkpoint database is reachable.", ex);
        }
    }

    private static bool IsTransient(Exception ex) => ex switch
    {
        PostgresException pg => pg.IsTransient,
        NpgsqlException npgsql => npgsql.IsTransient || npgsql.InnerException is IOException or SocketException or TimeoutException,
        _ => ex is IOException or SocketException or TimeoutException,
    };

    private static bool IsConnectionFailure(Exception ex) => ex is NpgsqlException or IOException or SocketException or TimeoutException;

    private static string Quote(string identifier) => "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    [GeneratedRegex(@"^(?:(?<schema>[a-z_][a-z0-9_]{0,62})\.)?(?<table>[a-z_][a-z0-9_]{0,62})$")]
    private static partial Regex TableNamePattern();
}
