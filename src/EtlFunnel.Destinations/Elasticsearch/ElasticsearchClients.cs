using System.Collections.Concurrent;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Elastic.Clients.Elasticsearch;
using Elastic.Transport;

namespace EtlFunnel.Destinations;

/// <summary>
/// One long-lived official client per cluster (same URL, credentials, TLS and compression) for the whole process, shared by the
/// bulk sink and the planner's discovery, so connections and sniffed state are reused instead of rebuilt per sink or engine.
/// </summary>
public static class ElasticsearchClients
{
    private static readonly ConcurrentDictionary<ElasticsearchDestination, Lazy<ElasticsearchClient>> Clients = new();

    /// <summary>How long one request may take (bulk requests of tens of MB included); discovery bounds its own calls tighter.</summary>
    public static readonly TimeSpan RequestTimeout = TimeSpan.FromMinutes(2);

    /// <summary>The process's client for <paramref name="destination"/>, created on first use.</summary>
    public static ElasticsearchClient For(ElasticsearchDestination destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        return Clients.GetOrAdd(destination, d => new Lazy<ElasticsearchClient>(() => new ElasticsearchClient(Settings(d)))).Value;
    }

    /// <summary>The official client's settings for a destination: credentials, CA file or fingerprint, cloud id, compression.</summary>
    internal static ElasticsearchClientSettings Settings(ElasticsearchDestination destination)
    {
        AuthorizationHeader? auth = destination.ApiKey is { } key
            ? new ApiKey(key)
            : destination.Username is { } user ? new BasicAuthentication(user, destination.Password ?? "") : null;
        var settings = destination.CloudId is { } cloudId && auth is not null
            ? new ElasticsearchClientSettings(cloudId, auth)
            : new ElasticsearchClientSettings(destination.Uri);
        settings = settings.RequestTimeout(RequestTimeout).EnableHttpCompression(destination.Compression);
        if (auth is not null)
        {
            settings = settings.Authentication(auth);
        }

        if (destination.CertificateFingerprint is { } fingerprint)
        {
            settings = settings.CertificateFingerprint(fingerprint);
        }

        if (destination.CaFile is { } caFile)
        {
            // A private CA: the server's chain must end in this certificate (the system store is not consulted for it).
            var ca = X509CertificateLoader.LoadCertificateFromFile(caFile);
            settings = settings.ServerCertificateValidationCallback((_, certificate, chain, errors) => ChainsToCa(ca, certificate, chain, errors));
        }

        return settings;
    }

    /// <summary>Accepts a server certificate whose chain ends in <paramref name="ca"/>; a host-name mismatch or no certificate is still refused.</summary>
    internal static bool ChainsToCa(X509Certificate2 ca, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (certificate is null || (errors & ~SslPolicyErrors.RemoteCertificateChainErrors) != SslPolicyErrors.None)
        {
            return false;
        }

        using var server = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        using var custom = new X509Chain();
        custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        custom.ChainPolicy.CustomTrustStore.Add(ca);
        if (chain is not null)
        {
            foreach (var element in chain.ChainElements)
            {
                custom.ChainPolicy.ExtraStore.Add(element.Certificate); // intermediates the server sent
            }
        }

        return custom.Build(server);
    }
}
