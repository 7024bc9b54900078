using Npgsql;

namespace EtlFunnel.Cluster;

/// <summary>Creates the cluster's tables (Orleans membership, members, leases) in the state database: <c>Sql/cluster-schema.sql</c>.</summary>
internal static class ClusterSchema
{
    /// <summary>The schema that holds every cluster table.</summary>
    public const string Schema = "etlfunnel_cluster";

    /// <summary>The leases table, as the checkpoint store's fence names it.</summary>
    public const string LeaseTable = Schema + ".leases";

    /// <summary>The DDL (idempotent), as shipped in the assembly.</summary>
    public static string Sql
    {
        get
        {
            using var stream = typeof(ClusterSchema).Assembly.GetManifestResourceStream("EtlFunnel.Cluster.Sql.cluster-schema.sql")
                ?? throw new InvalidOperationException("cluster-schema.sql is not embedded in EtlFunnel.Cluster");
            using var reader = new StreamReader(stream);
            return reader.ReadToEnd();
        }
    }

    /// <summary>Applies the DDL under an advisory lock (workers starting together do not race); a clear error when the database refuses.</summary>
    public static async Task EnsureAsync(NpgsqlDataSource dataSource, string server, CancellationToken cancellationToken)
    {
        try
        {
            await using var conn = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            await using var tx = await conn.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await using (var lockCmd = new NpgsqlCommand("SELECT pg_advisory_xact_lock(hashtext('etlfunnel.cluster.schema'))", conn, tx))
            {
                await lockCmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }

            await using (var ddl = new NpgsqlCommand(Sql, conn, tx))
            {
                await ddl.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }

            await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.InsufficientPrivilege)
        {
            throw new ClusterException(
                $"{server}: not allowed to create the cluster tables ({ex.MessageText}). Run the DDL of docs/cluster.md (\"What is stored where\") once as a privileged user, " +
                $"or grant CREATE on the database to this user.", ex);
        }
        catch (NpgsqlException ex) when (ex is not PostgresException)
        {
            throw new ClusterException($"{server}: cannot reach the cluster's state database ({ex.Message}). Start that PostgreSQL server or fix the connection, then start again.", ex);
        }
    }
}

/// <summary>The cluster cannot start or run as asked; the message says what to do.</summary>
internal sealed class ClusterException : Exception
{
    public ClusterException(string message)
        : base(message)
    {
    }

    public ClusterException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
