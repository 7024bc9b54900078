using System.Text.Json;
using EtlFunnel.Cli.Tests.Support;
using EtlFunnel.Orchestration.Tests.Support;
using EtlFunnel.Testing.Elasticsearch;
using EtlFunnel.Testing.Postgres;

namespace EtlFunnel.Cli.Tests.Commands;

/// <summary>A small quickstart-like database: a plain table, a partitioned one and one keyed by an explicit composite key.</summary>
public sealed class SmallShopDatabase : IAsyncLifetime
{
    public const int Customers = 3000;
    public const int Events = 1200;
    public const int Notes = 500;

    public string ConnectionString { get; private set; } = "";

    public async Task InitializeAsync()
    {
        var server = await PostgresServer.GetAsync();
        ConnectionString = await server.CreateDatabaseAsync("cli_run");
        await PostgresServer.ExecuteAsync(ConnectionString, $"""
            CREATE SCHEMA shop;
            CREATE TABLE shop.customers (id int PRIMARY KEY, name text NOT NULL, region text NOT NULL);
            INSERT INTO shop.customers SELECT g, 'customer ' || g, (ARRAY['US', 'EU', 'APAC'])[1 + g % 3] FROM generate_series(1, {Customers}) g;
            CREATE TABLE shop.events (id bigint NOT NULL, at date NOT NULL, kind text NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
            CREATE TABLE shop.events_h1 PARTITION OF shop.events FOR VALUES FROM ('2025-01-01') TO ('2025-07-01');
            CREATE TABLE shop.events_h2 PARTITION OF shop.events FOR VALUES FROM ('2025-07-01') TO ('2026-01-01');
            INSERT INTO shop.events SELECT g, date '2025-01-01' + (g % 365), 'kind' || (g % 7) FROM generate_series(1, {Events}) g;
            CREATE TABLE shop.notes (customer_id int NOT NULL, at timestamptz NOT NULL, note text, UNIQUE (customer_id, at));
            INSERT INTO shop.notes SELECT 1 + g % 100, timestamptz '2025-01-01' + g * interval '1 minute', 'note ' || g FROM generate_series(1, {Notes}) g;
            ANALYZE;
            """);
    }

    public Task DisposeAsync() => Task.CompletedTask;
}

[CollectionDefinition(Name)]
public sealed class SmallShopCollection : ICollectionFixture<SmallShopDatabase>
{
    public const string Name = "small shop database";
}

/// <summary><c>etlfunnel run</c> end to end on real PostgreSQL, into files and into the Elasticsearch test server.</summary>
[Collection(SmallShopCollection.Name)]
public sealed class RunCommandTests
{
    private static readonly Dictionary<string, int> RowsPerIndex = new()
    {
        ["shop_customers"] = SmallShopDatabase.Customers,
        ["shop_events"] = SmallShopDatabase.Events,
        ["shop_notes"] = SmallShopDatabase.Notes,
    };

    private readonly SmallShopDatabase _db;
    private readonly string _root = Directory.CreateTempSubdirectory("etlfunnel-run-").FullName;

    public RunCommandTests(SmallShopDatabase db) => _db = db;

    private string Out => Path.Combine(_root, "out");

    private string Config(string destination = "files: ./out") => CliRunner.WriteConfig($"""
        state: {Path.Combine(_root, "state")}
        flows:
          - name: shop
            source: {"{"}postgres: "{_db.ConnectionString}"{"}"}
            destination: {"{"}{destination.Replace("./out", Out, StringComparison.Ordinal)}{"}"}
            pipelines:
              - schema: shop
                table: customers
              - schema: shop
                table: events
              - schema: shop
                table: notes
                key: [customer_id, at]
        """);

    // EU profile: 8 cores, so the seed flow hook makes 8 flow replicas and every table is read in 8 disjoint pieces.
    private Task<CliResult> RunAsync(string config, IReadOnlyDictionary<string, string>? env = null, params string[] extra) =>
        CliRunner.RunAsync(["run", "--config", config, "--machine", CliRunner.Region("eu"), "--hooks", CliRunner.HooksDir, .. extra], SeedHooks.Both(), env);

