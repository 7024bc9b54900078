using System.Text;
using EtlFunnel.Execution.Models;
using EtlFunnel.Scripting;
using EtlFunnel.Scripting.Transforming;
using Npgsql;

namespace EtlFunnel.Runtime.Hooks;

/// <summary>One row of a preview: the engine's document before and the transformers' result after (null when skipped or failed).</summary>
public sealed record PreviewRow(string Id, string Before, string? After, string? Index, TransformOutcome Outcome, string? Error);

/// <summary>
/// Runs the transformers that apply to a table on a few of its real rows and returns before/after, writing nothing
/// (the logic behind <c>etlfunnel hooks test --table</c>). Reads with <c>row_to_json</c>, which the engine's documents
/// equal for every common type, in a read-only transaction; the transformers run in the hook worker.
/// </summary>
public static class TransformerPreview
{
    /// <summary>The transformers of <paramref name="host"/> that apply to the table, in the order a sync runs them.</summary>
    public static IReadOnlyList<IDataTransformer> For(HookHost host, string flow, string schema, string table)
    {
        ArgumentNullException.ThrowIfNull(host);
        return host.Transformers.Where(t => t.Matches(new TransformTarget(flow, schema, table))).ToList();
    }

    /// <summary>Reads up to <paramref name="limit"/> rows of <c>schema.table</c> and runs the matching transformers on them.</summary>
    public static async Task<IReadOnlyList<PreviewRow>> RunAsync(HookHost host, string connectionString, string flow, string schema, string table, int limit,
        TimeSpan budget, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(limit);
        var transformers = For(host, flow, schema, table);
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using (var readOnly = new NpgsqlCommand("SET TRANSACTION READ ONLY", connection, tx))
        {
            await readOnly.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        var relation = Quote(schema) + "." + Quote(table);
        var keys = new List<string>();
        await using (var keyQuery = new NpgsqlCommand(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) " +
            "WHERE i.indrelid = to_regclass($1) AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)", connection, tx))
        {
            keyQuery.Parameters.Add(new NpgsqlParameter { Value = relation });
            await using var reader = await keyQuery.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                keys.Add(reader.GetString(0));
            }
        }

        // Without a primary key the engine's ids come from the configured key; the preview shows the row's ctid instead.
        var id = keys.Count == 0 ? "t.ctid::text" : "concat_ws('|', " + string.Join(", ", keys.Select(k => "t." + Quote(k) + "::text")) + ")";
        var rows = new List<SourceDocument>();
        await using (var select = new NpgsqlCommand($"SELECT {id}, row_to_json(t)::text FROM ONLY {relation} t LIMIT {limit}", connection, tx))
        {
            await using var reader = await select.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                rows.Add(new SourceDocument(reader.GetString(0), RowOperation.Upsert, Encoding.UTF8.GetBytes(reader.GetString(1))));
            }
        }

        var results = rows.Select(r => new PreviewRow(r.Id, Encoding.UTF8.GetString(r.Json), Encoding.UTF8.GetString(r.Json), null, TransformOutcome.Written, null)).ToList();
        foreach (var transformer in transformers)
        {
            var live = results.Select((r, i) => (r, i)).Where(x => x.r.Outcome == TransformOutcome.Written).ToList();
            var input = live.Select(x => new SourceDocument(x.r.Id, RowOperation.Upsert, Encoding.UTF8.GetBytes(x.r.After!))).ToList();
            var output = await transformer.TransformAsync(new TransformTarget(flow, schema, table), input, budget, cancellationToken).ConfigureAwait(false);
            for (var j = 0; j < output.Count; j++)
            {
                var (before, at) = live[j];
                var d = output[j];
                results[at] = before with
                {
                    Id = d.Id,
                    After = d.Json is null ? null : Encoding.UTF8.GetString(d.Json),
                    Index = d.Index ?? before.Index,
                    Outcome = d.Outcome,
                    Error = d.Error,
                };
            }
        }

        return results;
    }

    private static string Quote(string identifier) => "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
}
