using System.Text.Json;
using EtlFunnel.Destinations;
using EtlFunnel.Runtime.Hooks;
using EtlFunnel.Scripting;
using EtlFunnel.Sync.Cdc;
using EtlFunnel.Sync.Tests.Support;
using EtlFunnel.Sync.Transforming;
using EtlFunnel.Testing.Elasticsearch;

namespace EtlFunnel.Sync.Tests.Cdc;

/// <summary>Real .csx transformers (through the hook host and its worker) in CDC runs: the snapshot and the streamed changes, on real PostgreSQL.</summary>
[Collection("cdc")]
public sealed class CdcTransformerTests
{
    private const string Items = """
        CREATE TABLE items(id int PRIMARY KEY, name text, secret text);
        INSERT INTO items SELECT g, 'n' || g, 's' || g FROM generate_series(1, 20) g;
        """;

    // Routes and re-keys by the key only, so a delete (which carries the key columns) goes where the row's upserts went.
    private const string Shaping = """
        string AppliesTo => "flow_*/public.items";

        void Transform(RowView row, DocumentWriter doc)
        {
            var id = row.GetInt64("id");
            if (id == 13) throw new InvalidOperationException("unlucky " + row.Id);
            if (id == 7) { doc.Skip(); return; }
            doc.Id = "item-" + row.Id;
            if (id % 2 == 0) doc.Index = "items_even";
            if (row.Operation == RowOperation.Upsert)
            {
                doc.Rename("name", "title");
                doc.Drop("secret");
            }
        }
        """;

