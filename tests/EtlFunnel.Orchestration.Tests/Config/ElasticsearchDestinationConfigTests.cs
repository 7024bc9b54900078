using EtlFunnel.Orchestration.Config;

namespace EtlFunnel.Orchestration.Tests.Config;

/// <summary>The mapping form of <c>destination: {elasticsearch: {...}}</c>: credentials, TLS trust and cloud ids, with file(line,col) errors.</summary>
public sealed class ElasticsearchDestinationConfigTests : IDisposable
{
    private const string Fingerprint = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";
    private static readonly Dictionary<string, string> Env = new() { ["ES_API_KEY"] = "c2VjcmV0LWtleQ==", ["ES_PASSWORD"] = "hunter2" };
    private readonly string _dir = Directory.CreateTempSubdirectory("etl-es-config-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private EtlConfig Parse(string elasticsearch) => ConfigLoader.Parse(
        "flows:\n  - name: f\n    source: {postgres: \"Host=h;Database=d\"}\n    destination:\n      elasticsearch:\n" + elasticsearch + "    pipelines: [{schema: public}]\n",
        "flows.yaml", _dir, n => Env.GetValueOrDefault(n));

    private string Error(string elasticsearch)
    {
        var act = () => Parse(elasticsearch);
        return act.Should().Throw<ConfigException>().Which.Message;
    }

    [Fact]
    public void Url_with_api_key_and_fingerprint_loads_and_the_target_stays_the_bare_url()
    {
        var destination = Parse($"        url: https://es.example:9200\n        api_key: ${{ES_API_KEY}}\n        fingerprint: \"{Fingerprint}\"\n").Flows[0].Destination;

        destination.Kind.Should().Be(DestinationKind.Elasticsearch);
        destination.Target.Should().Be("https://es.example:9200");
        destination.Location.Should().Be(new ConfigLocation("flows.yaml", 6, 14));
        destination.Elasticsearch.Should().Be(new ElasticsearchSecurityConfig { ApiKey = "c2VjcmV0LWtleQ==", Fingerprint = Fingerprint });
    }

    [Fact]
    public void Username_password_and_a_ca_file_relative_to_the_config_load()
    {
        File.WriteAllText(Path.Combine(_dir, "ca.pem"), "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n");

        var security = Parse("        url: https://es.example:9200\n        username: etl\n        password: ${ES_PASSWORD}\n        ca_file: ./ca.pem\n").Flows[0].Destination.Elasticsearch!;

        security.Username.Should().Be("etl");
        security.Password.Should().Be("hunter2");
        security.CaFile.Should().Be(Path.Combine(_dir, "ca.pem"));
    }

    [Fact]
    public void A_cloud_id_decodes_to_the_deployments_https_url()
    {
        var cloudId = "prod:" + Convert.ToBase64String("europe-west1.gcp.cloud.es.io:443$abc123$kib456"u8.ToArray());

        var destination = Parse($"        cloud_id: \"{cloudId}\"\n        api_key: k\n").Flows[0].Destination;

        destination.Target.Should().Be("https://abc123.europe-west1.gcp.cloud.es.io", "443 is https's default port");
        destination.Elasticsearch!.CloudId.Should().Be(cloudId);
    }

    [Fact]
    public void Secrets_never_appear_in_the_configs_text_form()
    {
        var config = Parse("        url: https://es.example:9200\n        username: etl\n        password: ${ES_PASSWORD}\n");
        var withKey = Parse("        url: https://es.example:9200\n        api_key: ${ES_API_KEY}\n");

        config.Flows[0].Destination.ToString().Should().NotContain("hunter2").And.Contain("password: ***").And.Contain("username: etl");
        withKey.Flows[0].Destination.ToString().Should().NotContain("c2VjcmV0LWtleQ==").And.Contain("api_key: ***");
        var sync = ElasticsearchDestinations.From(config.Flows[0].Destination);
        sync.Password.Should().Be("hunter2");
        sync.ToString().Should().NotContain("hunter2");
        ElasticsearchDestinations.From(withKey.Flows[0].Destination).ToString().Should().NotContain("c2VjcmV0LWtleQ==");
    }

    [Fact]
    public void The_url_override_keeps_the_credentials_and_replaces_a_cloud_id()
    {
        var cloudId = "prod:" + Convert.ToBase64String("cloud.es.io$abc$kib"u8.ToArray());
        var config = Parse($"        cloud_id: \"{cloudId}\"\n        api_key: ${{ES_API_KEY}}\n");

        var (overridden, notices, _) = DestinationOverride.Apply(config, n => n == DestinationOverride.Variable ? "http://127.0.0.1:9201" : null);

        var destination = overridden.Flows[0].Destination;
        destination.Target.Should().Be("http://127.0.0.1:9201");
        destination.Elasticsearch.Should().Be(new ElasticsearchSecurityConfig { ApiKey = "c2VjcmV0LWtleQ==" });
        notices.Should().ContainSingle().Which.Should().NotContain("c2VjcmV0LWtleQ==");
    }

    [Fact]
    public void Url_and_cloud_id_together_is_an_error_at_the_cloud_id()
    {
        Error("        url: https://es.example:9200\n        cloud_id: \"x:eA==\"\n")
            .Should().StartWith("flows.yaml(7,9): ").And.Contain("exactly one of 'url:'").And.Contain("remove one");
    }

    [Fact]
    public void Neither_url_nor_cloud_id_is_an_error_at_the_mapping()
    {
        Error("        api_key: k\n").Should().StartWith("flows.yaml(6,9): ").And.Contain("needs exactly one of 'url:'");
    }

    [Fact]
    public void Api_key_with_basic_auth_is_an_error_at_the_basic_auth_key()
    {
        Error("        url: https://es.example:9200\n        api_key: k\n        username: etl\n")
            .Should().StartWith("flows.yaml(8,9): ").And.Contain("either 'api_key:' or 'username:' + 'password:'");
    }

    [Fact]
    public void A_password_without_a_username_is_an_error_at_the_password()
    {
        Error("        url: https://es.example:9200\n        password: p\n")
            .Should().StartWith("flows.yaml(7,9): ").And.Contain("'password:' without 'username:'");
    }

    [Fact]
    public void A_missing_ca_file_is_an_error_naming_the_resolved_path()
    {
        Error("        url: https://es.example:9200\n        ca_file: certs/ca.pem\n")
            .Should().StartWith("flows.yaml(7,18): ").And.Contain(Path.Combine(_dir, "certs", "ca.pem")).And.Contain("does not exist");
    }

    [Theory]
    [InlineData("AB:CD")]
    [InlineData("not-a-fingerprint")]
    [InlineData("AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:8Z")]
    public void A_malformed_fingerprint_is_an_error_at_the_value(string fingerprint)
    {
        Error($"        url: https://es.example:9200\n        fingerprint: \"{fingerprint}\"\n")
            .Should().StartWith("flows.yaml(7,22): ").And.Contain("is not a SHA-256 fingerprint");
    }

    [Fact]
    public void A_malformed_cloud_id_is_an_error_at_the_value()
    {
        Error("        cloud_id: \"no-colon-here\"\n").Should().StartWith("flows.yaml(6,19): ").And.Contain("copy it unchanged");
    }

    [Fact]
    public void Credentials_in_the_url_of_the_mapping_form_are_an_error()
    {
        Error("        url: https://etl:pw@es.example:9200\n").Should().StartWith("flows.yaml(6,14): ").And.Contain("'username:' and 'password:'");
    }
}
