using System.Text.Json;
using Npgsql;

namespace EtlFunnel.Cluster.Status;

/// <summary>A member of the cluster as <c>cluster status</c> shows it: what it announced, when it was last seen and whether it is alive.</summary>
internal sealed record MemberStatus(
    string Silo, string Name, int Cores, long MemoryBytes, string? Region, IReadOnlyDictionary<string, string> Labels,
    DateTimeOffset StartedAt, DateTimeOffset SeenAt, DateTimeOffset? LeftAt, bool Alive);

/// <summary>A pipeline replica a member owns now (a running, unexpired lease): its flow/replica, the lease's epoch and since when.</summary>
internal sealed record OwnedReplica(string Silo, string RunId, string Flow, string Replica, long Epoch, DateTimeOffset? Since, int Takeovers);

/// <summary>A replica whose lease was taken over from an owner that stopped renewing it, with how often and who holds it now.</summary>
internal sealed record FailedOverReplica(string RunId, string Flow, string Replica, int Takeovers, string Status, string? Silo);

/// <summary>One reading of the cluster from its state database.</summary>
internal sealed record ClusterStatusReport(
    string ClusterId, string Server, IReadOnlyList<MemberStatus> Members, IReadOnlyList<OwnedReplica> Replicas, IReadOnlyList<FailedOverReplica> FailedOver)
{
    /// <summary>Members alive now (announced, not left, seen within the member TTL).</summary>
    public int AliveMembers => Members.Count(m => m.Alive);

    /// <summary>Every takeover of a lease of this cluster's members since the state database was created (the sum of <c>leases.takeovers</c>).</summary>
    public long Failovers => FailedOver.Sum(f => (long)f.Takeovers);

    /// <summary>Replicas owned now, per member silo (every member, 0 when it owns none).</summary>
    public IReadOnlyDictionary<string, int> ReplicasPerMember =>
        Members.ToDictionary(m => m.Silo, m => Replicas.Count(r => r.Silo == m.Silo), StringComparer.Ordinal);
}

