using System.Globalization;
using EtlFunnel.Sync.Postgres;

namespace EtlFunnel.Sync.Runtime;

/// <summary>How a watermark is kept for a column type (the planner's <c>WatermarkKinds</c> accepts the same type names).</summary>
internal enum WatermarkKind
{
    /// <summary>timestamp, timestamptz, date: <see cref="Watermark.Value"/> is microseconds since 1970-01-01 00:00 (UTC for timestamptz, nominal otherwise).</summary>
    Time,

    /// <summary>smallint, integer, bigint: the integer.</summary>
    Integer,

    /// <summary>numeric: PostgreSQL's numeric text (independent of session settings).</summary>
    Numeric,

    /// <summary>real, double precision: the shortest text that round-trips the double.</summary>
    Float,

    /// <summary>text-like types and uuid: the value's text.</summary>
    Text,
}

/// <summary>
/// A typed watermark: never the session's text form of a value (DateStyle, TimeZone, extra_float_digits), so it reads back the
/// same under any settings. <see cref="Type"/> is the column's type when it was taken; a watermark of another type is not used.
/// </summary>
internal sealed record Watermark(WatermarkKind Kind, string Value, string Type)
{
    /// <summary>The kind for a column whose base type is <paramref name="baseType"/> (format_type without modifier) in <c>typcategory</c> <paramref name="category"/>.</summary>
    public static WatermarkKind? KindOf(string baseType, char category) => baseType switch
    {
        "timestamp without time zone" or "timestamp with time zone" or "date" => WatermarkKind.Time,
        "smallint" or "integer" or "bigint" => WatermarkKind.Integer,
        "numeric" => WatermarkKind.Numeric,
        "real" or "double precision" => WatermarkKind.Float,
        "uuid" => WatermarkKind.Text,
        _ when category == 'S' => WatermarkKind.Text,
        _ => null,
    };

    /// <summary>
    /// The incremental filter: rows above this watermark minus the margin, and rows whose column is NULL (they have no place
    /// in the order, so every incremental run reads them again rather than never).
    /// </summary>
    public string Filter(string column, string baseType, TimeSpan timeMargin, decimal numericMargin)
    {
        var c = Sql.Ident(column);
        var bound = Kind switch
        {
            WatermarkKind.Time => $"{Epoch(baseType)} + interval '1 microsecond' * {long.Parse(Value, CultureInfo.InvariantCulture).ToString(CultureInfo.InvariantCulture)}" +
                                  $" - interval '{Microseconds(timeMargin).ToString(CultureInfo.InvariantCulture)} microseconds'",
            WatermarkKind.Integer => $"{long.Parse(Value, CultureInfo.InvariantCulture).ToString(CultureInfo.InvariantCulture)}::int8 - {decimal.Ceiling(numericMargin).ToString(CultureInfo.InvariantCulture)}::int8",
            WatermarkKind.Numeric => $"{Sql.Literal(Value)}::numeric - {numericMargin.ToString(CultureInfo.InvariantCulture)}::numeric",
            WatermarkKind.Float => $"{Sql.Literal(Value)}::float8 - {numericMargin.ToString(CultureInfo.InvariantCulture)}::float8",
            _ => $"{Sql.Literal(Value)}::{Type}",
        };
        return $"({c} > ({bound}) OR {c} IS NULL)";
    }

    /// <summary>The SQL that reads the column's largest value as this kind's <see cref="Value"/>, over rows where <paramref name="where"/> holds.</summary>
    public static string MaxSql(WatermarkKind kind, string column, string table, string baseType, string where)
    {
        // ORDER BY names the table's column: an output column of the same name (the text form) would sort as text.
        var c = Sql.Ident(column);
        var order = $"ORDER BY {table}.{c} DESC LIMIT 1";
        return kind switch
        {
            WatermarkKind.Time => $"SELECT ((extract(epoch FROM {c}{(baseType == "date" ? "::timestamp" : "")})) * 1000000)::int8::text AS watermark FROM {table} WHERE {where} AND isfinite({c}) {order}",
            WatermarkKind.Integer => $"SELECT {c}::int8::text AS watermark FROM {table} WHERE {where} AND {c} IS NOT NULL {order}",
            // NaN and infinities sort above every number and would freeze the watermark; rows holding them are read by every run instead.
            WatermarkKind.Numeric => $"SELECT {c}::text AS watermark FROM {table} WHERE {where} AND {c} IS NOT NULL AND {c}::text NOT IN ('NaN', 'Infinity', '-Infinity') {order}",
            WatermarkKind.Float => $"SELECT float8send({c}::float8) AS watermark FROM {table} WHERE {where} AND {c} < 'Infinity' AND {c} > '-Infinity' {order}",
            _ => $"SELECT {c}::text AS watermark FROM {table} WHERE {where} AND {c} IS NOT NULL {order}",
        };
    }

    /// <summary>
    /// The newest value a time watermark may take: the source's <c>now()</c> plus the margin. A <c>timestamp</c> or <c>date</c>
    /// has no zone, so it may be ahead of UTC by up to 14 hours (UTC+14) before it counts as "in the future".
    /// </summary>
    public static string CapSql(string baseType, TimeSpan margin) =>
        (baseType == "timestamp with time zone" ? "now()" : "(now() AT TIME ZONE 'UTC') + interval '14 hours'") +
        $" + interval '{Microseconds(margin).ToString(CultureInfo.InvariantCulture)} microseconds'";

    /// <summary>A float watermark from <c>float8send</c>'s eight big-endian bytes: exact, whatever <c>extra_float_digits</c> says.</summary>
    public static string FloatText(byte[] float8Bytes) =>
        BitConverter.Int64BitsToDouble(System.Buffers.Binary.BinaryPrimitives.ReadInt64BigEndian(float8Bytes)).ToString("R", CultureInfo.InvariantCulture);

    private static string Epoch(string baseType) => baseType == "timestamp with time zone" ? "'epoch'::timestamptz" : "'epoch'::timestamp";

    private static long Microseconds(TimeSpan t) => t.Ticks / TimeSpan.TicksPerMicrosecond;
}
