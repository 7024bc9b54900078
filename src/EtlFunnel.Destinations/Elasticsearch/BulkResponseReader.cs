using System.Text.Json;

namespace EtlFunnel.Destinations;

/// <summary>
/// Reads a <c>_bulk</c> response for what the sink needs: per item, in order, its <c>status</c> and for a failure its
/// <c>error.type: error.reason</c>. Everything else is skipped without building objects.
/// </summary>
internal static class BulkResponseReader
{
    public static void Read(ReadOnlySpan<byte> json, List<(int Status, string? Error)> results)
    {
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 256 });
        try
        {
            Expect(ref reader, JsonTokenType.StartObject);
            while (Next(ref reader) == JsonTokenType.PropertyName)
            {
                if (!reader.ValueTextEquals("items"u8))
                {
                    Next(ref reader);
                    reader.Skip();
                    continue;
                }

                Expect(ref reader, JsonTokenType.StartArray);
                while (Next(ref reader) == JsonTokenType.StartObject)
                {
                    // { "<action>": { ...item... } }
                    Expect(ref reader, JsonTokenType.PropertyName);
                    Expect(ref reader, JsonTokenType.StartObject);
                    results.Add(ReadItem(ref reader));
                    Expect(ref reader, JsonTokenType.EndObject);
                }
            }
        }
        catch (JsonException e)
        {
            throw new InvalidOperationException($"Elasticsearch sent a bulk response that is not valid JSON: {e.Message}", e);
        }
    }

    private static (int Status, string? Error) ReadItem(ref Utf8JsonReader reader)
    {
        var status = 0;
        string? error = null;
        while (Next(ref reader) == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("status"u8))
            {
                Next(ref reader);
                status = reader.GetInt32();
            }
            else if (reader.ValueTextEquals("error"u8))
            {
                Next(ref reader);
                error = ReadError(ref reader);
            }
            else
            {
                Next(ref reader);
                reader.Skip();
            }
        }

        return (status, error);
    }

    private static string ReadError(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            return reader.TokenType == JsonTokenType.String ? reader.GetString()! : "rejected";
        }

        string? type = null, reason = null;
        while (Next(ref reader) == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("type"u8))
            {
                Next(ref reader);
                type = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
            }
            else if (reader.ValueTextEquals("reason"u8))
            {
                Next(ref reader);
                reason = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
            }
            else
            {
                Next(ref reader);
                reader.Skip();
            }
        }

        return $"{type}: {reason}";
    }

    private static JsonTokenType Next(ref Utf8JsonReader reader) =>
        reader.Read() ? reader.TokenType : throw new JsonException("the response ends early");

    private static void Expect(ref Utf8JsonReader reader, JsonTokenType type)
    {
        if (Next(ref reader) != type)
        {
            throw new JsonException($"expected {type} but found {reader.TokenType} at byte {reader.TokenStartIndex}");
        }
    }
}
