namespace EtlFunnel.Sync.Postgres;

/// <summary>How a column is read from the binary COPY stream and written into the document.</summary>
internal enum ColumnKind
{
    Int16,
    Int32,
    Int64,
    Float4,
    Float8,
    Bool,
    Text,
    Uuid,
    Bytea,

    /// <summary>Binary numeric (base-10000 digits), written as PostgreSQL's own text of it.</summary>
    Numeric,

    /// <summary>Binary timestamptz (microseconds since 2000-01-01 UTC), written as <c>to_json</c> writes it in UTC.</summary>
    TimestampTz,

    /// <summary>Binary timestamp without time zone, written as <c>to_json</c> writes it.</summary>
    Timestamp,

    /// <summary>Binary date (days since 2000-01-01), written as <c>to_json</c> writes it.</summary>
    Date,

    /// <summary>Read as text that is already JSON (PostgreSQL's own <c>to_json</c>), written as-is.</summary>
    RawJson,
}

internal sealed record ColumnInfo(string Name, string TypeName, ColumnKind Kind)
{
    /// <summary>The SELECT-list expression that yields this column in the shape <see cref="Kind"/> reads.</summary>
    public string Expression => Kind switch
    {
        ColumnKind.Text => $"{Sql.Ident(Name)}::text",
        // json as stored: a cast to jsonb fails the whole COPY on values jsonb cannot hold (\u0000, a lone surrogate,
        // 1e1000000); the writer turns its line breaks (only ever between tokens) into spaces.
        ColumnKind.RawJson when TypeName is "jsonb" or "json" => $"{Sql.Ident(Name)}::text",
        ColumnKind.RawJson => $"to_json({Sql.Ident(Name)})::text",
        _ => Sql.Ident(Name),
    };

    public static ColumnKind KindOf(string typeName) => typeName switch
    {
        "int2" => ColumnKind.Int16,
        "int4" => ColumnKind.Int32,
        "int8" => ColumnKind.Int64,
        "float4" => ColumnKind.Float4,
        "float8" => ColumnKind.Float8,
        "bool" => ColumnKind.Bool,
        "text" or "varchar" or "name" or "citext" or "char" => ColumnKind.Text,
        "uuid" => ColumnKind.Uuid,
        "bytea" => ColumnKind.Bytea,
        // Formatted here rather than by to_json() on the server: to_json looks the type up for every value, which cost
        // PostgreSQL about a third of its COPY time on the sync benchmark's table.
        "numeric" => ColumnKind.Numeric,
        "timestamptz" => ColumnKind.TimestampTz,
        "timestamp" => ColumnKind.Timestamp,
        "date" => ColumnKind.Date,
        _ => ColumnKind.RawJson,
    };
}

/// <summary>A leaf relation (the table itself, or one leaf partition) and its heap size in blocks at the run's snapshot.</summary>
internal sealed record LeafRelation(string QualifiedName, long Blocks, long FileNode = 0);

/// <summary>What the engine knows about one source table, taken inside the run's snapshot.</summary>
internal sealed record TableLayout(
    string QualifiedName,
    IReadOnlyList<ColumnInfo> Columns,
    IReadOnlyList<string> KeyColumns,
    IReadOnlyList<LeafRelation> Leaves)
{
    /// <summary>Leaf partitions that are foreign tables: not read (no heap blocks to partition), reported as a warning.</summary>
    public IReadOnlyList<string> ForeignLeaves { get; init; } = [];
}

internal static class Sql
{
    public static string Ident(string name) => "\"" + name.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    public static string Literal(string value) => "'" + value.Replace("'", "''", StringComparison.Ordinal) + "'";

    public static string Qualified(string schema, string table) => Ident(schema) + "." + Ident(table);
}
