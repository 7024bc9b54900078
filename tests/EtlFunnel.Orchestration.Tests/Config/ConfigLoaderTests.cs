using EtlFunnel.Orchestration.Config;

namespace EtlFunnel.Orchestration.Tests.Config;

public sealed class ConfigLoaderTests
{
    private static readonly Dictionary<string, string> Env = new() { ["PG_PASSWORD"] = "s3cret" };

    private static EtlConfig Parse(string yaml) => ConfigLoader.Parse(yaml, "flows.yaml", "/etc/etl", n => Env.GetValueOrDefault(n));

    private static string Error(string yaml)
    {
        var act = () => Parse(yaml);
        return act.Should().Throw<ConfigException>().Which.Message;
    }

    [Fact]
    public void A_full_config_loads_with_every_key()
    {
        var config = Parse("""
            hooks: ./hooks
            state: ./state
            limits: {max_flow_replicas: 64, max_pipeline_replicas: 256}
            flows:
              - name: catalog
                max_replicas: 8
                source:
                  postgres: "Host=127.0.0.1;Port=5432;Username=app;Password=${PG_PASSWORD};Database=shop"
                destination:
                  elasticsearch: "http://127.0.0.1:9200"
                auxiliary:
                  lookup: "Host=10.0.0.1;Database=ref"
                pipelines:
                  - schema: "tenant_*"
                    table: "*"
                    index: "{schema}_{table}"
                  - table: events
                    key: [tenant, id]
                    incremental: updated_at
                    exact_counts: true
              - name: archive
                source: {postgres: "Host=h;Database=d"}
                destination: {files: ./out}
                pipelines: [{schema: public}]
            """);

        config.HooksDirectory.Should().Be("/etc/etl/hooks");
        config.StateDirectory.Should().Be("/etc/etl/state");
        config.Limits.Should().Be(new PlanLimits { MaxFlowReplicas = 64, MaxPipelineReplicas = 256 });
        var catalog = config.Flows[0];
        catalog.SourceConnectionString.Should().Contain("Password=s3cret");
        catalog.MaxReplicas.Should().Be(8);
        catalog.Destination.Should().Be(new DestinationConfig(DestinationKind.Elasticsearch, "http://127.0.0.1:9200", new ConfigLocation("flows.yaml", 10, 22)));
        catalog.Auxiliary.Should().ContainKey("lookup");
        catalog.Pipelines[0].Schema.Should().Be("tenant_*");
        catalog.Pipelines[1].Should().BeEquivalentTo(new { Schema = "public", Table = "events", Index = "{schema}_{table}", Incremental = "updated_at", ExactCounts = true });
        catalog.Pipelines[1].Key.Should().Equal("tenant", "id");
        config.Flows[1].Destination.Kind.Should().Be(DestinationKind.Files);
        config.Flows[1].Destination.Target.Should().Be("/etc/etl/out");
    }

    [Fact]
    public void An_unknown_key_names_its_line_and_suggests_the_right_one() =>
        Error("""
            flows:
              - name: a
                source: {postgres: "Host=h;Database=d"}
                destination: {files: out}
                pipelines:
                  - schema: public
                    tabel: orders
            """).Should().StartWith("flows.yaml(7,9): unknown key 'tabel' in a pipeline of flow 'a' (did you mean 'table'?)");

    [Fact]
    public void A_missing_environment_variable_names_the_line_and_the_variable() =>
        Error("""
            flows:
              - name: a
                source:
                  postgres: "Host=h;Password=${NOT_SET_ANYWHERE};Database=d"
                destination: {files: out}
                pipelines: [{schema: public}]
            """).Should().Be("flows.yaml(4,17): environment variable 'NOT_SET_ANYWHERE' (used in the source of flow 'a') is not set; set it, or write $${NOT_SET_ANYWHERE} for a literal '${NOT_SET_ANYWHERE}'");

    [Fact]
    public void A_doubled_dollar_keeps_a_literal_placeholder()
    {
        var config = Parse("""
            flows:
              - name: a
                source: {postgres: "Host=h;Database=d;Application Name=$${X}"}
                destination: {files: out}
                pipelines: [{schema: public}]
            """);
        config.Flows[0].SourceConnectionString.Should().EndWith("Application Name=${X}");
    }

