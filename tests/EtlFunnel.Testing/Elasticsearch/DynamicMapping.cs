using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace EtlFunnel.Testing.Elasticsearch;

/// <summary>Why a document was refused at indexing time (Elasticsearch answers such an item 400).</summary>
internal readonly record struct MappingError(string Type, string Reason);

/// <summary>
/// Elasticsearch's dynamic mapping, for one source in one streaming pass: validates the JSON, maps every field not mapped
/// yet (string → text + keyword, integer → long, other number → float, boolean, object → properties) and refuses a value
/// its field's mapping cannot take, as Elasticsearch does (<c>document_parsing_exception</c>). New mappings are applied only
/// when the whole document is accepted.
/// </summary>
internal static class DynamicMapping
{
    private const string ParsingException = "document_parsing_exception";

    /// <summary>How an object mapping treats fields it does not map yet (its <c>dynamic</c> parameter, inherited).</summary>
    private enum Dynamic
    {
        True,
        False,
        Strict,
    }

    /// <summary>
    /// Null when the document was accepted (and the index's mappings now cover it), else the error. <paramref name="tables"/>
    /// caches lookups into the mappings; whoever changes the mappings clears it (this method does when it adds fields).
    /// </summary>
    public static MappingError? Apply(JsonObject mappings, Dictionary<JsonObject, FieldTable> tables, ReadOnlySpan<byte> source, string id)
    {
        var properties = (JsonObject)mappings["properties"]!;
        var dynamic = DynamicOf(mappings, Dynamic.True);
        var reader = new Utf8JsonReader(source, new JsonReaderOptions { MaxDepth = 256 });
        List<(JsonObject Parent, string Name, JsonObject Mapping)>? added = null;
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return new MappingError(ParsingException, "[1:1] failed to parse: the source must be a JSON object");
            }

            var error = WalkObject(ref reader, properties, tables, dynamic, "", id, ref added);
            if (error is not null)
            {
                return error;
            }