    private static async Task<(HookHost Host, string Folder)> HooksAsync(string script)
    {
        var folder = Path.Combine(Path.GetTempPath(), "etlfunnel-cdcx-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        await File.WriteAllTextAsync(Path.Combine(folder, "items.csx"), script);
        var host = await HookHost.LoadAsync(new HookHostOptions { HooksDirectory = folder, CacheDirectory = folder + "-cache" });
        host.Diagnostics.Where(d => d.Severity == "error").Should().BeEmpty();
        return (host, folder);
    }

    private static SyncJob WithTransformers(SyncJob job, HookHost host, TransformerCounts counts) =>
        job with { Options = job.Options with { Transformers = BatchTransformers.From(host), TransformerCounts = counts } };

    private static string Ids(IReadOnlyDictionary<string, string> docs) => string.Join(",", docs.Keys.Order(StringComparer.Ordinal));

    [Fact]
    public async Task Snapshot_and_streamed_inserts_updates_deletes_are_renamed_rekeyed_routed_and_skipped_alike_and_a_throwing_row_is_dead_lettered()
    {
        await using var bed = await SyncTestBed.CreateAsync("cdcxform", Items);
        await using var es = await ElasticsearchTestServer.StartAsync();
        var (host, folder) = await HooksAsync(Shaping);
        await using var _ = host;
        try
        {
            var counts = new TransformerCounts();
            var job = WithTransformers(CdcTestKit.Job(bed, "items", 2, new ElasticsearchDestination(es.Uri), "items"), host, counts);

            var first = await new CdcEngine().RunAsync(job, CdcTestKit.UntilCaughtUp);

            first.Outcome.Should().Be(SyncOutcome.Succeeded, first.Error);
            first.Snapshot!.DocsIndexed.Should().Be(18, "20 rows, 7 skipped, 13 dead-lettered");
            first.Snapshot.DeadLettered.Should().Be(1);
            Ids(es.Documents("items")).Should().Be("item-1,item-11,item-15,item-17,item-19,item-3,item-5,item-9");
            Ids(es.Documents("items_even")).Should().Be("item-10,item-12,item-14,item-16,item-18,item-2,item-20,item-4,item-6,item-8");
            var snapshotVersion = es.VersionOf("items", "item-9")!.Value;

            await bed.ExecuteAsync("""
                INSERT INTO items VALUES (21, 'n21', 's'), (22, 'n22', 's');
                UPDATE items SET name = 'u' || id WHERE id IN (1, 2, 7);
                DELETE FROM items WHERE id IN (3, 4, 7);
                UPDATE items SET id = 105 WHERE id = 5;   -- a key change: a delete of the old key, an upsert of the new
                UPDATE items SET name = 'changed' WHERE id = 13;
                """);

            var second = await new CdcEngine().RunAsync(job, CdcTestKit.UntilCaughtUp);

            second.Outcome.Should().Be(SyncOutcome.Succeeded, second.Error);
            second.Snapshot.Should().BeNull();
            second.ChangesApplied.Should().Be(2 + 3 + 3 + 2 + 1, "skipped and dead-lettered changes are done too: the slot moves past them");
            second.DeadLettered.Should().Be(1, "the update of row 13 the transformer threw on");
            var odd = es.Documents("items");
            var even = es.Documents("items_even");
            Ids(odd).Should().Be("item-1,item-105,item-11,item-15,item-17,item-19,item-21,item-9", "item-3 and item-5 were deleted under the id the transformer gives them");
            Ids(even).Should().Be("item-10,item-12,item-14,item-16,item-18,item-2,item-20,item-22,item-6,item-8", "item-4 was deleted in the index it was routed to");
            odd.Keys.Concat(even.Keys).Should().NotContain(["1", "2", "7", "item-7", "item-13"]);
            es.IndexNames.Should().NotContain("items-even");
            JsonDocument.Parse(odd["item-1"]).RootElement.GetRawText().Should().Be("""{"id":1,"title":"u1"}""");
            JsonDocument.Parse(even["item-2"]).RootElement.GetRawText().Should().Be("""{"id":2,"title":"u2"}""");
            JsonDocument.Parse(odd["item-105"]).RootElement.GetRawText().Should().Be("""{"id":105,"title":"n5"}""");
            es.VersionOf("items", "item-1").Should().BeGreaterThan(snapshotVersion, "streamed transformed documents carry their commit LSN as external version");

            var dead = Directory.EnumerateFiles(bed.DeadLetterDirectory, "*.ndjson", SearchOption.AllDirectories)
                .SelectMany(File.ReadAllLines).Select(l => JsonDocument.Parse(l).RootElement).ToList();
            dead.Should().HaveCount(2, "row 13 in the snapshot and its streamed update");
            var streamed = dead.Single(d => d.GetProperty("replica").GetString()!.StartsWith("cdc-", StringComparison.Ordinal));
            streamed.GetProperty("reason").GetString().Should().Contain(Path.Combine(folder, "items.csx") + "(6,").And.Contain("unlucky 13");
            streamed.GetProperty("document").GetProperty("name").GetString().Should().Be("changed", "the dead letter holds the change as it came in");
            counts.Snapshot().Should().ContainSingle().Which.Value.Should().Be(18 + 2 + 2 + 2 + 2, "documents and deletes written under the one version");
        }
        finally
        {
            await CdcTestKit.DropSlotsAsync(bed);
        }
    }

    [Fact]
    public async Task A_transformer_past_its_budget_on_streamed_changes_fails_the_run_without_acknowledging_them_and_a_fixed_edit_applies_them()
    {
        await using var bed = await SyncTestBed.CreateAsync("cdcxbudget", Items);
        await using var es = await ElasticsearchTestServer.StartAsync();
        var (host, folder) = await HooksAsync("""
            void Transform(RowView row, DocumentWriter doc)
            {
                while (row.Operation == RowOperation.Upsert && row.GetString("name") == "spin") { }
                doc.Set("v", 1);
            }
            """);
        await using var _ = host;
        try
        {
            var counts = new TransformerCounts();
            var job = WithTransformers(CdcTestKit.Job(bed, "items", 1, new ElasticsearchDestination(es.Uri), "items"), host, counts);
            job = job with { Options = job.Options with { TransformBudget = TimeSpan.FromMilliseconds(300) } };
            (await new CdcEngine().RunAsync(job, CdcTestKit.UntilCaughtUp)).Outcome.Should().Be(SyncOutcome.Succeeded);

            await bed.ExecuteAsync("INSERT INTO items VALUES (21, 'spin', 's'); INSERT INTO items VALUES (22, 'n22', 's');");
            var stuck = await new CdcEngine().RunAsync(job, CdcTestKit.UntilCaughtUp);

            stuck.Outcome.Should().Be(SyncOutcome.Failed);
            stuck.Error.Should().Contain("budget");
            es.Documents("items").Keys.Should().NotContain(["21", "22"], "nothing of the batch the transformer ran out of time on is written");

            await File.WriteAllTextAsync(Path.Combine(folder, "items.csx"), "void Transform(RowView row, DocumentWriter doc) => doc.Set(\"v\", 2);");
            (await host.ReloadAsync()).Succeeded.Should().BeTrue();
            var fixedRun = await new CdcEngine().RunAsync(job, CdcTestKit.UntilCaughtUp);

            fixedRun.Outcome.Should().Be(SyncOutcome.Succeeded, fixedRun.Error);
            fixedRun.ChangesApplied.Should().Be(2, "the slot was not acknowledged past the failed batch, so both inserts stream again");
            var docs = es.Documents("items");
            docs.Should().HaveCount(22);
            JsonDocument.Parse(docs["21"]).RootElement.GetProperty("v").GetInt32().Should().Be(2);
            JsonDocument.Parse(docs["22"]).RootElement.GetProperty("v").GetInt32().Should().Be(2);
        }
        finally
        {
            await CdcTestKit.DropSlotsAsync(bed);
        }
    }

    [Fact]
    public async Task A_broken_edit_keeps_the_last_good_version_for_streamed_changes_and_a_fixed_edit_applies_to_the_next_batch()
    {
        await using var bed = await SyncTestBed.CreateAsync("cdcxreload", Items);
        var (host, folder) = await HooksAsync("void Transform(RowView row, DocumentWriter doc) { doc.Set(\"v\", 1); }");
        await using var _ = host;
        try
        {
            var outDir = Path.Combine(bed.Root, "cdc-out");
            var counts = new TransformerCounts();
            var job = WithTransformers(CdcTestKit.Job(bed, "items", 1, new FilesDestination(outDir), "items"), host, counts);
            (await new CdcEngine().RunAsync(job, CdcTestKit.UntilCaughtUp)).Outcome.Should().Be(SyncOutcome.Succeeded);

            var script = Path.Combine(folder, "items.csx");
            await File.WriteAllTextAsync(script, "void Transform(RowView row, DocumentWriter doc) { doc.Set(\"v\", 2) }");
            (await host.ReloadAsync()).Succeeded.Should().BeFalse("the edit does not compile");
            await bed.ExecuteAsync("INSERT INTO items VALUES (21, 'n21', 's')");
            (await new CdcEngine().RunAsync(job, CdcTestKit.UntilCaughtUp)).Outcome.Should().Be(SyncOutcome.Succeeded);

            await File.WriteAllTextAsync(script, "void Transform(RowView row, DocumentWriter doc) { if (row.Operation == RowOperation.Delete) doc.Skip(); else doc.Set(\"v\", 3); }");
            (await host.ReloadAsync()).Succeeded.Should().BeTrue();
            await bed.ExecuteAsync("INSERT INTO items VALUES (22, 'n22', 's'); DELETE FROM items WHERE id = 1;");
            (await new CdcEngine().RunAsync(job, CdcTestKit.UntilCaughtUp)).Outcome.Should().Be(SyncOutcome.Succeeded);

            var docs = CdcTestKit.LoadVersionedFiles(outDir);
            docs.Should().HaveCount(22, "the delete of row 1 was skipped by the fixed version, so its document stays");
            JsonDocument.Parse(docs["1"]).RootElement.GetProperty("v").GetInt32().Should().Be(1);
            JsonDocument.Parse(docs["21"]).RootElement.GetProperty("v").GetInt32().Should().Be(1, "a broken edit keeps the last good version");
            JsonDocument.Parse(docs["22"]).RootElement.GetProperty("v").GetInt32().Should().Be(3);
            counts.Snapshot().Should().HaveCount(2, "one count per version that ran");
            counts.Snapshot().Values.Sum().Should().Be(20 + 1 + 1);
        }
        finally
        {
            await CdcTestKit.DropSlotsAsync(bed);
        }
    }
}
