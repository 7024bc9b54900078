using System.Text.Json;
using EtlFunnel.Runtime.Hooks;
using EtlFunnel.Scripting;
using EtlFunnel.Sync.Tests.Support;
using EtlFunnel.Sync.Transforming;

namespace EtlFunnel.Sync.Tests;

/// <summary>Real .csx transformers (through the hook host and its worker) applied by full and incremental syncs on real PostgreSQL.</summary>
public sealed class TransformerSyncTests
{
    private const string Table = """
        CREATE TABLE products (id bigint PRIMARY KEY, name text, price_cents bigint, secret text, archived bool, updated bigint);
        INSERT INTO products SELECT g, 'p' || g, g * 10, 's', g % 10 = 0, g FROM generate_series(1, 500) g;
        UPDATE products SET name = 'bad' WHERE id = 77;
        """;

    private const string Realistic = """
        string AppliesTo => "flow_*/public.products";

        void Transform(RowView row, DocumentWriter doc)
        {
            if (row.GetString("name") == "bad") throw new InvalidOperationException("bad product " + row.Id);
            doc.Rename("name", "title");
            doc.Drop("secret");
            doc.Set("price_eur", row.GetInt64("price_cents") / 100.0);
            if (row.GetBoolean("archived")) doc.Index = "archive";
            if (row.GetInt64("id") == 5) doc.Skip();
        }
        """;

