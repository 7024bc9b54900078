using System.Text.Json;
using System.Text.RegularExpressions;
using EtlFunnel.Testing.Elasticsearch;
using EtlFunnel.Testing.Postgres;

namespace EtlFunnel.Cli.Tests.Commands;

/// <summary><c>etlfunnel watch</c> as a real process with a <c>.csx</c> transformer: applied on every run, and an edit applies without a restart.</summary>
public sealed class TransformerWatchProcessTests
{
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(90);

    private static string Transformer(int version) => $$"""
        string AppliesTo => "shop/public.items";

        void Transform(RowView row, DocumentWriter doc)
        {
            doc.Rename("v", "label");
            doc.Set("transformed_by", {{version}});
        }
        """;

    [Fact]
    public async Task Watch_runs_the_folders_transformer_and_an_edit_applies_to_the_next_run_without_a_restart()
    {
        var cs = await (await PostgresServer.GetAsync()).CreateDatabaseAsync("transform_watch");
        await PostgresServer.ExecuteAsync(cs, "CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 30) g; ANALYZE;");
        await using var es = await ElasticsearchTestServer.StartAsync();
        var root = Directory.CreateTempSubdirectory("etlfunnel-transform-watch-").FullName;
        var hooks = Directory.CreateDirectory(Path.Combine(root, "hooks")).FullName;
        var transformer = Path.Combine(hooks, "items.csx");
        await File.WriteAllTextAsync(transformer, Transformer(1));
        var config = Path.Combine(root, "flows.yaml");
        await File.WriteAllTextAsync(config, $$"""
            state: {{Path.Combine(root, "state")}}
            flows:
              - name: shop
                interval: 1s
                source: {postgres: "{{cs}}"}
                destination: {elasticsearch: "{{es.Uri}}"}
                pipelines:
                  - table: items
            """);

        using var watch = WatchProcess.Start(config, hooks);
        try
        {
            bool AllTransformedBy(int version) => es.Exists("public_items") && es.Documents("public_items") is { Count: 30 } docs && docs.Values.All(json =>
            {
                using var doc = JsonDocument.Parse(json);
                var root = doc.RootElement;
                return !root.TryGetProperty("v", out _) && root.TryGetProperty("label", out _)
                    && root.TryGetProperty("transformed_by", out var by) && by.GetInt32() == version;
            });

            await WatchProcessTests.Eventually(() => Task.FromResult(AllTransformedBy(1)), "every document written by version 1 of the transformer", watch);
            await watch.WaitForLineAsync(new Regex(@"Flow ""?shop""?: transformer items\.csx@\S+ wrote 30 documents"), Guard);

            await File.WriteAllTextAsync(transformer, Transformer(2));
            await WatchProcessTests.Eventually(() => Task.FromResult(AllTransformedBy(2)), "every document rewritten by the edited transformer", watch);

            watch.Terminate();
            (await watch.WaitForExitAsync(Guard)).Should().Be(0, watch.Output);
            JsonDocument.Parse(es.Documents("public_items")["7"]).RootElement.GetProperty("label").GetString().Should().Be("item 7");
        }
        finally
        {
            watch.KillIfRunning();
        }
    }
}
