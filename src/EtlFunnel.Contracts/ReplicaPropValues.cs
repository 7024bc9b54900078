using System;
using System.Collections.Generic;
using System.Globalization;

namespace EtlFunnel.Execution.Models;

/// <summary>Reads the sync engine's replica props (<see cref="ReplicaPropKeys"/>) the one way both the planner and the engine do, so a plan that validates also runs.</summary>
public static class ReplicaPropValues
{
    /// <summary>The props the sync engine reads, each a positive integer.</summary>
    public static IReadOnlyList<string> EngineKeys { get; } =
        [ReplicaPropKeys.BatchSize, ReplicaPropKeys.BatchBytes, ReplicaPropKeys.MaxInFlight, ReplicaPropKeys.FetchSize];

    /// <summary>
    /// <paramref name="key"/> as a positive integer (an integral number of any CLR type, a double or decimal without fraction,
    /// or a string holding one); <paramref name="fallback"/> when absent or null. Throws <see cref="FormatException"/> naming the key and value otherwise.
    /// </summary>
    public static int PositiveInt(IReadOnlyDictionary<string, object?> props, string key, int fallback)
    {
        ArgumentNullException.ThrowIfNull(props);
        if (!props.TryGetValue(key, out var raw) || raw is null)
        {
            return fallback;
        }

        long? value = raw switch
        {
            string s => Parse(s),
            double d => Integral(d),
            float f => Integral(f),
            decimal m when m == decimal.Truncate(m) && m is >= long.MinValue and <= long.MaxValue => (long)m,
            ulong ul => ul <= long.MaxValue ? (long)ul : null,
            sbyte or byte or short or ushort or int or uint or long => Convert.ToInt64(raw, CultureInfo.InvariantCulture),
            _ => null,
        };
        return value is { } v && v > 0 && v <= int.MaxValue
            ? (int)v
            : throw new FormatException($"prop '{key}' must be a positive whole number (at most {int.MaxValue}), not {Describe(raw)}");
    }

    private static long? Parse(string? s) =>
        long.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l) ? l : null;

    private static long? Integral(double d) =>
        double.IsFinite(d) && d == Math.Truncate(d) && Math.Abs(d) <= long.MaxValue ? (long)d : null;

    private static string Describe(object raw) => raw switch
    {
        string s => $"the string \"{s}\"",
        bool b => b ? "true" : "false",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => raw.GetType().Name,
    };
}
