using System.Collections.Immutable;
using Npgsql;

namespace EtlFunnel.Orchestration.Discovery;

/// <summary>Reads every user table of a database with its size, row estimate, partitions and primary key in one catalog query.</summary>
internal static class PostgresCatalog
{
    // One round trip for the whole database: planning 2000 tables must not cost 2000 round trips.
    private const string TablesSql = """
        SELECT n.nspname::text,
               c.relname::text,
               CASE WHEN c.relkind = 'p' THEN coalesce(p.rows, 0) ELSE greatest(c.reltuples, 0) END::float8 AS rows,
               CASE WHEN c.relkind = 'p' THEN coalesce(p.min_rows, 0) < 0 OR coalesce(p.parts, 0) = 0 ELSE c.reltuples < 0 END AS never_analyzed,
               CASE WHEN c.relkind = 'p' THEN coalesce(p.bytes, 0) ELSE pg_total_relation_size(c.oid) END::int8 AS bytes,
               CASE WHEN c.relkind = 'p' THEN coalesce(p.pages, 0) ELSE c.relpages END::int8 AS pages,
               coalesce(p.parts, 0)::int4 AS parts,
               (SELECT array_agg(a.attname::text ORDER BY k.ord)
                  FROM pg_index i
                  CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                 WHERE i.indrelid = c.oid AND i.indisprimary) AS pk
          FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace
          LEFT JOIN LATERAL (
                SELECT sum(greatest(lc.reltuples, 0)) AS rows, min(lc.reltuples) AS min_rows,
                       sum(pg_total_relation_size(lc.oid)) AS bytes, sum(lc.relpages) AS pages, count(*) AS parts
                  FROM pg_partition_tree(c.oid) t
                  JOIN pg_class lc ON lc.oid = t.relid
                 WHERE t.isleaf AND t.relid <> c.oid) p ON c.relkind = 'p'
         WHERE c.relkind IN ('r', 'p')
           AND NOT c.relispartition
           AND n.nspname <> 'information_schema'
           AND n.nspname NOT LIKE 'pg\_%'
         ORDER BY 1, 2
        """;

    public static async Task<IReadOnlyList<TableInfo>> LoadTablesAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        var tables = new List<TableInfo>();
        await using var conn = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = await conn.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, cancellationToken).ConfigureAwait(false);

        // The per-table size functions make the planner's cost estimate huge, and compiling the query with JIT costs more than running it.
        await using (var off = new NpgsqlCommand("SET LOCAL jit = off", conn, tx))
        {
            await off.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await using var cmd = new NpgsqlCommand(TablesSql, conn, tx);
        await using var reader = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            tables.Add(new TableInfo
            {
                Schema = reader.GetString(0),
                Name = reader.GetString(1),
                Rows = (long)Math.Round(reader.GetDouble(2)),
                NeverAnalyzed = reader.GetBoolean(3),
                Bytes = reader.GetInt64(4),
                Pages = reader.GetInt64(5),
                PartitionCount = reader.GetInt32(6),
                PrimaryKey = reader.IsDBNull(7) ? [] : [.. reader.GetFieldValue<string[]>(7)],
            });
        }

        return tables;
    }

    /// <summary>Exact row counts for the given tables, in one batch.</summary>
    public static async Task<IReadOnlyList<long>> CountRowsAsync(NpgsqlDataSource dataSource, IReadOnlyList<TableInfo> tables, CancellationToken cancellationToken)
    {
        if (tables.Count == 0)
        {
            return [];
        }

        await using var batch = dataSource.CreateBatch();
        foreach (var table in tables)
        {
            batch.BatchCommands.Add(new NpgsqlBatchCommand($"SELECT count(*) FROM {Quote(table.Schema)}.{Quote(table.Name)}"));
        }

        var counts = new List<long>(tables.Count);
        await using var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        do
        {
            await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            counts.Add(reader.GetInt64(0));
        }
        while (await reader.NextResultAsync(cancellationToken).ConfigureAwait(false));

        return counts;
    }

    /// <summary>Quotes an identifier the way <c>quote_ident</c> does.</summary>
    public static string Quote(string identifier) => "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    /// <summary>Host, port and database of a connection string: a display name without the password.</summary>
    public static string DisplayName(string connectionString)
    {
        var b = new NpgsqlConnectionStringBuilder(connectionString);
        return $"{b.Host}:{b.Port}/{b.Database}";
    }

    /// <summary>Column names of a table, to check an explicit key.</summary>
    public static async Task<ILookup<string, string>> LoadColumnsAsync(NpgsqlDataSource dataSource, IReadOnlyList<TableInfo> tables, CancellationToken cancellationToken)
    {
        var result = new List<(string Table, string Column)>();
        if (tables.Count == 0)
        {
            return result.ToLookup(r => r.Table, r => r.Column, StringComparer.Ordinal);
        }

        await using var cmd = dataSource.CreateCommand("""
            SELECT n.nspname::text || '.' || c.relname::text, a.attname::text
              FROM pg_attribute a
              JOIN pg_class c ON c.oid = a.attrelid
              JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE a.attnum > 0 AND NOT a.attisdropped
               AND (n.nspname, c.relname) IN (SELECT * FROM unnest($1::text[], $2::text[]))
            """);
        cmd.Parameters.Add(new NpgsqlParameter { Value = tables.Select(t => t.Schema).ToArray() });
        cmd.Parameters.Add(new NpgsqlParameter { Value = tables.Select(t => t.Name).ToArray() });
        await using var reader = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            result.Add((reader.GetString(0), reader.GetString(1)));
        }

        return result.ToLookup(r => r.Table, r => r.Column, StringComparer.Ordinal);
    }
}
