using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;

namespace EtlFunnel.Orchestration.Plans;

/// <summary>
/// The window an incremental run re-reads behind the watermark: a duration for date/time columns (<c>5m</c>, <c>1h30m</c>,
/// <c>90s</c>) or an amount for numeric ones (<c>1000</c>, <c>0.5</c>). Written in plans and configs as that text.
/// </summary>
[JsonConverter(typeof(Converter))]
public sealed partial record IncrementalMargin
{
    /// <summary>The default for date/time columns.</summary>
    public static IncrementalMargin DefaultTime { get; } = new() { Time = TimeSpan.FromMinutes(5) };

    /// <summary>The default for numeric columns.</summary>
    public static IncrementalMargin DefaultAmount { get; } = new() { Amount = 1000 };

    /// <summary>The duration, for a date/time column; <c>null</c> for an amount.</summary>
    public TimeSpan? Time { get; init; }

    /// <summary>The amount, for a numeric column; <c>null</c> for a duration.</summary>
    public decimal? Amount { get; init; }

    /// <summary>Parses <c>5m</c> / <c>1h30m</c> / <c>90s</c> / <c>250ms</c> (a duration) or <c>1000</c> / <c>0.5</c> (an amount); <c>0</c> is a zero amount.</summary>
    public static bool TryParse(string? text, out IncrementalMargin? margin)
    {
        margin = null;
        var s = text?.Trim() ?? "";
        if (decimal.TryParse(s, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var amount))
        {
            margin = new IncrementalMargin { Amount = amount };
            return true;
        }

        var m = DurationPattern().Match(s);
        if (!m.Success || s.Length == 0)
        {
            return false;
        }

        long Part(string group) => m.Groups[group].Success ? long.Parse(m.Groups[group].Value, CultureInfo.InvariantCulture) : 0;
        try
        {
            var time = checked(TimeSpan.FromHours(Part("h")) + TimeSpan.FromMinutes(Part("m")) + TimeSpan.FromSeconds(Part("s")) + TimeSpan.FromMilliseconds(Part("ms")));
            margin = new IncrementalMargin { Time = time };
            return true;
        }
        catch (Exception ex) when (ex is OverflowException or ArgumentOutOfRangeException)
        {
            return false;
        }
    }

    /// <summary>The margin as <see cref="TryParse"/> reads it: <c>1h30m</c>, <c>0s</c>, <c>1000</c>.</summary>
    public override string ToString()
    {
        if (Amount is { } a)
        {
            return a.ToString(CultureInfo.InvariantCulture);
        }

        var t = Time ?? TimeSpan.Zero;
        var sb = new StringBuilder();
        if ((long)t.TotalHours > 0)
        {
            sb.Append(((long)t.TotalHours).ToString(CultureInfo.InvariantCulture)).Append('h');
        }

        if (t.Minutes > 0)
        {
            sb.Append(t.Minutes.ToString(CultureInfo.InvariantCulture)).Append('m');
        }

        if (t.Seconds > 0 || (sb.Length == 0 && t.Milliseconds == 0))
        {
            sb.Append(t.Seconds.ToString(CultureInfo.InvariantCulture)).Append('s');
        }

        if (t.Milliseconds > 0)
        {
            sb.Append(t.Milliseconds.ToString(CultureInfo.InvariantCulture)).Append("ms");
        }

        return sb.ToString();
    }

    [GeneratedRegex(@"^(?:(?<h>\d+)h)?(?:(?<m>\d+)m(?!s))?(?:(?<s>\d+)s)?(?:(?<ms>\d+)ms)?$", RegexOptions.CultureInvariant)]
    private static partial Regex DurationPattern();

    internal sealed class Converter : JsonConverter<IncrementalMargin>
    {
        public override IncrementalMargin Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            var text = reader.TokenType == JsonTokenType.Number
                ? reader.GetDecimal().ToString(CultureInfo.InvariantCulture)
                : reader.GetString();
            return TryParse(text, out var margin) ? margin! : throw new JsonException($"'{text}' is not an incremental margin like \"5m\" or \"1000\".");
        }

        public override void Write(Utf8JsonWriter writer, IncrementalMargin value, JsonSerializerOptions options) => writer.WriteStringValue(value.ToString());
    }
}