    [Fact]
    public async Task Run_to_files_writes_every_row_as_exactly_one_document_and_a_json_report()
    {
        var report = Path.Combine(_root, "report.json");
        var result = await RunAsync(Config(), null, "--report", report);

        result.ExitCode.Should().Be(0, result.Err);
        foreach (var (index, rows) in RowsPerIndex)
        {
            var ids = DocumentIds(index);
            ids.Should().HaveCount(rows, $"every row of {index} is one document");
            ids.Should().OnlyHaveUniqueItems();
        }

        using var json = JsonDocument.Parse(await File.ReadAllTextAsync(report));
        json.RootElement.GetProperty("outcome").GetString().Should().Be("succeeded");
        json.RootElement.GetProperty("rowsRead").GetInt64().Should().Be(RowsPerIndex.Values.Sum());
        json.RootElement.GetProperty("replicas").GetArrayLength().Should().Be(24);
        json.RootElement.GetProperty("tables").GetArrayLength().Should().Be(3);
        result.Out.Should().Contain("shop_customers").And.Contain("total").And.Contain("Synced 4700 documents");
    }

    [Fact]
    public async Task A_rerun_after_a_completed_run_rewrites_the_same_documents()
    {
        var config = Config();
        (await RunAsync(config)).ExitCode.Should().Be(0);
        var first = RowsPerIndex.Keys.ToDictionary(i => i, DocumentIds);

        var again = await RunAsync(config);

        again.ExitCode.Should().Be(0, again.Err);
        foreach (var index in RowsPerIndex.Keys)
        {
            DocumentIds(index).Should().BeEquivalentTo(first[index], $"{index} holds each row once after two runs");
        }
    }

    [Fact]
    public async Task Run_into_elasticsearch_indexes_one_document_per_row()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        var result = await RunAsync(Config(), new Dictionary<string, string> { ["ETLFUNNEL_ELASTICSEARCH_URL"] = es.Uri.ToString() });

        result.ExitCode.Should().Be(0, result.Err);
        foreach (var (index, rows) in RowsPerIndex)
        {
            es.Documents(index).Should().HaveCount(rows);
        }

        Directory.Exists(Out).Should().BeFalse("ETLFUNNEL_ELASTICSEARCH_URL replaces the configured files destination");
        result.Err.Should().Contain($"ETLFUNNEL_ELASTICSEARCH_URL={es.Uri} overrides the destination of every flow in").And.NotContain("deprecated");
    }

    [Fact]
    public async Task The_old_ELASTICSEARCH_URL_still_works_with_a_deprecation_warning()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        var result = await RunAsync(Config(), new Dictionary<string, string> { ["ELASTICSEARCH_URL"] = es.Uri.ToString() });

        result.ExitCode.Should().Be(0, result.Err);
        es.Documents(RowsPerIndex.Keys.First()).Should().HaveCount(RowsPerIndex.Values.First());
        result.Err.Should().Contain("ELASTICSEARCH_URL is deprecated; set ETLFUNNEL_ELASTICSEARCH_URL instead");
    }

    [Fact]
    public async Task A_rejected_document_exits_1_and_names_the_dead_letter_file()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        es.Faults.RejectDocuments("17");
        var result = await RunAsync(Config($"elasticsearch: \"{es.Uri}\""));

        result.ExitCode.Should().Be(1);
        var match = System.Text.RegularExpressions.Regex.Match(result.Err, @"the dead letters are in (\S+\.ndjson)");
        match.Success.Should().BeTrue(result.Err);
        var deadLetters = await File.ReadAllLinesAsync(match.Groups[1].Value);
        deadLetters.Should().ContainSingle(l => l.Contains("\"id\":\"17\"", StringComparison.Ordinal));
        es.Documents("shop_customers").Should().HaveCount(SmallShopDatabase.Customers - 1);
    }

    /// <summary>The <c>_id</c>s of every action line under out/&lt;index&gt;/.</summary>
    private List<string> DocumentIds(string index)
    {
        var ids = new List<string>();
        foreach (var file in Directory.GetFiles(Path.Combine(Out, index), "*.ndjson"))
        {
            var lines = File.ReadAllLines(file);
            lines.Length.Should().Be(lines.Length / 2 * 2, "an action line and a source line per document");
            for (var i = 0; i < lines.Length; i += 2)
            {
                using var action = JsonDocument.Parse(lines[i]);
                ids.Add(action.RootElement.GetProperty("index").GetProperty("_id").GetString()!);
                using var source = JsonDocument.Parse(lines[i + 1]);
                source.RootElement.ValueKind.Should().Be(JsonValueKind.Object);
            }
        }

        return ids;
    }
}
