using EtlFunnel.Sync.Postgres;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace EtlFunnel.Sync.Cdc;

/// <summary>A table a CDC flow streams: where its changes go and how its documents get their <c>_id</c>.</summary>
internal sealed record CdcTable(string Schema, string Table, string Index, IReadOnlyList<string> KeyColumns)
{
    public string Qualified => Sql.Qualified(Schema, Table);
}

/// <summary>One row of <c>pg_replication_slots</c> for a slot.</summary>
internal sealed record SlotInfo(string Name, string? Database, bool Active, int? ActivePid, string? RestartLsn, string? ConfirmedLsn, string? WalStatus, long? LagBytes, string? Plugin);

/// <summary>
/// The source-side checks and objects of a CDC flow, on an ordinary connection: the server can decode (wal_level), the user
/// may replicate, every table has a replica identity, the publication lists the tables; and the slot's state.
/// </summary>
internal static class CdcSource
{
    public static async Task CheckAsync(NpgsqlConnection conn, IReadOnlyList<CdcTable> tables, string where, ILogger log, CancellationToken ct)
    {
        var walLevel = await ScalarAsync<string>(conn, "SHOW wal_level", ct).ConfigureAwait(false);
        if (WalLevelProblem(walLevel, where) is { } problem)
        {
            throw new SyncConfigurationException(problem);
        }

        var canReplicate = await ScalarAsync<bool>(conn, "SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user", ct).ConfigureAwait(false);
        if (!canReplicate)
        {
            var user = await ScalarAsync<string>(conn, "SELECT current_user", ct).ConfigureAwait(false);
            throw new SyncConfigurationException(
                $"{where}: user \"{user}\" has no REPLICATION privilege, which a replication slot needs. Grant it: ALTER ROLE \"{user}\" REPLICATION;");
        }

        var keep = await ScalarAsync<string>(conn, "SHOW max_slot_wal_keep_size", ct).ConfigureAwait(false);
        if (UnboundedWalWarning(keep) is { } warning)
        {
            log.LogWarning("{Where:l}: {Warning:l}", where, warning);
        }

        foreach (var table in tables)
        {
            await using var cmd = new NpgsqlCommand(
                "SELECT c.relreplident, EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND (i.indisprimary OR i.indisreplident)) " +
                "FROM pg_class c WHERE c.oid = to_regclass($1)", conn);
            cmd.Parameters.AddWithValue(table.Qualified);
            await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
            if (!await r.ReadAsync(ct).ConfigureAwait(false))
            {
                throw new SyncConfigurationException($"{where}: source table {table.Qualified} does not exist.");
            }

            var identity = r.GetChar(0);
            var hasIndex = r.GetBoolean(1);
            if (identity == 'n' || (identity == 'd' && !hasIndex))
            {
                throw new SyncConfigurationException(
                    $"{where}: table {table.Qualified} has no replica identity, so its UPDATEs and DELETEs cannot be streamed (PostgreSQL refuses them once it is published). " +
                    $"Add a primary key, or run ALTER TABLE {table.Qualified} REPLICA IDENTITY FULL;");
            }
        }
    }

    /// <summary>The error for a source whose <c>wal_level</c> (as <c>SHOW wal_level</c> prints it) cannot decode changes, or null for <c>logical</c>.</summary>
    public static string? WalLevelProblem(string walLevel, string where) => walLevel == "logical"
        ? null
        : $"{where}: the source server runs with wal_level = {walLevel}; change data capture needs wal_level = logical. " +
          "Set it (ALTER SYSTEM SET wal_level = logical, or in postgresql.conf) and restart PostgreSQL.";

    /// <summary>
    /// The warning for an unbounded <c>max_slot_wal_keep_size</c> (<c>SHOW</c> prints <c>-1</c>: PostgreSQL's default), or null when it
    /// has a bound. Said by CDC runs and by <c>etlfunnel slots list</c>.
    /// </summary>
    public static string? UnboundedWalWarning(string maxSlotWalKeepSize) => maxSlotWalKeepSize.Trim() == "-1"
        ? "max_slot_wal_keep_size is unlimited (-1): if this flow stops for long, its slot keeps all WAL since then and can fill the disk. " +
          "Set a bound (ALTER SYSTEM SET max_slot_wal_keep_size = '50GB'; SELECT pg_reload_conf();); a slot that exceeds it is invalidated and the flow says so"
        : null;

