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
    public async Task A_cdc_run_refuses_a_transformer_that_names_its_tables_instead_of_writing_untransformed_documents()
    {
        var (config, root) = await SetUpAsync("transform_cdc", "cdc");

        var run = await CliRunner.RunAsync(["run", "--config", config, "--hooks", Path.Combine(root, "hooks"), "--until-caught-up"]);

        run.ExitCode.Should().Be(2, run.Out + run.Err);
        run.Err.Should().Contain("transformers (items.csx) apply to shop/").And.Contain("CDC runs do not run transformers yet");
        Directory.Exists(Path.Combine(root, "out")).Should().BeFalse("nothing is written when the run is refused");
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
