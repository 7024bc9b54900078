using System.Globalization;
using System.Text.Json;

namespace EtlFunnel.Orchestration.Planning;

/// <summary>Reads the integer props the planner relies on, whatever integral type the hook used.</summary>
internal static class ReplicaValue
{
    public static bool TryGetInt(object? value, out int result)
    {
        long? n = value switch
        {
            int i => i,
            long l => l,
            short s => s,
            byte b => b,
            sbyte sb => sb,
            ushort us => us,
            uint ui => ui,
            ulong ul when ul <= long.MaxValue => (long)ul,
            JsonElement { ValueKind: JsonValueKind.Number } e when e.TryGetInt64(out var l) => l,
            _ => null,
        };
        result = n is >= int.MinValue and <= int.MaxValue ? (int)n.Value : 0;
        return n is >= int.MinValue and <= int.MaxValue;
    }

    public static string Describe(object? value) => value switch
    {
        null => "null",
        string s => $"the string \"{s}\"",
        IFormattable f => $"{value.GetType().Name} {f.ToString(null, CultureInfo.InvariantCulture)}",
        _ => value.GetType().Name,
    };
}
