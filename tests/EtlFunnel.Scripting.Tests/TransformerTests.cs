using System.Text;
using System.Text.Json;
using EtlFunnel.Execution.Models;
using EtlFunnel.Scripting.Tests.Support;
using EtlFunnel.Scripting.Transforming;
using EtlFunnel.Testing.Postgres;
using Npgsql;

namespace EtlFunnel.Scripting.Tests;

/// <summary>
/// Data-plane transformers (TestFixtures/Transformers) through the real host and worker, on documents of real rows
/// read from PostgreSQL with <c>row_to_json</c> (what the engine's documents equal).
/// </summary>
public sealed class TransformerTests
{
    private static readonly TransformTarget Products = new("shop", "public", "products");

    private static async Task<List<SourceDocument>> RowsAsync(string extraRows = "")
    {
        var db = await (await PostgresServer.GetAsync()).CreateDatabaseAsync("transform");
        await PostgresServer.ExecuteAsync(db, $"""
            CREATE TABLE products (id bigint PRIMARY KEY, name text, price_cents bigint, secret text, warehouse text, quantity int, archived bool);
            INSERT INTO products VALUES
              (1, 'kettle', 2599, 'x1', 'north', 4, false),
              (2, 'bad', 100, 'x2', 'south', 0, false),
              (3, 'lamp "deluxe"', NULL, 'x3', 'north', 7, true){extraRows};
            """);
        await using var connection = new NpgsqlConnection(db);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT id::text, row_to_json(p)::text FROM products p ORDER BY id", connection);
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<SourceDocument>();
        while (await reader.ReadAsync())
        {
            rows.Add(new SourceDocument(reader.GetString(0), RowOperation.Upsert, Encoding.UTF8.GetBytes(reader.GetString(1))));
        }

        return rows;
    }

    private static async Task<HookHost> LoadAsync(TempHooks hooks, TimeSpan? budget = null)
    {
        var host = await HookHost.LoadAsync(Fixtures.Options(hooks.Path, hooks.Cache) with { TimeBudget = budget ?? TimeSpan.FromSeconds(10) });
        host.Diagnostics.Where(d => d.Severity == "error").Should().BeEmpty();
        return host;
    }

    private static JsonElement Json(TransformedDocument d) => JsonDocument.Parse(d.Json!).RootElement;

    [Fact]
    public async Task Rename_drop_compute_nest_id_and_route_on_real_rows()
    {
        using var hooks = new TempHooks();
        hooks.CopyFixture("Transformers/products.csx");
        await using var host = await LoadAsync(hooks);
        var transformer = host.Transformers.Should().ContainSingle().Subject;
        transformer.Matches(Products).Should().BeTrue();
        transformer.Matches(new TransformTarget("shop", "public", "orders")).Should().BeFalse();
        transformer.Matches(new TransformTarget("other", "public", "products")).Should().BeFalse();

        var rows = await RowsAsync();
        var result = await transformer.TransformAsync(Products, rows, TimeSpan.FromSeconds(5));

        result.Select(r => r.Outcome).Should().AllBeEquivalentTo(TransformOutcome.Written);
        result.Select(r => r.Id).Should().Equal("p-1", "p-2", "p-3");
        result.Select(r => r.Index).Should().Equal(null, null, "products-archive");
        var first = Json(result[0]);
        first.EnumerateObject().Select(p => p.Name).Should().Equal("id", "title", "price", "stock", "archived", "price_eur");
        first.GetProperty("title").GetString().Should().Be("kettle");
        first.GetProperty("price").GetInt64().Should().Be(2599);
        first.GetProperty("price_eur").GetDouble().Should().Be(25.99);
        first.GetProperty("stock").GetProperty("warehouse").GetString().Should().Be("north");
        first.GetProperty("stock").GetProperty("quantity").GetInt32().Should().Be(4);
        first.TryGetProperty("secret", out _).Should().BeFalse();
        var third = Json(result[2]);
        third.GetProperty("title").GetString().Should().Be("lamp \"deluxe\"", "escaped text is copied as it was");
        third.GetProperty("price").ValueKind.Should().Be(JsonValueKind.Null);
        third.TryGetProperty("price_eur", out _).Should().BeFalse();
    }

    [Fact]
    public async Task Skip_writes_nothing_and_a_delete_event_reaches_the_transformer()
    {
        using var hooks = new TempHooks();
        hooks.CopyFixture("Transformers/skip-deletes.csx");
        await using var host = await LoadAsync(hooks);
        var rows = await RowsAsync();
        rows.Add(new SourceDocument("9", RowOperation.Delete, Encoding.UTF8.GetBytes("""{"id":9}""")));

        var result = await host.Transformers.Single().TransformAsync(Products, rows, TimeSpan.FromSeconds(5));

        result.Select(r => r.Outcome).Should().Equal(TransformOutcome.Written, TransformOutcome.Written, TransformOutcome.Skipped, TransformOutcome.Written);
        result[3].Should().Match<TransformedDocument>(d => d.Operation == RowOperation.Delete && d.Id == "p-9" && d.Json == null);
        JsonDocument.Parse(result[0].Json!).RootElement.GetRawText().Should().Be(Encoding.UTF8.GetString(rows[0].Json),
            "a document the transformer did not edit is the engine's own, byte for byte");
    }

