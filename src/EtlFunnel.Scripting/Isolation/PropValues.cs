using System.Collections;
using System.Globalization;
using System.Text.Json;

namespace EtlFunnel.Scripting.Isolation;

/// <summary>
/// ReplicaProps across the process boundary: in the worker, a hook's values become JSON (only JSON scalars, lists
/// and string-keyed dictionaries of them; anything else is the hook's error); in the host, JSON becomes plain
/// values again (int, long, double, string, bool, null, <see cref="List{T}"/>, <see cref="Dictionary{TKey,TValue}"/>),
/// so no object a hook made ever reaches the host.
/// </summary>
internal static class PropValues
{
    private const int MaxDepth = 32;

    public static Dictionary<string, JsonElement> ToJson(IDictionary<string, object?>? props)
    {
        var result = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        if (props is null)
        {
            return result;
        }

        foreach (var (key, value) in props.ToList())
        {
            if (key is null)
            {
                throw new ArgumentException("ReplicaProps has a null key");
            }

            using var buffer = new MemoryStream();
            using (var writer = new Utf8JsonWriter(buffer))
            {
                Write(writer, value, $"ReplicaProps[\"{key}\"]", 0);
            }

            using var document = JsonDocument.Parse(buffer.ToArray());
            result[key] = document.RootElement.Clone();
        }

        return result;
    }

    public static Dictionary<string, object?> FromJson(Dictionary<string, JsonElement>? props)
    {
        var result = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (key, value) in props ?? [])
        {
            result[key] = FromJson(value);
        }

        return result;
    }

    public static object? FromJson(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Null or JsonValueKind.Undefined => null,
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.String => value.GetString(),
        JsonValueKind.Number when value.TryGetInt32(out var i) => i,
        JsonValueKind.Number when value.TryGetInt64(out var l) => l,
        JsonValueKind.Number => value.GetDouble(),
        JsonValueKind.Array => value.EnumerateArray().Select(FromJson).ToList(),
        JsonValueKind.Object => value.EnumerateObject().ToDictionary(p => p.Name, p => FromJson(p.Value), StringComparer.Ordinal),
        _ => null,
    };

    private static void Write(Utf8JsonWriter writer, object? value, string path, int depth)
    {
        if (depth > MaxDepth)
        {
            throw new ArgumentException($"{path} nests deeper than {MaxDepth} levels");
        }

        switch (value)
        {
            case null:
                writer.WriteNullValue();
                break;
            case string s:
                writer.WriteStringValue(s);
                break;
            case bool b:
                writer.WriteBooleanValue(b);
                break;
            case int or long or short or byte or sbyte or ushort or uint:
                writer.WriteNumberValue(Convert.ToInt64(value, CultureInfo.InvariantCulture));
                break;
            case ulong ul:
                writer.WriteNumberValue(ul);
                break;
            case double d when double.IsFinite(d):
                writer.WriteNumberValue(d);
                break;
            case float f when float.IsFinite(f):
                writer.WriteNumberValue(f);
                break;
            case decimal m:
                writer.WriteNumberValue(m);
                break;
            case JsonElement e:
                e.WriteTo(writer);
                break;
            case IDictionary dictionary:
                writer.WriteStartObject();
                foreach (DictionaryEntry entry in dictionary)
                {
                    if (entry.Key is not string key)
                    {
                        throw new ArgumentException($"{path} is a dictionary with a {entry.Key?.GetType().Name ?? "null"} key; only string keys are JSON");
                    }

                    writer.WritePropertyName(key);
                    Write(writer, entry.Value, $"{path}[\"{key}\"]", depth + 1);
                }

                writer.WriteEndObject();
                break;
            case IEnumerable<KeyValuePair<string, object?>> pairs:
                writer.WriteStartObject();
                foreach (var (key, item) in pairs)
                {
                    writer.WritePropertyName(key);
                    Write(writer, item, $"{path}[\"{key}\"]", depth + 1);
                }

                writer.WriteEndObject();
                break;
            case IEnumerable list:
                writer.WriteStartArray();
                var index = 0;
                foreach (var item in list)
                {
                    Write(writer, item, $"{path}[{index++}]", depth + 1);
                }

                writer.WriteEndArray();
                break;
            default:
                throw new ArgumentException(
                    $"{path} is a {value.GetType().Name}; ReplicaProps values must be JSON values: numbers, strings, booleans, null, lists and string-keyed dictionaries of those");
        }
    }
}
