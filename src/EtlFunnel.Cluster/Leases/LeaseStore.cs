using System.Text.Json;
using EtlFunnel.Sync;
using Npgsql;
using NpgsqlTypes;

namespace EtlFunnel.Cluster.Leases;

/// <summary>A lease one owner holds on one pipeline replica of a cluster run; <see cref="Epoch"/> fences its checkpoint writes.</summary>
internal sealed record Lease(string Key, string Owner, long Epoch)
{
    /// <summary>The checkpoint store's fence for this lease.</summary>
    public StateFence Fence => new(ClusterSchema.LeaseTable, Key, Epoch);
}

/// <summary>A replica's row as the caller sees it; <c>Transformed</c>: the documents its transformers wrote per version (<c>name@version</c> → count) as JSON, null without transformers.</summary>
internal sealed record LeaseRow(string Key, string Flow, string Replica, string Status, string? Owner, bool Expired, long Epoch, int Takeovers, string? Report, string? Error, string? Transformed = null);

/// <summary>
/// The <c>etlfunnel_cluster.leases</c> table: the caller creates one pending row per pipeline replica; a grain takes the lease
/// (epoch + 1) when it starts the replica, renews it while it runs and completes it with the replica's report. Every
/// statement after the take is conditional on the owner's epoch, so a stale owner can neither renew nor complete.
/// </summary>
internal sealed class LeaseStore(NpgsqlDataSource dataSource)
{
    /// <summary>The key of a replica's lease.</summary>
    public static string KeyOf(string runId, string flow, string replica) => $"{runId}/{flow}/{replica}";

    /// <summary>Creates the pending rows of a run (existing rows are kept: a caller restarted with the same run id resumes).</summary>
    public async Task CreateAsync(string runId, IEnumerable<(string Flow, string Replica)> replicas, CancellationToken ct)
    {
        await using var batch = dataSource.CreateBatch();
        foreach (var (flow, replica) in replicas)
        {
            var cmd = new NpgsqlBatchCommand(
                "INSERT INTO etlfunnel_cluster.leases (lease_key, run_id, flow, replica) VALUES ($1, $2, $3, $4) ON CONFLICT (lease_key) DO NOTHING");
            cmd.Parameters.AddWithValue(KeyOf(runId, flow, replica));
            cmd.Parameters.AddWithValue(runId);
            cmd.Parameters.AddWithValue(flow);
            cmd.Parameters.AddWithValue(replica);
            batch.BatchCommands.Add(cmd);
        }

        await batch.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Takes the lease for <paramref name="owner"/> when it is free (pending, released) or lapsed (its owner stopped renewing):
    /// the epoch goes up by one. Null when another owner holds it or the replica is finished.
    /// </summary>
    public async Task<Lease?> TryAcquireAsync(string key, string owner, TimeSpan ttl, CancellationToken ct)
    {
        await using var cmd = dataSource.CreateCommand(
            "UPDATE etlfunnel_cluster.leases SET epoch = epoch + 1, owner = $2, expires_at = now() + $3, status = 'running', updated_at = now(), taken_at = now(), " +
            "takeovers = takeovers + CASE WHEN owner IS NOT NULL THEN 1 ELSE 0 END " +
            "WHERE lease_key = $1 AND status IN ('pending', 'running') AND (owner IS NULL OR expires_at < now()) RETURNING epoch");
        cmd.Parameters.AddWithValue(key);
        cmd.Parameters.AddWithValue(owner);
        cmd.Parameters.AddWithValue(ttl);
        return await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false) is long epoch ? new Lease(key, owner, epoch) : null;
    }

    /// <summary>Extends the lease; false when the owner lost it (a newer epoch, or the replica was finished by someone else).</summary>
    public async Task<bool> RenewAsync(Lease lease, TimeSpan ttl, CancellationToken ct)
    {
        await using var cmd = dataSource.CreateCommand(
            "UPDATE etlfunnel_cluster.leases SET expires_at = now() + $3, updated_at = now() WHERE lease_key = $1 AND epoch = $2 AND status = 'running'");
        cmd.Parameters.AddWithValue(lease.Key);
        cmd.Parameters.AddWithValue(lease.Epoch);
        cmd.Parameters.AddWithValue(ttl);
        return await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false) == 1;
    }

    /// <summary>
    /// Records the replica's outcome, with the documents its transformers wrote per version (null: none ran); false when the
    /// owner's epoch is stale (its result is dropped).
    /// </summary>
    public async Task<bool> CompleteAsync(Lease lease, string status, ReplicaReport? report, string? error, IReadOnlyDictionary<string, long>? transformed, CancellationToken ct)
    {
        await using var cmd = dataSource.CreateCommand(
            "UPDATE etlfunnel_cluster.leases SET status = $3, report = $4, error = $5, transformed = $6, expires_at = NULL, updated_at = now() " +
            "WHERE lease_key = $1 AND epoch = $2 AND status = 'running'");
        cmd.Parameters.AddWithValue(lease.Key);
        cmd.Parameters.AddWithValue(lease.Epoch);
        cmd.Parameters.AddWithValue(status);
        cmd.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Jsonb, Value = report is null ? DBNull.Value : JsonSerializer.Serialize(report) });
        cmd.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Text, Value = (object?)error ?? DBNull.Value });
        cmd.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Jsonb, Value = transformed is null ? DBNull.Value : JsonSerializer.Serialize(transformed) });
        return await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false) == 1;
    }

    /// <summary>Gives the lease back (a worker shutting down): the replica is pending again and the caller places it at once.</summary>
    public async Task<bool> ReleaseAsync(Lease lease, CancellationToken ct)
    {
        await using var cmd = dataSource.CreateCommand(
            "UPDATE etlfunnel_cluster.leases SET status = 'pending', owner = NULL, expires_at = NULL, updated_at = now() WHERE lease_key = $1 AND epoch = $2 AND status = 'running'");
        cmd.Parameters.AddWithValue(lease.Key);
        cmd.Parameters.AddWithValue(lease.Epoch);
        return await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false) == 1;
    }

    /// <summary>Marks a replica failed without an owner (e.g. no member may run it).</summary>
    public async Task FailAsync(string key, string error, CancellationToken ct)
    {
        await using var cmd = dataSource.CreateCommand(
            "UPDATE etlfunnel_cluster.leases SET status = 'failed', error = $2, updated_at = now() WHERE lease_key = $1 AND status IN ('pending', 'running')");
        cmd.Parameters.AddWithValue(key);
        cmd.Parameters.AddWithValue(error);
        await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Every replica row of a run.</summary>
    public async Task<IReadOnlyList<LeaseRow>> ReadRunAsync(string runId, CancellationToken ct)
    {
        await using var cmd = dataSource.CreateCommand(
            "SELECT lease_key, flow, replica, status, owner, coalesce(expires_at < now(), false), epoch, takeovers, report::text, error, transformed::text " +
            "FROM etlfunnel_cluster.leases WHERE run_id = $1 ORDER BY lease_key");
        cmd.Parameters.AddWithValue(runId);
        var rows = new List<LeaseRow>();
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await r.ReadAsync(ct).ConfigureAwait(false))
        {
            rows.Add(new LeaseRow(r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3), r.IsDBNull(4) ? null : r.GetString(4), r.GetBoolean(5),
                r.GetInt64(6), r.GetInt32(7), r.IsDBNull(8) ? null : r.GetString(8), r.IsDBNull(9) ? null : r.GetString(9), r.IsDBNull(10) ? null : r.GetString(10)));
        }

        return rows;
    }
}
