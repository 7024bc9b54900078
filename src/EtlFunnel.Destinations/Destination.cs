namespace EtlFunnel.Destinations;

/// <summary>Where a flow's documents go.</summary>
public abstract record SyncDestination;

/// <summary>An Elasticsearch cluster reached through the official client.</summary>
/// <param name="Uri">Cluster address, e.g. <c>http://localhost:9200</c>.</param>
/// <param name="ApiKey">Optional API key (sent as <c>Authorization: ApiKey ...</c>).</param>
/// <param name="Username">Optional basic-auth user.</param>
/// <param name="Password">Optional basic-auth password.</param>
public sealed record ElasticsearchDestination(Uri Uri, string? ApiKey = null, string? Username = null, string? Password = null) : SyncDestination
{
    /// <summary>Gzip request bodies and accept gzipped responses (the client's default); false trades bandwidth for less CPU on both sides.</summary>
    public bool Compression { get; init; } = true;

    /// <summary>Elastic Cloud id the client connects through (its <see cref="Uri"/> is the URL it decodes to), or null.</summary>
    public string? CloudId { get; init; }

    /// <summary>A PEM or DER CA certificate the server's certificate must chain to (a private CA), or null for the system trust store.</summary>
    public string? CaFile { get; init; }

    /// <summary>SHA-256 fingerprint of the CA certificate the server's chain must contain, or null.</summary>
    public string? CertificateFingerprint { get; init; }

    /// <summary>Shows the cluster and which credentials are set, never their values.</summary>
    protected override bool PrintMembers(System.Text.StringBuilder builder)
    {
        builder.Append("Uri = ").Append(Uri).Append(", Compression = ").Append(Compression);
        builder.Append(", ApiKey = ").Append(ApiKey is null ? "null" : "***");
        builder.Append(", Username = ").Append(Username ?? "null");
        builder.Append(", Password = ").Append(Password is null ? "null" : "***");
        builder.Append(", CloudId = ").Append(CloudId is null ? "null" : "set");
        builder.Append(", CaFile = ").Append(CaFile ?? "null");
        builder.Append(", CertificateFingerprint = ").Append(CertificateFingerprint ?? "null");
        return true;
    }
}

/// <summary>Bulk-ready NDJSON files: <c>&lt;Directory&gt;/&lt;index&gt;/&lt;flow&gt;.&lt;replica&gt;.ndjson</c>, loadable with <c>curl --data-binary</c>.</summary>
/// <param name="Directory">Root folder of the output.</param>
public sealed record FilesDestination(string Directory) : SyncDestination;

/// <summary>How a bulk sink retries retryable failures (429, 502, 503, 504, dropped connections): the run's settings, handed in by the engine.</summary>
/// <param name="MaxBulkRetries">Attempts per bulk request before the replica fails.</param>
/// <param name="RetryBaseDelay">First backoff delay; doubles on each attempt, with jitter.</param>
/// <param name="TimeProvider">Clock the backoff waits on.</param>
public sealed record BulkRetryOptions(int MaxBulkRetries, TimeSpan RetryBaseDelay, TimeProvider TimeProvider);
