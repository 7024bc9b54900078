using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace EtlFunnel.Orchestration.Plans;

/// <summary>Writes and reads plans as JSON (camelCase; partitions as <c>"n/d"</c> strings).</summary>
public static class PlanJson
{
    /// <summary>The options plans are written with.</summary>
    public static JsonSerializerOptions Options { get; } = CreateOptions();

    /// <summary>The plan as indented JSON.</summary>
    public static string Serialize(ExecutionPlan plan) => JsonSerializer.Serialize(plan, Options);

    /// <summary>Reads a plan written by <see cref="Serialize"/>.</summary>
    public static ExecutionPlan Deserialize(string json) =>
        JsonSerializer.Deserialize<ExecutionPlan>(json, Options) ?? throw new JsonException("The plan JSON is null.");

    // Source-generated metadata: a US-scale plan has tens of thousands of pipelines, and reflection-based
    // serialization of that many records is several times slower.
    private static JsonSerializerOptions CreateOptions() => new(PlanJsonContext.Default.Options)
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        TypeInfoResolver = PlanJsonContext.Default,
    };

    internal sealed class FractionConverter : JsonConverter<Fraction>
    {
        public override Fraction Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            var text = reader.GetString() ?? throw new JsonException("A partition bound must be a string like \"1/4\".");
            try
            {
                return Fraction.Parse(text);
            }
            catch (Exception ex) when (ex is FormatException or ArgumentOutOfRangeException or OverflowException)
            {
                throw new JsonException($"'{text}' is not a partition bound like \"1/4\".", ex);
            }
        }

        public override void Write(Utf8JsonWriter writer, Fraction value, JsonSerializerOptions options) => writer.WriteStringValue(value.ToString());
    }

    /// <summary><c>{"schema": "sales", "name": "orders"}</c>; also reads the <c>"sales.orders"</c> string of plans written before tables were typed.</summary>
    internal sealed class TableConverter : JsonConverter<TableRef>
    {
        public override TableRef Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            if (reader.TokenType == JsonTokenType.String)
            {
                var text = reader.GetString()!;
                var dot = text.IndexOf('.', StringComparison.Ordinal);
                return dot < 0 ? new TableRef("public", text) : new TableRef(text[..dot], text[(dot + 1)..]);
            }

            if (reader.TokenType != JsonTokenType.StartObject)
            {
                throw new JsonException("A table must be an object like {\"schema\": \"sales\", \"name\": \"orders\"}.");
            }

            string? schema = null, name = null;
            while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
            {
                var property = reader.GetString();
                reader.Read();
                switch (property)
                {
                    case "schema":
                        schema = reader.GetString();
                        break;
                    case "name":
                        name = reader.GetString();
                        break;
                    default:
                        reader.Skip();
                        break;
                }
            }

            return schema is null || name is null
                ? throw new JsonException("A table needs both \"schema\" and \"name\".")
                : new TableRef(schema, name);
        }

        public override void Write(Utf8JsonWriter writer, TableRef value, JsonSerializerOptions options)
        {
            writer.WriteStartObject();
            writer.WriteString("schema", value.Schema);
            writer.WriteString("name", value.Name);
            writer.WriteEndObject();
        }
    }
}

/// <summary>Compile-time JSON metadata for plans.</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, WriteIndented = true, Converters = [typeof(PlanJson.FractionConverter)])]
[JsonSerializable(typeof(ExecutionPlan))]
internal sealed partial class PlanJsonContext : JsonSerializerContext;
