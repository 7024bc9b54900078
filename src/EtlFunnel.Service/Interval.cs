using System.Globalization;

namespace EtlFunnel.Service;

/// <summary>Parses schedule intervals written as <c>30s</c>, <c>5m</c>, <c>1h</c>, <c>1h30m</c>, <c>1h30m15s</c>.</summary>
internal static class Interval
{
    private const string Expected = "write a whole number followed by a unit, units in the order h, m, s, e.g. 30s, 5m, 1h, 1h30m";

    /// <summary>Parses <paramref name="text"/>; <paramref name="origin"/> (e.g. <c>flows.yaml(12,5)</c> or <c>--interval</c>) prefixes the error.</summary>
    public static TimeSpan Parse(string? text, string origin)
    {
        if (TryParse(text, out var value, out var error))
        {
            return value;
        }

        throw new FormatException($"{origin}: {error}");
    }

    /// <summary>Parses <paramref name="text"/> or says what is wrong with it.</summary>
    public static bool TryParse(string? text, out TimeSpan value, out string error)
    {
        value = TimeSpan.Zero;
        error = string.Empty;
        var s = text?.Trim() ?? string.Empty;
        if (s.Length == 0)
        {
            error = $"the interval is empty: {Expected}.";
            return false;
        }

        // Units must appear at most once and in descending order, so "5m1h" and "1m1m" are refused
        // rather than silently summed.
        var lastRank = -1;
        long totalSeconds = 0;
        var i = 0;
        while (i < s.Length)
        {
            var start = i;
            while (i < s.Length && char.IsAsciiDigit(s[i]))
            {
                i++;
            }

            if (i == start)
            {
                error = $"invalid interval '{text}': expected a number at position {start + 1}; {Expected}.";
                return false;
            }

            if (i == s.Length)
            {
                error = $"invalid interval '{text}': the number '{s[start..]}' has no unit; {Expected}.";
                return false;
            }

            if (s[i] is '.' or ',')
            {
                error = $"invalid interval '{text}': fractions are not accepted, combine units instead (1h30m, not 1.5h); {Expected}.";
                return false;
            }

            var unit = char.ToLowerInvariant(s[i]);
            var (rank, seconds) = unit switch
            {
                'h' => (0, 3600L),
                'm' => (1, 60L),
                's' => (2, 1L),
                _ => (-1, 0L),
            };
            if (rank < 0)
            {
                error = $"invalid interval '{text}': unknown unit '{s[i]}'; {Expected}.";
                return false;
            }

            if (rank <= lastRank)
            {
                error = $"invalid interval '{text}': unit '{s[i]}' is repeated or out of order; {Expected}.";
                return false;
            }

            if (!long.TryParse(s.AsSpan(start, i - start), NumberStyles.None, CultureInfo.InvariantCulture, out var n)
                || n > TimeSpan.FromDays(366).TotalSeconds / seconds)
            {
                error = $"invalid interval '{text}': '{s[start..(i + 1)]}' is too large (at most 366 days).";
                return false;
            }

            lastRank = rank;
            totalSeconds += n * seconds;
            i++;
        }

        if (totalSeconds == 0)
        {
            error = $"invalid interval '{text}': it must be longer than zero; {Expected}.";
            return false;
        }

        if (totalSeconds > TimeSpan.FromDays(366).TotalSeconds)
        {
            error = $"invalid interval '{text}': it is too large (at most 366 days).";
            return false;
        }

        value = TimeSpan.FromSeconds(totalSeconds);
        return true;
    }

    /// <summary>Formats an interval the way <see cref="Parse"/> reads it (e.g. <c>1h30m</c>).</summary>
    public static string Format(TimeSpan interval)
    {
        var total = (long)interval.TotalSeconds;
        var h = total / 3600;
        var m = total % 3600 / 60;
        var sec = total % 60;
        var parts = new List<string>(3);
        if (h > 0)
        {
            parts.Add(h.ToString(CultureInfo.InvariantCulture) + "h");
        }

        if (m > 0)
        {
            parts.Add(m.ToString(CultureInfo.InvariantCulture) + "m");
        }

        if (sec > 0 || parts.Count == 0)
        {
            parts.Add(sec.ToString(CultureInfo.InvariantCulture) + "s");
        }

        return string.Concat(parts);
    }
}
