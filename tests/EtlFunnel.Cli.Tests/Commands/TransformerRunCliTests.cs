using System.Text.Json;
using EtlFunnel.Cli.Tests.Support;
using EtlFunnel.Testing.Postgres;

namespace EtlFunnel.Cli.Tests.Commands;

/// <summary><c>etlfunnel run</c> with a real <c>.csx</c> transformer in the hooks folder, through the real hook host and worker.</summary>
public sealed class TransformerRunCliTests
{
    private const string Transformer = """
        string AppliesTo => "shop/public.items";

        void Transform(RowView row, DocumentWriter doc)
        {
            doc.Rename("v", "label");
            doc.Drop("secret");
            doc.Set("double_id", row.GetInt64("id") * 2);
        }
        """;

    private static async Task<(string Config, string Root)> SetUpAsync(string database, string mode)
    {
        var cs = await (await PostgresServer.GetAsync()).CreateDatabaseAsync(database);
        await PostgresServer.ExecuteAsync(cs, """
            CREATE TABLE items (id int PRIMARY KEY, v text, secret text); INSERT INTO items SELECT g, 'item ' || g, 'pw' FROM generate_series(1, 40) g;
            CREATE TABLE other (id int PRIMARY KEY, v text); INSERT INTO other SELECT g, 'other' FROM generate_series(1, 5) g;
            ANALYZE;
            """);
        var root = Directory.CreateTempSubdirectory("etlfunnel-transform-run-").FullName;
        Directory.CreateDirectory(Path.Combine(root, "hooks"));
        await File.WriteAllTextAsync(Path.Combine(root, "hooks", "items.csx"), Transformer);
        var config = CliRunner.WriteConfig($"""
            state: {Path.Combine(root, "state")}
            flows:
              - name: shop
                mode: {mode}
                source: {"{"}postgres: "{cs}"{"}"}
                destination: {"{"}files: {Path.Combine(root, "out")}{"}"}
                pipelines:
                  - table: items
                  - table: other
            """);
        return (config, root);
    }

