using Npgsql;

namespace EtlFunnel.Cluster;

/// <summary>
/// Where the cluster lives (the state PostgreSQL database) and how fast it reacts. The defaults aim at a dead worker's
/// replicas running again within 20 s: the lease lapses after <see cref="LeaseTtl"/> without renewal, the caller looks every
/// <see cref="PollInterval"/>.
/// </summary>
internal sealed record ClusterSettings(string ConnectionString)
{
    /// <summary>Where the cluster was named, for error messages: <c>--cluster</c>, or <c>flows.yaml(3,10): cluster:</c>.</summary>
    public string ConfiguredAt { get; init; } = "--cluster";

    /// <summary>The server and where it was named (<c>--cluster host:5432/db</c>), as error messages start.</summary>
    public string Described => $"{ConfiguredAt} {Server}";

    /// <summary>The Orleans cluster id (and the key of its membership rows); workers and callers of one cluster share it.</summary>
    public string ClusterId { get; init; } = "etlfunnel";

    /// <summary>How long a replica's lease lasts without renewal; its owner renews every third of it.</summary>
    public TimeSpan LeaseTtl { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How often the caller reads the leases and places waiting replicas (two small queries on the state database); also how
    /// late, at most, it notices the last replica finished.
    /// </summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>A member not seen (heartbeat) for this long gets no new replicas.</summary>
    public TimeSpan MemberTtl { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Orleans membership probe timeout (its default, 5 s, unless set; tests make it short).</summary>
    public TimeSpan? ProbeTimeout { get; init; }

    /// <summary>The connection string Orleans' ADO.NET provider uses: the same database, with the cluster schema first on the search path.</summary>
    public string OrleansConnectionString
    {
        get
        {
            var b = new NpgsqlConnectionStringBuilder(ConnectionString) { SearchPath = ClusterSchema.Schema };
            b.ApplicationName ??= "etlfunnel-cluster";
            return b.ConnectionString;
        }
    }

    /// <summary>The server and database, without credentials.</summary>
    public string Server
    {
        get
        {
            var b = new NpgsqlConnectionStringBuilder(ConnectionString);
            return $"{b.Host}:{b.Port}/{b.Database}";
        }
    }
}
