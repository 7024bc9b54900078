using System.Globalization;
using System.Text.Json;
using EtlFunnel.Execution.Models;

namespace EtlFunnel.Sync.Runtime;

/// <summary>The batching knobs a plan can set per replica (see <see cref="ReplicaPropKeys"/>).</summary>
internal sealed record ReplicaProps(int BatchSize, int BatchBytes, int MaxInFlight)
{
    public const int DefaultBatchSize = 5000;
    public const int DefaultBatchBytes = 5 * 1024 * 1024;
    public const int DefaultMaxInFlight = 2;

    public static ReplicaProps From(IReadOnlyDictionary<string, object?> props, string replica) => new(
        Get(props, ReplicaPropKeys.BatchSize, DefaultBatchSize, replica),
        Get(props, ReplicaPropKeys.BatchBytes, DefaultBatchBytes, replica),
        Get(props, ReplicaPropKeys.MaxInFlight, DefaultMaxInFlight, replica));

    private static int Get(IReadOnlyDictionary<string, object?> props, string key, int fallback, string replica)
    {
        if (!props.TryGetValue(key, out var raw) || raw is null)
        {
            return fallback;
        }

        long? value = raw switch
        {
            JsonElement { ValueKind: JsonValueKind.Number } e when e.TryGetInt64(out var l) => l,
            JsonElement { ValueKind: JsonValueKind.String } e when long.TryParse(e.GetString(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var l) => l,
            string s when long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var l) => l,
            IConvertible c when raw is not string and not bool => TryConvert(c),
            _ => null,
        };
        if (value is not { } v || v <= 0 || v > int.MaxValue)
        {
            throw new SyncConfigurationException($"Replica '{replica}': prop '{key}' must be a positive integer, got '{raw}'.");
        }

        return (int)v;
    }

    private static long? TryConvert(IConvertible c)
    {
        try
        {
            return c.ToInt64(CultureInfo.InvariantCulture);
        }
        catch (Exception ex) when (ex is FormatException or InvalidCastException or OverflowException)
        {
            return null;
        }
    }
}
