namespace EtlFunnel.Testing.Elasticsearch;

/// <summary>Start-up settings of an <see cref="ElasticsearchTestServer"/>.</summary>
public sealed class ElasticsearchTestServerOptions
{
    /// <summary>Version number reported by <c>GET /</c>; must be 9.x for the 9.x client.</summary>
    public string VersionNumber { get; init; } = "9.5.0";

    /// <summary>Cluster name reported by <c>GET /</c>.</summary>
    public string ClusterName { get; init; } = "etlfunnel-test";

    /// <summary>Seed of the random source behind share-based faults and generated ids, so a run repeats exactly.</summary>
    public int Seed { get; init; } = 20260101;

    /// <summary>
    /// When true, <c>_search</c> and <c>_count</c> see only what the last refresh (explicit, or <c>?refresh=true</c>)
    /// made visible, as a real cluster does between refreshes; <c>GET _doc</c> stays real-time. When false (default)
    /// every write is visible at once.
    /// </summary>
    public bool SearchRequiresRefresh { get; init; }

    /// <summary>Largest request body accepted, in bytes (Elasticsearch's <c>http.max_content_length</c> defaults to 100 MB).</summary>
    public long MaxRequestBodyBytes { get; init; } = 100L * 1024 * 1024;
}