            if (reader.Read())
            {
                return new MappingError(ParsingException, $"[1:{reader.TokenStartIndex + 1}] failed to parse: unexpected content after the end of the object");
            }
        }
        catch (JsonException e)
        {
            return new MappingError(ParsingException, $"[1:1] failed to parse: {e.Message}");
        }

        if (added is not null)
        {
            tables.Clear();
            foreach (var (parent, name, mapping) in added)
            {
                parent[name] = mapping;
            }
        }

        return null;
    }

    /// <summary>Reader is on an object's StartObject; returns with it on the matching EndObject.</summary>
    private static MappingError? WalkObject(ref Utf8JsonReader reader, JsonObject? properties, Dictionary<JsonObject, FieldTable> tables, Dynamic dynamic,
        string path, string id, ref List<(JsonObject Parent, string Name, JsonObject Mapping)>? added)
    {
        var table = properties is null ? null : Table(tables, properties, path);
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            string name, fieldPath;
            JsonObject? mapping;
            if (table is not null && table.TryGet(ref reader) is { } known)
            {
                (name, fieldPath, mapping) = (known.Name, known.Path, known.Mapping);
            }
            else
            {
                name = reader.GetString()!;
                fieldPath = path.Length == 0 ? name : path + "." + name;
                mapping = properties?[name] as JsonObject ?? Pending(added, properties, name);
            }

            var column = reader.TokenStartIndex + 1;
            reader.Read();
            if (mapping is null && dynamic != Dynamic.True && reader.TokenType != JsonTokenType.Null)
            {
                if (dynamic == Dynamic.Strict)
                {
                    return new MappingError("strict_dynamic_mapping_exception",
                        $"[1:{column}] mapping set to strict, dynamic introduction of [{name}] within [{(path.Length == 0 ? "_doc" : path)}] is not allowed");
                }

                // dynamic: false keeps the field in _source without mapping or checking it.
                reader.Skip();
                continue;
            }

            var error = WalkValue(ref reader, properties, tables, name, mapping, fieldPath, dynamic, id, ref added);
            if (error is not null)
            {
                return error;
            }
        }

        return null;
    }

    private static FieldTable Table(Dictionary<JsonObject, FieldTable> tables, JsonObject properties, string path)
    {
        if (!tables.TryGetValue(properties, out var table))
        {
            table = new FieldTable(properties, path);
            tables[properties] = table;
        }

        return table;
    }

    /// <summary>Reader is on the value's first token; returns with it on its last token.</summary>
    private static MappingError? WalkValue(ref Utf8JsonReader reader, JsonObject? parent, Dictionary<JsonObject, FieldTable> tables, string name,
        JsonObject? mapping, string path, Dynamic dynamic, string id, ref List<(JsonObject Parent, string Name, JsonObject Mapping)>? added)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.Null:
                return null;
            case JsonTokenType.StartArray:
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    var error = WalkValue(ref reader, parent, tables, name, mapping, path, dynamic, id, ref added);
                    if (error is not null)
                    {
                        return error;
                    }

                    // An array's first non-null value maps the field; the rest must fit that mapping.
                    mapping ??= parent?[name] as JsonObject ?? Pending(added, parent, name);
                }

                return null;
            case JsonTokenType.StartObject:
                if (mapping is null)
                {
                    mapping = new JsonObject { ["properties"] = new JsonObject() };
                    if (parent is not null)
                    {
                        (added ??= []).Add((parent, name, mapping));
                    }
                }
                else if (TypeOf(mapping) is { } concrete && concrete is not ("object" or "nested" or "flattened"))
                {
                    var column = reader.TokenStartIndex + 1;
                    reader.Skip();
                    return FieldError(column, path, concrete, id, "{...}");
                }

                if (mapping["properties"] is not JsonObject inner)
                {
                    inner = [];
                    mapping["properties"] = inner;
                }

                return WalkObject(ref reader, inner, tables, DynamicOf(mapping, dynamic), path, id, ref added);
            default:
                if (mapping is null)
                {
                    var inferred = Infer(ref reader);
                    if (parent is not null && inferred is not null)
                    {
                        (added ??= []).Add((parent, name, inferred));
                    }

                    return null;
                }

                return CheckConcrete(ref reader, mapping, path, name, id);
        }
    }

    private static JsonObject? Pending(List<(JsonObject Parent, string Name, JsonObject Mapping)>? added, JsonObject? parent, string name)
    {
        if (added is null || parent is null)
        {
            return null;
        }

        for (var i = added.Count - 1; i >= 0; i--)
        {
            if (ReferenceEquals(added[i].Parent, parent) && added[i].Name == name)
            {
                return added[i].Mapping;
            }
        }

        return null;
    }

    private static JsonObject? Infer(ref Utf8JsonReader reader) => reader.TokenType switch
    {
        JsonTokenType.String => new JsonObject
        {
            ["type"] = "text",
            ["fields"] = new JsonObject { ["keyword"] = new JsonObject { ["type"] = "keyword", ["ignore_above"] = 256 } },
        },
        JsonTokenType.Number => new JsonObject { ["type"] = reader.TryGetInt64(out _) ? "long" : "float" },
        JsonTokenType.True or JsonTokenType.False => new JsonObject { ["type"] = "boolean" },
        _ => null,
    };

    private static MappingError? CheckConcrete(ref Utf8JsonReader reader, JsonObject mapping, string path, string name, string id)
    {
        var type = TypeOf(mapping);
        var column = reader.TokenStartIndex + 1;
        if (type is null or "object" or "nested")
        {
            return new MappingError(ParsingException,
                $"[1:{column}] object mapping for [{path}] tried to parse field [{name}] as object, but found a concrete value");
        }

        var token = reader.TokenType;
        var ok = type switch
        {
            "long" or "integer" or "short" or "byte" or "unsigned_long" =>
                token == JsonTokenType.Number || (token == JsonTokenType.String && IsNumber(reader.GetString()!, integral: true)),
            // Elasticsearch refuses NaN and infinities in floating-point fields ("supports only finite values").
            "float" or "double" or "half_float" or "scaled_float" =>
                (token == JsonTokenType.Number && reader.TryGetDouble(out var number) && double.IsFinite(number))
                || (token == JsonTokenType.String && IsNumber(reader.GetString()!, integral: false)),
            "boolean" => token is JsonTokenType.True or JsonTokenType.False
                || (token == JsonTokenType.String && reader.GetString() is "true" or "false" or ""),
            _ => true,
        };
        return ok ? null : FieldError(column, path, type, id, Preview(ref reader));
    }

    private static MappingError FieldError(long column, string path, string type, string id, string preview) =>
        new(ParsingException, $"[1:{column}] failed to parse field [{path}] of type [{type}] in document with id '{id}'. Preview of field's value: '{preview}'");

    private static string Preview(ref Utf8JsonReader reader) =>
        reader.TokenType == JsonTokenType.String ? reader.GetString()! : Encoding.UTF8.GetString(reader.ValueSpan);

    private static bool IsNumber(string text, bool integral) =>
        double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var value)
        && double.IsFinite(value) && (!integral || Math.Abs(value) < 9.3e18);

    private static Dynamic DynamicOf(JsonObject mapping, Dynamic inherited) => mapping["dynamic"] switch
    {
        JsonValue v when v.TryGetValue<bool>(out var b) => b ? Dynamic.True : Dynamic.False,
        JsonValue v when v.TryGetValue<string>(out var text) => text switch
        {
            "false" => Dynamic.False,
            "strict" => Dynamic.Strict,
            _ => Dynamic.True,
        },
        _ => inherited,
    };

    private static string? TypeOf(JsonObject mapping) =>
        mapping["type"] is JsonValue type && type.TryGetValue<string>(out var name) ? name : null;
}

/// <summary>One object level of an index's mappings, looked up by a property name straight from the reader without allocating.</summary>
internal sealed class FieldTable
{
    private readonly Dictionary<string, MappedField>.AlternateLookup<ReadOnlySpan<char>> _lookup;

    public FieldTable(JsonObject properties, string path)
    {
        var fields = new Dictionary<string, MappedField>(StringComparer.Ordinal);
        foreach (var (name, mapping) in properties)
        {
            if (mapping is JsonObject m)
            {
                fields[name] = new MappedField(name, path.Length == 0 ? name : path + "." + name, m);
            }
        }

        _lookup = fields.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <summary>The mapped field the reader's current property name names, or null (also for names too long to look up on the stack).</summary>
    public MappedField? TryGet(ref Utf8JsonReader reader)
    {
        if (reader.HasValueSequence || reader.ValueSpan.Length > 128)
        {
            return null;
        }

        Span<char> name = stackalloc char[128];
        var length = reader.CopyString(name);
        return _lookup.TryGetValue(name[..length], out var field) ? field : null;
    }
}

/// <summary>A mapped field: its name, its dotted path and its mapping.</summary>
internal sealed record MappedField(string Name, string Path, JsonObject Mapping);