    /// <summary>Creates the publication for the tables, or adds the tables it lacks.</summary>
    public static async Task EnsurePublicationAsync(NpgsqlConnection conn, string publication, IReadOnlyList<CdcTable> tables, ILogger log, CancellationToken ct)
    {
        var exists = await ScalarAsync<bool>(conn, $"SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = {Sql.Literal(publication)})", ct).ConfigureAwait(false);
        var list = string.Join(", ", tables.Select(t => t.Qualified).Distinct(StringComparer.Ordinal));
        if (!exists)
        {
            await ExecuteAsync(conn, $"CREATE PUBLICATION {Sql.Ident(publication)} FOR TABLE {list}", ct).ConfigureAwait(false);
            log.LogInformation("Created publication {Publication} for {Tables}", publication, list);
            return;
        }

        var published = new HashSet<string>(StringComparer.Ordinal);
        await using (var cmd = new NpgsqlCommand("SELECT format('%I.%I', schemaname, tablename) FROM pg_publication_tables WHERE pubname = $1", conn))
        {
            cmd.Parameters.AddWithValue(publication);
            await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
            while (await r.ReadAsync(ct).ConfigureAwait(false))
            {
                published.Add(r.GetString(0));
            }
        }

        foreach (var table in tables.Select(t => t.Qualified).Distinct(StringComparer.Ordinal))
        {
            var formatted = await ScalarAsync<string>(conn, $"SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass({Sql.Literal(table)})", ct).ConfigureAwait(false);
            if (!published.Contains(formatted))
            {
                await ExecuteAsync(conn, $"ALTER PUBLICATION {Sql.Ident(publication)} ADD TABLE {table}", ct).ConfigureAwait(false);
                log.LogInformation("Added {Table} to publication {Publication}", table, publication);
            }
        }
    }

    /// <summary>The slot's row of <c>pg_replication_slots</c>, or null when it does not exist.</summary>
    public static async Task<SlotInfo?> FindSlotAsync(NpgsqlConnection conn, string slot, CancellationToken ct)
    {
        var slots = await ListSlotsAsync(conn, slot, ct).ConfigureAwait(false);
        return slots.Count == 0 ? null : slots[0];
    }

    /// <summary>Logical slots of the server (or the one named), with the WAL they hold back from the current position.</summary>
    public static async Task<List<SlotInfo>> ListSlotsAsync(NpgsqlConnection conn, string? slot, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(
            "SELECT slot_name::text, database::text, active, active_pid, restart_lsn::text, confirmed_flush_lsn::text, wal_status, " +
            "pg_wal_lsn_diff(pg_current_wal_lsn(), coalesce(confirmed_flush_lsn, restart_lsn))::bigint, plugin::text " +
            "FROM pg_replication_slots WHERE slot_type = 'logical' AND ($1::text IS NULL OR slot_name = $1) ORDER BY slot_name", conn);
        cmd.Parameters.Add(new NpgsqlParameter { Value = (object?)slot ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        var list = new List<SlotInfo>();
        while (await r.ReadAsync(ct).ConfigureAwait(false))
        {
            list.Add(new SlotInfo(
                r.GetString(0), r.IsDBNull(1) ? null : r.GetString(1), r.GetBoolean(2), r.IsDBNull(3) ? null : r.GetInt32(3),
                r.IsDBNull(4) ? null : r.GetString(4), r.IsDBNull(5) ? null : r.GetString(5), r.IsDBNull(6) ? null : r.GetString(6),
                r.IsDBNull(7) ? null : r.GetInt64(7), r.IsDBNull(8) ? null : r.GetString(8)));
        }

        return list;
    }

    /// <summary>Drops a slot (it must not be streaming); returns false when it did not exist.</summary>
    public static async Task<bool> DropSlotAsync(NpgsqlConnection conn, string slot, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", conn);
        cmd.Parameters.AddWithValue(slot);
        var dropped = 0;
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await r.ReadAsync(ct).ConfigureAwait(false))
        {
            dropped++;
        }

        return dropped > 0;
    }

    /// <summary>Throws the error an operator must see for a slot that cannot be streamed from: invalidated, or in use by another process.</summary>
    public static void EnsureUsable(SlotInfo slot, string where)
    {
        if (slot.WalStatus == "lost")
        {
            throw new SyncConfigurationException(
                $"{where}: replication slot '{slot.Name}' was INVALIDATED by PostgreSQL (wal_status = lost: it fell further behind than max_slot_wal_keep_size allows), " +
                "so changes since its last acknowledged position are gone. The index may be missing changes. Drop the slot " +
                $"(etlfunnel slots drop {slot.Name} --config flows.yaml) and run the flow again: it takes a new snapshot.");
        }

        if (slot.Plugin is not null and not "pgoutput")
        {
            throw new SyncConfigurationException($"{where}: replication slot '{slot.Name}' uses the output plugin '{slot.Plugin}', not pgoutput; set `slot:` to another name or drop that slot.");
        }

        if (slot.Active)
        {
            throw new SyncConfigurationException(
                $"{where}: replication slot '{slot.Name}' is already active in another session (pid {slot.ActivePid}); is this flow running elsewhere? " +
                "Stop the other sync, or end that session (SELECT pg_terminate_backend(" + slot.ActivePid + ")).");
        }
    }

    public static async Task<T> ScalarAsync<T>(NpgsqlConnection conn, string sql, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(sql, conn);
        return (T)(await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false))!;
    }

    public static async Task ExecuteAsync(NpgsqlConnection conn, string sql, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(sql, conn);
        await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }
}
