using System.Text.Json;
using System.Text.Json.Nodes;

namespace EtlFunnel.Testing.Elasticsearch;

/// <summary>A request the test server understands but cannot answer faithfully; it fails loudly rather than guess.</summary>
internal sealed class UnsupportedByTestServerException(string message) : Exception(message);

/// <summary>The queries the test server evaluates: <c>match_all</c>, <c>ids</c>, and <c>term</c>/<c>terms</c> on <c>_id</c>.</summary>
internal static class QueryFilter
{
    public static Func<string, bool> Parse(JsonNode? query)
    {
        if (query is null)
        {
            return _ => true;
        }

        if (query is not JsonObject obj || obj.Count != 1)
        {
            throw new UnsupportedByTestServerException($"the EtlFunnel test server expects a query with one clause, got [{query.ToJsonString()}]");
        }

        var (kind, clause) = obj.First();
        switch (kind)
        {
            case "match_all":
                return _ => true;
            case "match_none":
                return _ => false;
            case "ids":
                return Set(clause?["values"] as JsonArray ?? throw new UnsupportedByTestServerException("[ids] query needs [values]"));
            case "term" when clause is JsonObject term && term["_id"] is { } value:
                var id = value is JsonObject withValue ? withValue["value"]?.ToString() : value.ToString();
                return candidate => string.Equals(candidate, id, StringComparison.Ordinal);
            case "terms" when clause is JsonObject terms && terms["_id"] is JsonArray values:
                return Set(values);
            default:
                throw new UnsupportedByTestServerException(
                    $"the EtlFunnel test server supports only match_all, match_none, ids, and term/terms on _id queries, not [{kind}]");
        }
    }

    private static Func<string, bool> Set(JsonArray values)
    {
        var set = values.Select(v => v?.ToString()).OfType<string>().ToHashSet(StringComparer.Ordinal);
        return set.Contains;
    }
}

internal static class JsonElementExtensions
{
    public static JsonElement? GetPropertyOrNull(this JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) ? value : null;
}
