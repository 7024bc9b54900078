using System.Text.Json;

namespace EtlFunnel.Orchestration.Plans;

/// <summary>A plan's props (a JSON object) as the CLR values the sync engine receives; the planner validates exactly these.</summary>
public static class PlanProps
{
    /// <summary>Numbers become <see cref="long"/> (or <see cref="double"/> with a fraction), strings, booleans and nulls stay; arrays and objects become their JSON text.</summary>
    public static Dictionary<string, object?> ToValues(JsonElement props)
    {
        var result = new Dictionary<string, object?>(StringComparer.Ordinal);
        if (props.ValueKind != JsonValueKind.Object)
        {
            return result;
        }

        foreach (var property in props.EnumerateObject())
        {
            var v = property.Value;
            result[property.Name] = v.ValueKind switch
            {
                JsonValueKind.Number when v.TryGetInt64(out var l) => l,
                JsonValueKind.Number => v.GetDouble(),
                JsonValueKind.String => v.GetString(),
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                JsonValueKind.Null => null,
                _ => v.GetRawText(),
            };
        }

        return result;
    }
}
