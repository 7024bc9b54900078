using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using EtlFunnel.Destinations;
using EtlFunnel.Sync.Tests.Support;
using EtlFunnel.Testing.Elasticsearch;

namespace EtlFunnel.Sync.Tests.Sinks;

/// <summary>Credentials and TLS of an <see cref="ElasticsearchDestination"/> in the official client, and one client per cluster.</summary>
public sealed class ElasticsearchClientsTests
{
    [Fact]
    public async Task An_api_key_reaches_the_server_as_an_ApiKey_authorization_header_on_every_request()
    {
        await using var bed = await SyncTestBed.CreateAsync("esapikey",
            "CREATE TABLE w(id int PRIMARY KEY, v text); INSERT INTO w SELECT g, 'v' || g FROM generate_series(1, 30) g;");
        await using var es = await ElasticsearchTestServer.StartAsync();
        var destination = new ElasticsearchDestination(es.Uri, ApiKey: "a2V5LWlkOnNlY3JldA==");

        var report = await new SyncEngine().RunAsync(bed.Job("w", 1, 1, destination: destination));

        report.Outcome.Should().Be(SyncOutcome.Succeeded);
        es.Documents("idx").Should().HaveCount(30);
        es.Requests.Should().NotBeEmpty().And.OnlyContain(r => r.Authorization == "ApiKey a2V5LWlkOnNlY3JldA==");
    }

    [Fact]
    public async Task Username_and_password_reach_the_server_as_basic_auth()
    {
        await using var bed = await SyncTestBed.CreateAsync("esbasic",
            "CREATE TABLE w(id int PRIMARY KEY, v text); INSERT INTO w SELECT g, 'v' || g FROM generate_series(1, 10) g;");
        await using var es = await ElasticsearchTestServer.StartAsync();
        var destination = new ElasticsearchDestination(es.Uri, Username: "etl", Password: "p:ss w0rd");

        var report = await new SyncEngine().RunAsync(bed.Job("w", 1, 1, destination: destination));

        report.Outcome.Should().Be(SyncOutcome.Succeeded);
        var expected = "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("etl:p:ss w0rd"));
        es.Requests.Should().NotBeEmpty().And.OnlyContain(r => r.Authorization == expected);
    }

    [Fact]
    public void The_same_cluster_and_credentials_share_one_client_and_other_credentials_get_their_own()
    {
        var uri = new Uri("http://127.0.0.1:9299");

        var first = ElasticsearchClients.For(new ElasticsearchDestination(uri, "k"));

        ElasticsearchClients.For(new ElasticsearchDestination(uri, "k")).Should().BeSameAs(first);
        ElasticsearchSink.CreateClient(new ElasticsearchDestination(uri, "k")).Should().BeSameAs(first, "the sink uses the process's client");
        ElasticsearchClients.For(new ElasticsearchDestination(uri, "other")).Should().NotBeSameAs(first);
        ElasticsearchClients.For(new ElasticsearchDestination(uri, "k") { Compression = false }).Should().NotBeSameAs(first);
    }

    [Fact]
    public void A_fingerprint_is_set_on_the_transport_and_no_custom_validation_is_installed()
    {
        const string fingerprint = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";

        var settings = ElasticsearchClients.Settings(new ElasticsearchDestination(new Uri("https://es.example:9200")) { CertificateFingerprint = fingerprint });

        IElasticsearchClientSettingsView(settings).CertificateFingerprint.Should().Be(fingerprint);
        IElasticsearchClientSettingsView(settings).ServerCertificateValidationCallback.Should().BeNull();
    }

    [Fact]
    public void A_ca_file_installs_a_validation_that_accepts_only_chains_rooted_in_that_ca()
    {
        using var ca = SelfSigned("CN=etl-test-ca");
        using var stranger = SelfSigned("CN=someone-else");
        var path = Path.Combine(Path.GetTempPath(), $"etl-ca-{Guid.NewGuid():N}.pem");
        File.WriteAllText(path, ca.ExportCertificatePem());
        try
        {
            var callback = IElasticsearchClientSettingsView(ElasticsearchClients.Settings(new ElasticsearchDestination(new Uri("https://es.example:9200")) { CaFile = path }))
                .ServerCertificateValidationCallback;

            callback.Should().NotBeNull();
            Accepts(callback!, ca).Should().BeTrue("the server presents the configured CA itself");
            Accepts(callback!, stranger).Should().BeFalse("a certificate of another CA is refused");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_cloud_id_with_credentials_uses_the_clients_cloud_node_pool()
    {
        var cloudId = "prod:" + Convert.ToBase64String("cloud.es.io$abc123$kib"u8.ToArray());

        var settings = ElasticsearchClients.Settings(new ElasticsearchDestination(new Uri("https://abc123.cloud.es.io"), ApiKey: "k") { CloudId = cloudId });

        IElasticsearchClientSettingsView(settings).NodePool.Should().BeOfType<Elastic.Transport.CloudNodePool>();
        IElasticsearchClientSettingsView(settings).NodePool.Nodes.Should().ContainSingle().Which.Uri.Host.Should().Be("abc123.cloud.es.io");
    }

    private static Elastic.Clients.Elasticsearch.IElasticsearchClientSettings IElasticsearchClientSettingsView(Elastic.Clients.Elasticsearch.ElasticsearchClientSettings settings) => settings;

    private static bool Accepts(Func<object, X509Certificate, X509Chain, System.Net.Security.SslPolicyErrors, bool> callback, X509Certificate2 server)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(server);
        chain.Build(server);
        return callback(new object(), server, chain, System.Net.Security.SslPolicyErrors.RemoteCertificateChainErrors);
    }

    private static X509Certificate2 SelfSigned(string subject)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        return request.CreateSelfSigned(DateTimeOffset.UnixEpoch.AddYears(50), DateTimeOffset.UnixEpoch.AddYears(90));
    }
}