    [Fact]
    public async Task Run_applies_the_folders_transformer_to_the_tables_it_names_and_counts_its_documents()
    {
        var (config, root) = await SetUpAsync("transform_run", "full");

        var run = await CliRunner.RunAsync(["run", "--config", config, "--hooks", Path.Combine(root, "hooks")]);

        run.ExitCode.Should().Be(0, run.Err);
        JsonElement[] Documents(string index) => Directory.EnumerateFiles(Path.Combine(root, "out", index), "*.ndjson")
            .SelectMany(File.ReadLines).Where((_, i) => i % 2 == 1).Select(l => JsonDocument.Parse(l).RootElement).ToArray();
        var items = Documents("public_items");
        items.Should().HaveCount(40);
        items.Select(d => d.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal).ToArray())
            .Should().AllSatisfy(names => names.Should().Equal("double_id", "id", "label"));
        items.Select(d => d.GetProperty("double_id").GetInt32()).Should().BeEquivalentTo(Enumerable.Range(1, 40).Select(i => i * 2));
        items.Should().Contain(d => d.GetProperty("label").GetString() == "item 7");
        // The transformer names one table; the other keeps its columns as they are.
        Documents("public_other").Should().HaveCount(5).And.OnlyContain(d => d.GetProperty("v").GetString() == "other");
        run.Out.Should().MatchRegex(@"Transformer items\.csx@\S+: 40 documents");
    }

    [Fact]
    public async Task A_cdc_run_until_caught_up_transforms_the_snapshot_and_the_streamed_inserts_updates_and_deletes()
    {
        var (config, root) = await SetUpAsync("transform_cdc", "cdc");
        var hooks = Path.Combine(root, "hooks");
        try
        {
            var first = await CliRunner.RunAsync(["run", "--config", config, "--hooks", hooks, "--mode", "cdc", "--until-caught-up"]);
            first.ExitCode.Should().Be(0, first.Out + first.Err);
            first.Out.Should().MatchRegex(@"Transformer items\.csx@\S+: 40 documents", "the snapshot went through the transformer");

            await PostgresServer.ExecuteAsync(Source(config), """
                INSERT INTO items VALUES (41, 'item 41', 'pw');
                UPDATE items SET v = 'changed' WHERE id = 2;
                DELETE FROM items WHERE id = 3;
                """);
            var second = await CliRunner.RunAsync(["run", "--config", config, "--hooks", hooks, "--mode", "cdc", "--until-caught-up"]);

            second.ExitCode.Should().Be(0, second.Out + second.Err);
            second.Out.Should().Contain("3 change(s) applied").And.MatchRegex(@"Transformer items\.csx@\S+: 3 documents", "an insert, an update and a delete");
            var items = VersionedDocuments(Path.Combine(root, "out", "public_items"));
            items.Keys.Should().HaveCount(40).And.Contain("41").And.NotContain("3");
            items.Values.Select(d => d.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal).ToArray())
                .Should().AllSatisfy(names => names.Should().Equal("double_id", "id", "label"));
            items["2"].GetProperty("label").GetString().Should().Be("changed");
            items["41"].GetProperty("double_id").GetInt32().Should().Be(82);
            VersionedDocuments(Path.Combine(root, "out", "public_other")).Values.Should().HaveCount(5).And.OnlyContain(d => d.GetProperty("v").GetString() == "other");
        }
        finally
        {
            await PostgresServer.ExecuteAsync(Source(config), "SELECT count(pg_drop_replication_slot(slot_name)) FROM pg_replication_slots WHERE database = current_database() AND NOT active");
        }
    }

    private static string Source(string config) =>
        System.Text.RegularExpressions.Regex.Match(File.ReadAllText(config), "postgres: \"([^\"]+)\"").Groups[1].Value;

    // The live documents of an index folder of versioned actions (snapshot and CDC lane files), as Elasticsearch would apply them.
    private static Dictionary<string, JsonElement> VersionedDocuments(string directory)
    {
        var store = new Dictionary<string, (long Version, JsonElement? Source)>(StringComparer.Ordinal);
        foreach (var file in Directory.EnumerateFiles(directory, "*.ndjson"))
        {
            var lines = File.ReadAllLines(file);
            for (var i = 0; i < lines.Length; i++)
            {
                var (name, meta) = JsonDocument.Parse(lines[i]).RootElement.EnumerateObject().Select(p => (p.Name, p.Value)).Single();
                JsonElement? source = name == "index" ? JsonDocument.Parse(lines[++i]).RootElement : null;
                var id = meta.GetProperty("_id").GetString()!;
                var version = meta.GetProperty("version").GetInt64();
                if (!store.TryGetValue(id, out var stored) || version >= stored.Version)
                {
                    store[id] = (version, source);
                }
            }
        }

        return store.Where(d => d.Value.Source is not null).ToDictionary(d => d.Key, d => d.Value.Source!.Value, StringComparer.Ordinal);
    }

    [Fact]
    public async Task Hooks_test_shows_before_and_after_of_real_rows_and_writes_nothing()
    {
        var (config, root) = await SetUpAsync("transform_preview", "full");

        var json = await CliRunner.RunAsync(["hooks", "test", "--config", config, "--hooks", Path.Combine(root, "hooks"), "--table", "public.items", "--limit", "3", "--format", "json"]);

        json.ExitCode.Should().Be(0, json.Err);
        var rows = JsonDocument.Parse(json.Out).RootElement.EnumerateArray().ToArray();
        rows.Should().HaveCount(3);
        foreach (var row in rows)
        {
            var before = row.GetProperty("before");
            var after = row.GetProperty("after");
            before.GetProperty("secret").GetString().Should().Be("pw");
            after.TryGetProperty("secret", out var _).Should().BeFalse();
            after.GetProperty("label").GetString().Should().Be(before.GetProperty("v").GetString());
            after.GetProperty("double_id").GetInt64().Should().Be(before.GetProperty("id").GetInt64() * 2);
            row.GetProperty("outcome").GetString().Should().Be("written");
        }

        var table = await CliRunner.RunAsync(["hooks", "test", "--config", config, "--hooks", Path.Combine(root, "hooks"), "--table", "items", "--limit", "2"]);
        table.ExitCode.Should().Be(0, table.Err);
        table.Out.Should().Contain("2 row(s) of public.items through items.csx; nothing was written.").And.Contain("\"label\"");
        Directory.Exists(Path.Combine(root, "out")).Should().BeFalse();
        Directory.Exists(Path.Combine(root, "state")).Should().BeFalse();
    }

    [Fact]
    public async Task Hooks_test_exits_1_naming_the_scripts_line_when_a_row_throws_or_when_no_transformer_applies()
    {
        var (config, root) = await SetUpAsync("transform_preview_throw", "full");
        await File.WriteAllTextAsync(Path.Combine(root, "hooks", "items.csx"), """
            string AppliesTo => "shop/public.items";

            void Transform(RowView row, DocumentWriter doc)
            {
                if (row.GetInt64("id") == 2) throw new InvalidOperationException("no item two");
            }
            """);

        var result = await CliRunner.RunAsync(["hooks", "test", "--config", config, "--hooks", Path.Combine(root, "hooks"), "--table", "public.items", "--limit", "3"]);

        result.ExitCode.Should().Be(1, result.Out + result.Err);
        result.Out.Should().MatchRegex(@"items\.csx\(5,\d+\)").And.Contain("no item two");

        var none = await CliRunner.RunAsync(["hooks", "test", "--config", config, "--hooks", Path.Combine(root, "hooks"), "--table", "public.other"]);
        none.ExitCode.Should().Be(1);
        none.Err.Should().Contain("no transformer in").And.Contain("applies to shop/public.other").And.Contain("items.csx applies to shop/public.items");
    }
}