    [Theory]
    [InlineData("flows: []", "flows.yaml(1,8): 'flows:' is empty")]
    [InlineData("flows:\n  - name: a\n    source: {postgres: \"Host=h\"}\n    destination: {files: out}\n    pipelines:\n      - {table: t, incremental_margin: 5m}",
        "flows.yaml(6,40): 'incremental_margin:' in a pipeline of flow 'a' needs 'incremental: <column>' in the same entry")]
    [InlineData("flows:\n  - name: a\n    source: {postgres: \"Host=h\"}\n    destination: {files: out}\n    pipelines:\n      - {table: t, incremental: at, incremental_margin: 5 minutes}",
        "flows.yaml(6,57): incremental_margin '5 minutes' is neither a duration nor a number")]
    [InlineData("hooks: x", "flows.yaml(1,1): the config file has no 'flows:' list")]
    [InlineData("flows:\n  - source: {postgres: \"Host=h\"}", "flows.yaml(2,5): this flow has no 'name:'")]
    [InlineData("flows:\n  - name: a b", "flows.yaml(2,11): flow name 'a b' may only contain")]
    [InlineData("flows:\n  - name: a\n    destination: {files: x}\n    pipelines: [{}]", "flows.yaml(2,5): flow 'a' has no 'source:'")]
    [InlineData("flows:\n  - name: a\n    source: {postgres: \"Host=h\"}\n    pipelines: [{}]", "flows.yaml(2,5): flow 'a' has no 'destination:'")]
    [InlineData("flows:\n  - name: a\n    source: {postgres: \"Host=h\"}\n    destination: {files: x, elasticsearch: \"http://e\"}\n    pipelines: [{}]", "flows.yaml(4,18): the destination of flow 'a' needs exactly one of")]
    [InlineData("flows:\n  - name: a\n    source: {postgres: \"Host=h\"}\n    destination: {elasticsearch: \"not a url\"}\n    pipelines: [{}]", "flows.yaml(4,34): 'not a url' is not an http(s) URL")]
    [InlineData("flows:\n  - name: a\n    source: {postgres: \"Host=h\"}\n    destination: {elasticsearch: \"http://e\", compression: off}\n    pipelines: [{}]", "flows.yaml(4,59): 'compression:' of flow 'a' must be true or false, not 'off'; write 'compression: false'")]
    [InlineData("flows:\n  - name: a\n    source: {postgres: \"Host=h\"}\n    destination: {elasticsearch: \"http://e\", compression: [gzip]}\n    pipelines: [{}]", "flows.yaml(4,59): 'compression:' of flow 'a' must be a single value")]
    [InlineData("flows:\n  - name: a\n    source: {postgres: \"Host=h\"}\n    destination: {files: x, compression: false}\n    pipelines: [{}]", "flows.yaml(4,29): 'compression:' of flow 'a' only applies to an 'elasticsearch:' destination (files are written uncompressed); remove it")]
    [InlineData("flows:\n  - name: a\n    source: {postgres: \"Host=h\"}\n    destination: {compression: false}\n    pipelines: [{}]", "flows.yaml(4,18): the destination of flow 'a' needs exactly one of")]
    [InlineData("flows:\n  - name: a\n    source: {postgres: \"Host=h\"}\n    destination: {elasticsearch: \"http://e\", compresion: false}\n    pipelines: [{}]", "flows.yaml(4,46): unknown key 'compresion' in the destination of flow 'a' (did you mean 'compression'?)")]
    [InlineData("flows:\n  - name: a\n    source: {postgres: \"Nonsense Key=1\"}\n    destination: {files: x}\n    pipelines: [{}]", "flows.yaml(3,24): the source of flow 'a' is not a valid Npgsql connection string")]
    [InlineData("flows:\n  - name: a\n    source: {postgres: \"Host=h\"}\n    destination: {files: x}", "flows.yaml(2,5): flow 'a' has no 'pipelines:'")]
    [InlineData("flows:\n  - name: a\n    source: {postgres: \"Host=h\"}\n    destination: {files: x}\n    pipelines: [{index: \"{tabel}\"}]", "flows.yaml(5,25): unknown placeholder '{tabel}'")]
    [InlineData("flows:\n  - name: a\n    source: {postgres: \"Host=h\"}\n    destination: {files: x}\n    pipelines: [{exact_counts: maybe}]", "flows.yaml(5,32): exact_counts must be true or false, not 'maybe'")]
    [InlineData("flows:\n  - name: a\n    max_replicas: -3\n    source: {postgres: \"Host=h\"}\n    destination: {files: x}\n    pipelines: [{}]", "flows.yaml(3,19): max_replicas of flow 'a' must be a positive whole number, not '-3'")]
    [InlineData("limits: {max_flow_replicas: lots}\nflows: []", "flows.yaml(1,29): limits.max_flow_replicas must be a positive whole number")]
    [InlineData("flows:\n  - name: a\n    source: {postgres: \"Host=h\"}\n    destination: {files: x}\n    pipelines: [{}]\n  - name: a\n    source: {postgres: \"Host=h\"}\n    destination: {files: x}\n    pipelines: [{}]", "flows.yaml(6,5): flow name 'a' is already used at flows.yaml(2,5)")]
    [InlineData("flows:\n  - name: a\n   bad: [", "flows.yaml(")]
    public void Bad_values_are_errors_that_name_the_line(string yaml, string expectedStart) =>
        Error(yaml).Should().StartWith(expectedStart);

    [Fact]
    public void Elasticsearch_compression_defaults_to_on_and_can_be_turned_off()
    {
        var config = Parse("""
            flows:
              - name: lan
                source: {postgres: "Host=h;Database=d"}
                destination: {elasticsearch: "http://10.0.0.5:9200", compression: false}
                pipelines: [{schema: public}]
              - name: wan
                source: {postgres: "Host=h;Database=d"}
                destination:
                  elasticsearch: "https://es.example.com:9200"
                  compression: true
                pipelines: [{schema: public}]
              - name: default
                source: {postgres: "Host=h;Database=d"}
                destination: {elasticsearch: "http://10.0.0.5:9200"}
                pipelines: [{schema: public}]
            """);

        config.Flows.Select(f => (f.Name, f.Destination.Compression)).Should().Equal(("lan", false), ("wan", true), ("default", true));
        config.Flows[0].Destination.Should().Be(
            new DestinationConfig(DestinationKind.Elasticsearch, "http://10.0.0.5:9200", new ConfigLocation("flows.yaml", 4, 34)) { Compression = false });
    }

    [Fact]
    public async Task A_missing_file_is_a_config_error_naming_it()
    {
        var act = () => ConfigLoader.LoadAsync("/nonexistent/flows.yaml");
        (await act.Should().ThrowAsync<ConfigException>()).Which.Message.Should().StartWith("/nonexistent/flows.yaml: cannot read the config file");
    }
}