    private static async Task<(HookHost Host, string Folder)> HooksAsync(string script)
    {
        var folder = Path.Combine(Path.GetTempPath(), "etlfunnel-xform-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        await File.WriteAllTextAsync(Path.Combine(folder, "products.csx"), script);
        var host = await HookHost.LoadAsync(new HookHostOptions { HooksDirectory = folder, CacheDirectory = folder + "-cache" });
        host.Diagnostics.Where(d => d.Severity == "error").Should().BeEmpty();
        return (host, folder);
    }

    [Fact]
    public async Task A_full_sync_writes_transformed_documents_routes_skips_and_dead_letters_the_row_the_hook_threw_on()
    {
        await using var bed = await SyncTestBed.CreateAsync("xform", Table);
        var (host, folder) = await HooksAsync(Realistic);
        await using var _ = host;
        var counts = new TransformerCounts();
        var options = bed.Options(blocksPerChunk: 1) with { Transformers = BatchTransformers.From(host), TransformerCounts = counts };

        var report = await new SyncEngine().RunAsync(bed.Job("products", 1, 2, options));

        report.Outcome.Should().Be(SyncOutcome.CompletedWithRejections, report.Summary);
        var docs = bed.ReadOutput();
        docs.Should().HaveCount(498, "500 rows, one skipped, one dead-lettered");
        docs.Select(d => d.Id).Should().NotContain(["5", "77"]);
        docs.Where(d => d.Index == "archive").Select(d => d.Id).Should().BeEquivalentTo(Enumerable.Range(1, 50).Select(i => (i * 10).ToString(System.Globalization.CultureInfo.InvariantCulture)));
        var one = docs.Single(d => d.Id == "1").Source;
        one.EnumerateObject().Select(p => p.Name).Should().Equal("id", "title", "price_cents", "archived", "updated", "price_eur");
        one.GetProperty("price_eur").GetDouble().Should().Be(0.1);
        report.DeadLettered.Should().Be(1);
        var dead = File.ReadAllLines(report.DeadLetterFile!).Select(l => JsonDocument.Parse(l).RootElement).Should().ContainSingle().Subject;
        dead.GetRawText().Should().Contain(Path.Combine(folder, "products.csx") + "(5,").And.Contain("bad product 77");
        counts.Snapshot().Should().ContainSingle().Which.Value.Should().Be(498);
    }

    [Fact]
    public async Task Transformers_that_edit_no_document_write_the_same_sources_byte_for_byte_as_no_transformer_and_a_rekey_is_applied()
    {
        const string Text = """
            CREATE TABLE products (id bigint PRIMARY KEY, name text, tags text[], meta jsonb);
            INSERT INTO products SELECT g, E'caf\u00e9 "' || g || E'" \\ \u2615', ARRAY['a', 'b"' || g], jsonb_build_object('k', g, 'é', g % 2 = 0) FROM generate_series(1, 300) g;
            """;
        await using var plain = await SyncTestBed.CreateAsync("xsame0", Text);
        (await new SyncEngine().RunAsync(plain.Job("products", 1, 2, plain.Options(blocksPerChunk: 1)))).Outcome.Should().Be(SyncOutcome.Succeeded);
        var expected = plain.ReadOutput().ToDictionary(d => d.Id, d => (d.Index, d.Source.GetRawText()));

        await using var bed = await SyncTestBed.CreateAsync("xsame1", Text);
        var folder = Path.Combine(Path.GetTempPath(), "etlfunnel-xform-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        await File.WriteAllTextAsync(Path.Combine(folder, "a-identity.csx"), "void Transform(RowView row, DocumentWriter doc) { }");
        await File.WriteAllTextAsync(Path.Combine(folder, "b-rekey.csx"), "void Transform(RowView row, DocumentWriter doc) { if (row.GetInt64(\"id\") % 3 == 0) doc.Id = \"k\" + row.Id; }");
        await using var host = await HookHost.LoadAsync(new HookHostOptions { HooksDirectory = folder, CacheDirectory = folder + "-cache" });
        host.Diagnostics.Where(d => d.Severity == "error").Should().BeEmpty();
        var counts = new TransformerCounts();
        var options = bed.Options(blocksPerChunk: 1) with { Transformers = BatchTransformers.From(host), TransformerCounts = counts };

        (await new SyncEngine().RunAsync(bed.Job("products", 1, 2, options))).Outcome.Should().Be(SyncOutcome.Succeeded);

        var docs = bed.ReadOutput();
        docs.Should().HaveCount(300);
        foreach (var (index, id, source) in docs)
        {
            var original = id.StartsWith('k') ? id[1..] : id;
            (long.Parse(original, System.Globalization.CultureInfo.InvariantCulture) % 3 == 0).Should().Be(id.StartsWith('k'), id);
            (index, source.GetRawText()).Should().Be(expected[original], $"document {id} was not edited");
        }

        counts.Snapshot().Values.Should().Equal(300, 300);
    }

    [Fact]
    public async Task A_transformer_past_its_batch_budget_fails_the_run_and_writes_nothing()
    {
        await using var bed = await SyncTestBed.CreateAsync("xslow", Table);
        var (host, _) = await HooksAsync("void Transform(RowView row, DocumentWriter doc) { while (row.Id != null) { } }");
        await using var _h = host;
        var options = bed.Options() with { Transformers = BatchTransformers.From(host), TransformBudget = TimeSpan.FromMilliseconds(300) };

        var report = await new SyncEngine().RunAsync(bed.Job("products", 1, 1, options));

        report.Outcome.Should().Be(SyncOutcome.Failed);
        report.Replicas.Single().Error.Should().Contain("per-batch time budget of 300 ms").And.Contain("not written or checkpointed");
        bed.ReadOutput().Should().BeEmpty();
    }

    [Fact]
    public async Task A_script_replaced_between_incremental_runs_applies_to_the_next_batches_and_both_versions_are_counted()
    {
        await using var bed = await SyncTestBed.CreateAsync("xinc", Table);
        var (host, folder) = await HooksAsync("void Transform(RowView row, DocumentWriter doc) { doc.Set(\"v\", 1); }");
        await using var _ = host;
        var counts = new TransformerCounts();
        var options = bed.Options(SyncMode.Incremental) with { Transformers = BatchTransformers.From(host), TransformerCounts = counts };
        (await new SyncEngine().RunAsync(bed.Job("products", 1, 1, options, incremental: "updated"))).Outcome.Should().Be(SyncOutcome.Succeeded);

        await File.WriteAllTextAsync(Path.Combine(folder, "products.csx"), "void Transform(RowView row, DocumentWriter doc) { doc.Set(\"v\", 2); }");
        (await host.ReloadAsync()).Succeeded.Should().BeTrue();
        await bed.ExecuteAsync("INSERT INTO products SELECT g, 'n' || g, g, 's', false, g FROM generate_series(501, 520) g");
        (await new SyncEngine().RunAsync(bed.Job("products", 1, 1, options, incremental: "updated"))).Outcome.Should().Be(SyncOutcome.Succeeded);

        var docs = bed.ReadOutputInOrder().ToList();
        docs.Where(d => d.Source.GetProperty("v").GetInt32() == 2).Select(d => d.Id).Should().Contain(Enumerable.Range(501, 20).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        docs.Where(d => long.Parse(d.Id, System.Globalization.CultureInfo.InvariantCulture) <= 500).Should().OnlyContain(d => d.Source.GetProperty("v").GetInt32() == 1 || d.Source.GetProperty("v").GetInt32() == 2);
        counts.Snapshot().Should().HaveCount(2, "one count per script version");
        counts.Snapshot().Values.Sum().Should().Be(docs.Count);
    }

    [Fact]
    public async Task The_preview_shows_before_and_after_of_real_rows_and_writes_nothing()
    {
        await using var bed = await SyncTestBed.CreateAsync("xprev", Table);
        var (host, _) = await HooksAsync(Realistic);
        await using var _h = host;

        var rows = await TransformerPreview.RunAsync(host, bed.ConnectionString, "flow_0", "public", "products", 10, TimeSpan.FromSeconds(5));

        rows.Should().HaveCount(10);
        var one = rows.Single(r => r.Id == "1");
        JsonDocument.Parse(one.Before).RootElement.GetProperty("name").GetString().Should().Be("p1");
        JsonDocument.Parse(one.After!).RootElement.GetProperty("title").GetString().Should().Be("p1");
        rows.Single(r => r.Id == "5").Outcome.Should().Be(EtlFunnel.Scripting.Transforming.TransformOutcome.Skipped);
        rows.Single(r => r.Id == "10").Index.Should().Be("archive");
        TransformerPreview.For(host, "flow_0", "public", "orders").Should().BeEmpty();
        bed.ReadOutputLines().Should().Be(0);
    }
}
