using System.Buffers;
using System.Text;
using EtlFunnel.Execution.Models;
using EtlFunnel.Scripting.Tests.Support;
using EtlFunnel.Scripting.Transforming;
using EtlFunnel.Testing.Postgres;
using Npgsql;

namespace EtlFunnel.Scripting.Tests;

/// <summary>
/// The binary batch form of transformers (protocol 2, Transforming/TransformFrames.cs) through the real worker: documents a
/// transformer did not edit come back as they went in, byte for byte; large documents and empty batches cross the pipe; a
/// malformed frame is refused.
/// </summary>
public sealed class TransformerFrameTests
{
    private static readonly TransformTarget Notes = new("shop", "public", "notes");

    private static async Task<HookHost> LoadAsync(TempHooks hooks)
    {
        var host = await HookHost.LoadAsync(Fixtures.Options(hooks.Path, hooks.Cache) with { TimeBudget = TimeSpan.FromSeconds(10) });
        host.Diagnostics.Where(d => d.Severity == "error").Should().BeEmpty();
        return host;
    }

    // Real rows' documents (row_to_json) with escapes and non-ASCII text, and one hand-written document whose escapes and
    // spacing no writer of ours would produce.
    private static async Task<List<SourceDocument>> EscapedRowsAsync()
    {
        var db = await (await PostgresServer.GetAsync()).CreateDatabaseAsync("frames");
        await PostgresServer.ExecuteAsync(db, """
            CREATE TABLE notes (id bigint PRIMARY KEY, body text, tags text[], meta jsonb);
            INSERT INTO notes VALUES
              (1, E'caf\u00e9 "quoted" back\\slash tab\there \u2615 \U0001D11E', ARRAY['a', 'b "c"'], '{"k": [1, 2.5e3, null], "é": true}'),
              (2, E'line\nbreak and \u0001 control', NULL, NULL);
            """);
        await using var connection = new NpgsqlConnection(db);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT id::text, row_to_json(n)::text FROM notes n ORDER BY id", connection);
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<SourceDocument>();
        while (await reader.ReadAsync())
        {
            rows.Add(new SourceDocument(reader.GetString(0), RowOperation.Upsert, Encoding.UTF8.GetBytes(reader.GetString(1))));
        }

        rows.Add(new SourceDocument("caf\u00e9-3", RowOperation.Upsert, Encoding.UTF8.GetBytes("{ \"id\" : 3, \"body\":\"caf\\u00e9 \\\"x\\\" \\/\" ,\"n\":1.50}")));
        return rows;
    }

    [Fact]
    public async Task A_document_the_transformer_did_not_edit_comes_back_byte_identical_even_when_it_only_changed_the_id()
    {
        using var hooks = new TempHooks();
        hooks.Write("a-identity.csx", "void Transform(RowView row, DocumentWriter doc) { }\n");
        hooks.Write("b-rekey.csx", """
            void Transform(RowView row, DocumentWriter doc)
            {
                if (row.GetString("body") is { } body && body.Contains('\u2615'))
                {
                    doc.Index = "coffee";
                }

                doc.Id = "n-" + row.Id;
            }
            """);
        await using var host = await LoadAsync(hooks);
        var rows = await EscapedRowsAsync();

        var identity = await host.Transformers.Single(t => t.Name == "a-identity.csx").TransformAsync(Notes, rows, TimeSpan.FromSeconds(5));
        var rekeyed = await host.Transformers.Single(t => t.Name == "b-rekey.csx").TransformAsync(Notes, rows, TimeSpan.FromSeconds(5));

        identity.Select(d => d.Outcome).Should().AllBeEquivalentTo(TransformOutcome.Written);
        identity.Select(d => d.Id).Should().Equal(rows.Select(r => r.Id));
        identity.Select(d => d.Index).Should().AllBeEquivalentTo((string?)null);
        rekeyed.Select(d => d.Id).Should().Equal("n-1", "n-2", "n-caf\u00e9-3");
        rekeyed.Select(d => d.Index).Should().Equal("coffee", null, null);
        for (var i = 0; i < rows.Count; i++)
        {
            identity[i].Json.Should().Equal(rows[i].Json, $"row {i}'s document was not edited");
            rekeyed[i].Json.Should().Equal(rows[i].Json, $"row {i}'s document was not edited, only its id and index");
        }
    }

