using EtlFunnel.Destinations;

namespace EtlFunnel.Orchestration.Config;

/// <summary>Maps an Elasticsearch <see cref="DestinationConfig"/> onto the engine's <see cref="ElasticsearchDestination"/> (the key of its shared client).</summary>
public static class ElasticsearchDestinations
{
    /// <summary>The destination with its credentials and TLS; <c>http://user:password@host</c> becomes basic auth on the bare URL.</summary>
    public static ElasticsearchDestination From(DestinationConfig destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        var uri = new Uri(destination.Target);
        ElasticsearchDestination result;
        if (destination.Elasticsearch is { } s)
        {
            result = new ElasticsearchDestination(uri, s.ApiKey, s.Username, s.Password) { CloudId = s.CloudId, CaFile = s.CaFile, CertificateFingerprint = s.Fingerprint };
        }
        else if (string.IsNullOrEmpty(uri.UserInfo))
        {
            result = new ElasticsearchDestination(uri);
        }
        else
        {
            var parts = uri.UserInfo.Split(':', 2);
            var bare = new UriBuilder(uri) { UserName = "", Password = "" }.Uri;
            result = new ElasticsearchDestination(bare, null, Uri.UnescapeDataString(parts[0]), parts.Length > 1 ? Uri.UnescapeDataString(parts[1]) : null);
        }

        return result with { Compression = destination.Compression };
    }
}