/// <summary>
/// Reads the cluster's members and leases (read only: it creates nothing). A lease belongs to this cluster when its owner's
/// silo is one of the cluster's members (leases carry no cluster id; silo addresses include the silo's start generation, so
/// they are unique); a failover is a lease take whose previous owner had stopped renewing (<c>leases.takeovers</c>).
/// </summary>
internal static class ClusterStatusReader
{
    public static async Task<ClusterStatusReport> ReadAsync(NpgsqlDataSource dataSource, ClusterSettings settings, CancellationToken cancellationToken)
    {
        try
        {
            await using var conn = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            // One snapshot for the three reads, so members, replicas and failovers agree.
            await using var tx = await conn.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, cancellationToken).ConfigureAwait(false);
            var members = await MembersAsync(conn, tx, settings, cancellationToken).ConfigureAwait(false);
            var replicas = await OwnedAsync(conn, tx, settings.ClusterId, cancellationToken).ConfigureAwait(false);
            var failedOver = await FailedOverAsync(conn, tx, settings.ClusterId, cancellationToken).ConfigureAwait(false);
            await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
            return new ClusterStatusReport(settings.ClusterId, settings.Server, members, replicas, failedOver);
        }
        catch (PostgresException ex) when (ex.SqlState is PostgresErrorCodes.UndefinedTable or PostgresErrorCodes.InvalidSchemaName)
        {
            throw new ClusterException(
                $"--cluster {settings.Server}: no cluster tables in this database ({ex.MessageText}). Point --cluster at the state database your workers use, " +
                $"or start a worker there first ('etlfunnel worker --cluster …' creates schema {ClusterSchema.Schema}).", ex);
        }
        catch (PostgresException ex) when (ex.SqlState is PostgresErrorCodes.InvalidPassword or PostgresErrorCodes.InvalidAuthorizationSpecification or PostgresErrorCodes.InvalidCatalogName)
        {
            throw new ClusterException($"--cluster {settings.Server}: {ex.MessageText}. Fix the user, password or database name in --cluster.", ex);
        }
        catch (NpgsqlException ex) when (ex is not PostgresException)
        {
            throw new ClusterException($"--cluster {settings.Server}: cannot reach the cluster's state database ({ex.Message}). Start that PostgreSQL server or fix --cluster, then try again.", ex);
        }
    }

    private static async Task<List<MemberStatus>> MembersAsync(NpgsqlConnection conn, NpgsqlTransaction tx, ClusterSettings settings, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(
            "SELECT silo, host_name, cores, memory, region, labels::text, started_at, seen_at, left_at, (left_at IS NULL AND seen_at > now() - $2) " +
            "FROM etlfunnel_cluster.members WHERE cluster_id = $1 ORDER BY started_at, silo", conn, tx);
        cmd.Parameters.AddWithValue(settings.ClusterId);
        cmd.Parameters.AddWithValue(settings.MemberTtl);
        var rows = new List<MemberStatus>();
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await r.ReadAsync(ct).ConfigureAwait(false))
        {
            rows.Add(new MemberStatus(r.GetString(0), r.GetString(1), r.GetInt32(2), r.GetInt64(3), r.IsDBNull(4) ? null : r.GetString(4),
                JsonSerializer.Deserialize<Dictionary<string, string>>(r.GetString(5)) ?? [],
                r.GetFieldValue<DateTimeOffset>(6), r.GetFieldValue<DateTimeOffset>(7), r.IsDBNull(8) ? null : r.GetFieldValue<DateTimeOffset>(8), r.GetBoolean(9)));
        }

        return rows;
    }

    // The owner column is "<silo> <grain key>"; its first word is the silo as members.silo spells it.
    private const string OwnerSilo = "split_part(l.owner, ' ', 1)";

    private static async Task<List<OwnedReplica>> OwnedAsync(NpgsqlConnection conn, NpgsqlTransaction tx, string clusterId, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(
            $"SELECT m.silo, l.run_id, l.flow, l.replica, l.epoch, l.taken_at, l.takeovers FROM etlfunnel_cluster.leases l " +
            $"JOIN etlfunnel_cluster.members m ON m.cluster_id = $1 AND m.silo = {OwnerSilo} " +
            "WHERE l.status = 'running' AND l.expires_at > now() ORDER BY m.started_at, m.silo, l.lease_key", conn, tx);
        cmd.Parameters.AddWithValue(clusterId);
        var rows = new List<OwnedReplica>();
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await r.ReadAsync(ct).ConfigureAwait(false))
        {
            rows.Add(new OwnedReplica(r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetInt64(4),
                r.IsDBNull(5) ? null : r.GetFieldValue<DateTimeOffset>(5), r.GetInt32(6)));
        }

        return rows;
    }

    private static async Task<List<FailedOverReplica>> FailedOverAsync(NpgsqlConnection conn, NpgsqlTransaction tx, string clusterId, CancellationToken ct)
    {
        // A taken-over lease always has an owner (the take sets it); one given back afterwards (a clean stop) has none and is
        // matched through the run's other leases' owners.
        await using var cmd = new NpgsqlCommand(
            $"SELECT l.run_id, l.flow, l.replica, l.takeovers, l.status, m.silo FROM etlfunnel_cluster.leases l " +
            $"LEFT JOIN etlfunnel_cluster.members m ON m.cluster_id = $1 AND m.silo = {OwnerSilo} " +
            "WHERE l.takeovers > 0 AND (m.silo IS NOT NULL OR (l.owner IS NULL AND l.run_id IN (" +
            $"    SELECT o.run_id FROM etlfunnel_cluster.leases o JOIN etlfunnel_cluster.members om ON om.cluster_id = $1 AND om.silo = split_part(o.owner, ' ', 1)))) " +
            "ORDER BY l.updated_at, l.lease_key", conn, tx);
        cmd.Parameters.AddWithValue(clusterId);
        var rows = new List<FailedOverReplica>();
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await r.ReadAsync(ct).ConfigureAwait(false))
        {
            rows.Add(new FailedOverReplica(r.GetString(0), r.GetString(1), r.GetString(2), r.GetInt32(3), r.GetString(4), r.IsDBNull(5) ? null : r.GetString(5)));
        }

        return rows;
    }
}
