using System.Globalization;
using System.Text;
using System.Text.Json;
using EtlFunnel.Sync.Postgres;

namespace EtlFunnel.Sync.Cdc;

/// <summary>A source column as the change stream sees it: its name, how its snapshot document value is made, and its SQL type.</summary>
internal sealed record CdcColumn(string Name, ColumnKind Kind, string TypeName, char Category, string SqlType, bool HasJsonCast)
{
    /// <summary>Values PostgreSQL must turn into JSON itself (arrays, composites, types with a cast to json); json and jsonb are written as they come.</summary>
    public bool NeedsServer => Kind == ColumnKind.RawJson && TypeName is not ("json" or "jsonb") && (Category is 'A' or 'C' || HasJsonCast);
}

/// <summary>
/// pgoutput sends column values as PostgreSQL's text output (the walsender runs with TimeZone UTC and DateStyle ISO); this
/// writes each as the same JSON the snapshot path writes for that column (see docs/sync.md's type table):
/// numbers as numbers (floats re-formatted as the binary path does), NaN/Infinity as strings, bytea as PostgreSQL's hex text, timestamps in
/// to_json's ISO form. Values only PostgreSQL can render (json, arrays, composites) return false and go to the server.
/// </summary>
internal static class PgTextJson
{
    public static bool TryWrite(Utf8JsonWriter w, CdcColumn column, string text)
    {
        switch (column.Kind)
        {
            case ColumnKind.Int16:
            case ColumnKind.Int32:
            case ColumnKind.Int64:
                w.WriteRawValue(text, skipInputValidation: true);
                return true;
            case ColumnKind.Float4:
                {
                    var v = float.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture);
                    if (!float.IsFinite(v))
                    {
                        w.WriteStringValue(float.IsNaN(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity");
                    }
                    else
                    {
                        w.WriteRawValue(v.ToString(CultureInfo.InvariantCulture), skipInputValidation: true);
                    }

                    return true;
                }

            case ColumnKind.Float8:
                {
                    var v = double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture);
                    if (!double.IsFinite(v))
                    {
                        w.WriteStringValue(double.IsNaN(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity");
                    }
                    else
                    {
                        w.WriteRawValue(v.ToString(CultureInfo.InvariantCulture), skipInputValidation: true);
                    }

                    return true;
                }

            case ColumnKind.Numeric:
                if (text is "NaN" or "Infinity" or "-Infinity")
                {
                    w.WriteStringValue(text);
                }
                else
                {
                    w.WriteRawValue(text, skipInputValidation: true);
                }

                return true;
            case ColumnKind.Bool:
                w.WriteBooleanValue(text == "t");
                return true;
            case ColumnKind.Text:
            case ColumnKind.Uuid:
            case ColumnKind.Date:
                w.WriteStringValue(text);
                return true;
            case ColumnKind.Bytea:
                if (!text.StartsWith("\\x", StringComparison.Ordinal))
                {
                    return false;
                }

                // PostgreSQL's hex text as a JSON string ("\\x00ff"), as the snapshot path and to_json write it.
                w.WriteStringValue(text);
                return true;
            case ColumnKind.Timestamp:
                if (text.EndsWith(" BC", StringComparison.Ordinal))
                {
                    return false;
                }

                w.WriteStringValue(IsInfinity(text) ? text : ReplaceFirstSpace(text));
                return true;
            case ColumnKind.TimestampTz:
                {
                    if (IsInfinity(text))
                    {
                        w.WriteStringValue(text);
                        return true;
                    }

                    if (text.EndsWith(" BC", StringComparison.Ordinal) || ZoneStart(text) is not { } zone || text.Length - zone is not (3 or 6))
                    {
                        return false;
                    }

                    // "2024-02-29 11:14:15.5+00" -> "2024-02-29T11:14:15.5+00:00" (to_json's XSD form).
                    var iso = ReplaceFirstSpace(text);
                    w.WriteStringValue(text.Length - zone == 3 ? iso + ":00" : iso);
                    return true;
                }

            default:
                if (column.TypeName is "jsonb" or "json")
                {
                    WriteJsonText(w, text);
                    return true;
                }

                if (column.NeedsServer)
                {
                    return false;
                }

                // to_json of any other type is its text output as a JSON string (enums, char(n), time, interval, inet, ranges, ...).
                w.WriteStringValue(text);
                return true;
        }
    }

    /// <summary>JSON text made by PostgreSQL, written as the snapshot path does: as is, or re-serialised when it holds line breaks.</summary>
    public static void WriteJsonText(Utf8JsonWriter w, string json)
    {
        // As the snapshot path writes it (JsonRowWriter): the value as stored, a line break (only ever between tokens of
        // valid JSON text) turned into a space so the document stays on one NDJSON line.
        w.WriteRawValue(json.AsSpan().IndexOfAny('\n', '\r') < 0 ? json : json.Replace('\n', ' ').Replace('\r', ' '), skipInputValidation: true);
    }

    private static bool IsInfinity(string text) => text is "infinity" or "-infinity";

    private static string ReplaceFirstSpace(string text)
    {
        var space = text.IndexOf(' ', StringComparison.Ordinal);
        return space < 0 ? text : string.Concat(text.AsSpan(0, space), "T", text.AsSpan(space + 1));
    }

    // The "+HH" / "-HH:MM" at the end of a timestamptz's text, after the time part.
    private static int? ZoneStart(string text)
    {
        var space = text.IndexOf(' ', StringComparison.Ordinal);
        if (space < 0)
        {
            return null;
        }

        var at = text.AsSpan(space).LastIndexOfAny('+', '-');
        return at < 0 ? null : space + at;
    }
}
