namespace EtlFunnel.Orchestration.Discovery;

/// <summary>How the sync engine keeps a watermark for an incremental column (the engine's <c>Watermark</c> type maps the same type names).</summary>
internal enum WatermarkKind
{
    /// <summary>timestamp, timestamptz, date: epoch microseconds; the margin is a duration.</summary>
    Time,

    /// <summary>smallint, integer, bigint, numeric, real, double precision: the exact number; the margin is an amount.</summary>
    Number,

    /// <summary>text-like types and uuid: the value's text; no margin.</summary>
    Text,
}

internal static class WatermarkKinds
{
    /// <summary>The kind for a column of <paramref name="type"/> (<c>format_type</c> without modifier) and <c>pg_type.typcategory</c>, or <c>null</c> when none fits.</summary>
    public static WatermarkKind? Of(string type, char category) => type switch
    {
        "timestamp without time zone" or "timestamp with time zone" or "date" => WatermarkKind.Time,
        "smallint" or "integer" or "bigint" or "numeric" or "real" or "double precision" => WatermarkKind.Number,
        "uuid" => WatermarkKind.Text,
        _ when category == 'S' => WatermarkKind.Text,
        _ => null,
    };
}
