using System.Text.Json;
using EtlFunnel.Execution.Models;
using Npgsql;
using NpgsqlTypes;

namespace EtlFunnel.Cluster.Members;

/// <summary>A worker as it announced itself: its silo, its machine and the hooks it runs.</summary>
internal sealed record Member(string Silo, MachineInfo Machine, string HooksHash);

/// <summary>The <c>etlfunnel_cluster.members</c> table: each worker writes its row when its silo starts and refreshes <c>seen_at</c>.</summary>
internal sealed class MemberRegistry(NpgsqlDataSource dataSource, string clusterId)
{
    /// <summary>Writes (or refreshes) a member's row.</summary>
    public async Task AnnounceAsync(Member member, CancellationToken ct)
    {
        await using var cmd = dataSource.CreateCommand(
            "INSERT INTO etlfunnel_cluster.members (cluster_id, silo, host_name, cores, memory, region, labels, hooks_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) " +
            "ON CONFLICT (cluster_id, silo) DO UPDATE SET host_name = EXCLUDED.host_name, cores = EXCLUDED.cores, memory = EXCLUDED.memory, region = EXCLUDED.region, " +
            "labels = EXCLUDED.labels, hooks_hash = EXCLUDED.hooks_hash, seen_at = now(), left_at = NULL");
        cmd.Parameters.AddWithValue(clusterId);
        cmd.Parameters.AddWithValue(member.Silo);
        cmd.Parameters.AddWithValue(member.Machine.HostName);
        cmd.Parameters.AddWithValue(member.Machine.LogicalCores);
        cmd.Parameters.AddWithValue(member.Machine.TotalMemoryBytes);
        cmd.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Text, Value = (object?)member.Machine.Region ?? DBNull.Value });
        cmd.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Jsonb, Value = JsonSerializer.Serialize(member.Machine.Labels) });
        cmd.Parameters.AddWithValue(member.HooksHash);
        await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Refreshes <c>seen_at</c>; false when the row is gone.</summary>
    public async Task<bool> HeartbeatAsync(string silo, CancellationToken ct)
    {
        await using var cmd = dataSource.CreateCommand("UPDATE etlfunnel_cluster.members SET seen_at = now() WHERE cluster_id = $1 AND silo = $2");
        cmd.Parameters.AddWithValue(clusterId);
        cmd.Parameters.AddWithValue(silo);
        return await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false) == 1;
    }

    /// <summary>Marks a member gone (a clean shutdown): it gets no new replicas.</summary>
    public async Task LeaveAsync(string silo, CancellationToken ct)
    {
        await using var cmd = dataSource.CreateCommand("UPDATE etlfunnel_cluster.members SET left_at = now() WHERE cluster_id = $1 AND silo = $2");
        cmd.Parameters.AddWithValue(clusterId);
        cmd.Parameters.AddWithValue(silo);
        await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

    /// <summary>The members seen within <paramref name="ttl"/> that have not left, oldest first.</summary>
    public async Task<IReadOnlyList<Member>> LiveAsync(TimeSpan ttl, CancellationToken ct)
    {
        await using var cmd = dataSource.CreateCommand(
            "SELECT silo, host_name, cores, memory, region, labels::text, hooks_hash FROM etlfunnel_cluster.members " +
            "WHERE cluster_id = $1 AND left_at IS NULL AND seen_at > now() - $2 ORDER BY started_at, silo");
        cmd.Parameters.AddWithValue(clusterId);
        cmd.Parameters.AddWithValue(ttl);
        var members = new List<Member>();
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await r.ReadAsync(ct).ConfigureAwait(false))
        {
            members.Add(new Member(r.GetString(0), new MachineInfo
            {
                HostName = r.GetString(1),
                LogicalCores = r.GetInt32(2),
                TotalMemoryBytes = r.GetInt64(3),
                Region = r.IsDBNull(4) ? null : r.GetString(4),
                Labels = JsonSerializer.Deserialize<Dictionary<string, string>>(r.GetString(5)) ?? [],
            }, r.GetString(6)));
        }

        return members;
    }
}
