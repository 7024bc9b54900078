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

    /// <summary>Columns (with type and nullability) and unique indexes of the given tables, to check explicit keys and incremental columns.</summary>
    public static async Task<Dictionary<(string Schema, string Name), TableColumns>> LoadColumnsAsync(NpgsqlDataSource dataSource, IReadOnlyList<TableInfo> tables, CancellationToken cancellationToken)
    {
        var result = new Dictionary<(string, string), TableColumns>();
        if (tables.Count == 0)
        {
            return result;
        }

        foreach (var t in tables)
        {
            result[(t.Schema, t.Name)] = new TableColumns();
        }

        // A domain is described by its base type; indnullsnotdistinct (PostgreSQL 15+) is read through to_jsonb so older servers answer too.
        await using var batch = dataSource.CreateBatch();
        var columns = new NpgsqlBatchCommand("""
            SELECT n.nspname::text, c.relname::text, a.attname::text, format_type(coalesce(nullif(t.typbasetype, 0), a.atttypid), NULL),
                   coalesce(bt.typcategory, t.typcategory)::text, a.attnotnull
              FROM pg_attribute a
              JOIN pg_class c ON c.oid = a.attrelid
              JOIN pg_namespace n ON n.oid = c.relnamespace
              JOIN pg_type t ON t.oid = a.atttypid
              LEFT JOIN pg_type bt ON bt.oid = nullif(t.typbasetype, 0)
             WHERE a.attnum > 0 AND NOT a.attisdropped
               AND (n.nspname, c.relname) IN (SELECT * FROM unnest($1::text[], $2::text[]))
             ORDER BY 1, 2, a.attnum
            """);
        var unique = new NpgsqlBatchCommand("""
            SELECT n.nspname::text, c.relname::text,
                   array(SELECT a.attname::text FROM unnest(i.indkey::int2[]) k(attnum) JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum),
                   coalesce((to_jsonb(i) ->> 'indnullsnotdistinct')::bool, false)
              FROM pg_index i
              JOIN pg_class c ON c.oid = i.indrelid
              JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
               AND (n.nspname, c.relname) IN (SELECT * FROM unnest($1::text[], $2::text[]))
            """);
        foreach (var command in new[] { columns, unique })
        {
            command.Parameters.Add(new NpgsqlParameter { Value = tables.Select(t => t.Schema).ToArray() });
            command.Parameters.Add(new NpgsqlParameter { Value = tables.Select(t => t.Name).ToArray() });
            batch.BatchCommands.Add(command);
        }

        await using var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            result[(reader.GetString(0), reader.GetString(1))].Columns.Add(
                new ColumnInfo(reader.GetString(2), reader.GetString(3), reader.GetString(4)[0], reader.GetBoolean(5)));
        }

        await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            result[(reader.GetString(0), reader.GetString(1))].UniqueIndexes.Add(new UniqueIndex([.. reader.GetFieldValue<string[]>(2)], reader.GetBoolean(3)));
        }

        return result;
    }
}

/// <summary>A column as discovery checks it: its type (a domain's base type), <c>pg_type.typcategory</c> and NOT NULL.</summary>
internal sealed record ColumnInfo(string Name, string Type, char Category, bool NotNull);

/// <summary>A unique index without predicate or expressions (a primary key or unique constraint is one too).</summary>
internal sealed record UniqueIndex(ImmutableArray<string> Columns, bool NullsNotDistinct);

/// <summary>What discovery knows of one table's columns.</summary>
internal sealed class TableColumns
{
    public List<ColumnInfo> Columns { get; } = [];

    public List<UniqueIndex> UniqueIndexes { get; } = [];
}