    [Fact]
    public async Task An_edited_document_keeps_escaped_and_non_ascii_values_and_a_no_op_rename_leaves_it_unchanged()
    {
        using var hooks = new TempHooks();
        hooks.Write("edit.csx", """
            void Transform(RowView row, DocumentWriter doc)
            {
                doc.Rename("body", "body");
                if (row.GetInt64("id") != 2)
                {
                    doc.Rename("body", "text");
                    doc.Set("len", row.GetString("body")!.Length);
                }
            }
            """);
        await using var host = await LoadAsync(hooks);
        var rows = await EscapedRowsAsync();

        var result = await host.Transformers.Single().TransformAsync(Notes, rows, TimeSpan.FromSeconds(5));

        result[1].Json.Should().Equal(rows[1].Json, "renaming a field to its own name is no edit");
        var first = System.Text.Json.JsonDocument.Parse(result[0].Json!).RootElement;
        var original = System.Text.Json.JsonDocument.Parse(rows[0].Json).RootElement;
        first.GetProperty("text").GetString().Should().Be(original.GetProperty("body").GetString());
        first.GetProperty("meta").GetRawText().Should().Be(original.GetProperty("meta").GetRawText(), "untouched values are copied as they were");
        first.GetProperty("len").GetInt64().Should().Be(original.GetProperty("body").GetString()!.Length);
        System.Text.Json.JsonDocument.Parse(result[2].Json!).RootElement.GetProperty("text").GetString().Should().Be("caf\u00e9 \"x\" /");
    }

    [Fact]
    public async Task A_large_document_crosses_the_pipe_edited_or_not_and_an_empty_batch_is_an_empty_answer()
    {
        using var hooks = new TempHooks();
        hooks.Write("a-identity.csx", "void Transform(RowView row, DocumentWriter doc) { }\n");
        hooks.Write("b-mark.csx", "void Transform(RowView row, DocumentWriter doc) => doc.Set(\"marked\", true);\n");
        await using var host = await LoadAsync(hooks);
        var big = new string('\u00e9', 3 << 20); // 6 MB of UTF-8
        var json = Encoding.UTF8.GetBytes($$"""{"id":1,"blob":"{{big}}"}""");
        var rows = new List<SourceDocument> { new("1", RowOperation.Upsert, json), new("2", RowOperation.Upsert, """{"id":2}"""u8.ToArray()) };

        var identity = await host.Transformers.Single(t => t.Name == "a-identity.csx").TransformAsync(Notes, rows, TimeSpan.FromSeconds(5));
        var marked = await host.Transformers.Single(t => t.Name == "b-mark.csx").TransformAsync(Notes, rows, TimeSpan.FromSeconds(5));
        var empty = await host.Transformers.Single(t => t.Name == "b-mark.csx").TransformAsync(Notes, [], TimeSpan.FromSeconds(5));

        identity[0].Json.Should().Equal(json);
        var doc = System.Text.Json.JsonDocument.Parse(marked[0].Json!).RootElement;
        doc.GetProperty("blob").GetString().Should().Be(big);
        doc.GetProperty("marked").GetBoolean().Should().BeTrue();
        Encoding.UTF8.GetString(marked[1].Json!).Should().Be("""{"id":2,"marked":true}""");
        empty.Should().BeEmpty();
    }

    [Fact]
    public void The_frames_round_trip_and_a_truncated_or_miscounted_frame_is_refused()
    {
        using var request = new TransformRequest(16);
        request.Add("caf\u00e9", RowOperation.Upsert, """{"a":"\u00e9"}"""u8);
        request.Add("2", RowOperation.Delete, """{"id":2}"""u8);
        var rows = TransformRequest.Read(request.Body.ToArray());
        rows.Select(r => (r.Id, r.Operation)).Should().Equal(("caf\u00e9", RowOperation.Upsert), ("2", RowOperation.Delete));
        rows[0].Json.ToArray().Should().Equal("""{"a":"\u00e9"}"""u8.ToArray());

        using var writer = new TransformReplyWriter(0);
        writer.Add(TransformOutcome.Written, null, null, null);
        writer.AddDocument("x", "idx", output => output.Write("""{"b":1}"""u8));
        writer.Add(TransformOutcome.Failed, null, null, "t.csx(3,5): boom");
        var body = writer.Body.ToArray();
        var reply = TransformReply.Read(body, 3);
        reply.IsUnchanged(0).Should().BeTrue();
        reply.NewId(0).Should().BeNull();
        reply.Index(0).Should().BeNull();
        reply.Error(0).Should().BeNull();
        reply.IsUnchanged(1).Should().BeFalse();
        reply.NewId(1).Should().Be("x");
        reply.Index(1).Should().Be("idx");
        Encoding.UTF8.GetString(reply.Json(1).Span).Should().Be("""{"b":1}""");
        reply.Outcome(2).Should().Be(TransformOutcome.Failed);
        reply.Error(2).Should().Be("t.csx(3,5): boom");

        FluentActions.Invoking(() => TransformReply.Read(body.AsMemory(0, body.Length - 1), 3)).Should().Throw<InvalidDataException>();
        FluentActions.Invoking(() => TransformReply.Read(body, 2)).Should().Throw<InvalidDataException>().WithMessage("*3 results for a batch of 2*");
        FluentActions.Invoking(() => TransformRequest.Read(request.Body[..^1].ToArray())).Should().Throw<InvalidDataException>();
    }
}