    [Fact]
    public async Task A_transformer_written_for_upserts_renames_and_nests_nothing_on_a_delete_and_still_rekeys_and_routes_it()
    {
        using var hooks = new TempHooks();
        hooks.Write("shape.csx", """
            void Transform(RowView row, DocumentWriter doc)
            {
                doc.Id = "p-" + row.Id;
                doc.Index = "products_" + (row.GetInt64("id") % 2);
                doc.Rename("name", "title");
                doc.Nest("money", "price_cents");
            }
            """);
        await using var host = await LoadAsync(hooks);
        var rows = new List<SourceDocument> { new("9", RowOperation.Delete, Encoding.UTF8.GetBytes("""{"id":9}""")) };

        var result = await host.Transformers.Single().TransformAsync(Products, rows, TimeSpan.FromSeconds(5));

        result.Single().Should().Match<TransformedDocument>(d => d.Outcome == TransformOutcome.Written && d.Operation == RowOperation.Delete
            && d.Id == "p-9" && d.Index == "products_1" && d.Json == null && d.Error == null);
    }

    [Fact]
    public async Task A_throw_on_one_row_fails_that_row_at_the_scripts_line_and_column_and_the_others_go_on()
    {
        using var hooks = new TempHooks();
        var file = hooks.CopyFixture("Transformers/throws-on-one.csx");
        await using var host = await LoadAsync(hooks);

        var result = await host.Transformers.Single().TransformAsync(Products, await RowsAsync(), TimeSpan.FromSeconds(5));

        result.Select(r => r.Outcome).Should().Equal(TransformOutcome.Written, TransformOutcome.Failed, TransformOutcome.Written);
        result[1].Error.Should().StartWith($"{file}(7,9): ").And.Contain("cannot index a product called bad").And.Contain("id '2'");
        Json(result[2]).GetProperty("name_length").GetInt32().Should().Be("lamp \"deluxe\"".Length);
    }

    [Fact]
    public async Task A_transformer_past_its_batch_budget_fails_the_whole_batch_and_the_next_batch_runs()
    {
        using var hooks = new TempHooks();
        var file = hooks.CopyFixture("Transformers/slow.csx");
        hooks.CopyFixture("Transformers/throws-on-one.csx");
        await using var host = await LoadAsync(hooks);
        var rows = await RowsAsync();

        var act = () => host.Transformers.Single(t => t.Name == "slow.csx").TransformAsync(Products, rows, TimeSpan.FromMilliseconds(300));

        (await act.Should().ThrowAsync<TransformTimeoutException>()).Which.Message.Should().StartWith(file + "(")
            .And.Contain("per-batch time budget of 300 ms").And.Contain("not written or acknowledged");
        (await host.Transformers.Single(t => t.Name == "throws-on-one.csx").TransformAsync(Products, rows, TimeSpan.FromSeconds(5)))
            .Should().HaveCount(3, "the worker still serves the next batch");
    }

    [Fact]
    public async Task A_script_replaced_mid_run_applies_to_the_next_batch_under_a_new_version()
    {
        using var hooks = new TempHooks();
        hooks.Write("t.csx", "void Transform(RowView row, DocumentWriter doc) { doc.Set(\"v\", 1); }");
        await using var host = await LoadAsync(hooks);
        var rows = await RowsAsync();
        var before = host.Transformers.Single();
        var first = await before.TransformAsync(Products, rows, TimeSpan.FromSeconds(5));

        hooks.Write("t.csx", "void Transform(RowView row, DocumentWriter doc) { doc.Set(\"v\", 2); }");
        (await host.ReloadAsync()).Succeeded.Should().BeTrue();
        var after = host.Transformers.Single();
        var second = await after.TransformAsync(Products, rows, TimeSpan.FromSeconds(5));

        first.Select(d => Json(d).GetProperty("v").GetInt32()).Should().AllBeEquivalentTo(1);
        second.Select(d => Json(d).GetProperty("v").GetInt32()).Should().AllBeEquivalentTo(2);
        after.VersionKey.Should().NotBe(before.VersionKey);
        var stale = () => before.TransformAsync(Products, rows, TimeSpan.FromSeconds(5));
        (await stale.Should().ThrowAsync<TransformTimeoutException>()).Which.Message.Should().Contain("replaced by a reload");
    }

    [Fact]
    public async Task A_transform_with_the_wrong_shape_is_refused_at_its_line()
    {
        using var hooks = new TempHooks();
        var file = hooks.CopyFixture("Transformers/wrong-shape.csx");
        await using var host = await HookHost.LoadAsync(Fixtures.Options(hooks.Path, hooks.Cache));

        host.Diagnostics.Should().ContainSingle(d => d.Id == "EF0003").Which.Should().Match<HookDiagnostic>(d => d.File == file && d.Line == 2 && d.Column == 8);
        host.Transformers.Should().BeEmpty();
    }
}
