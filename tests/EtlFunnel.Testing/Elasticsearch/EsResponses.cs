using System.Text.Json.Nodes;

namespace EtlFunnel.Testing.Elasticsearch;

/// <summary>Response bodies shaped exactly like Elasticsearch's, so the official client deserialises them.</summary>
internal static class EsResponses
{
    public static JsonObject Error(int status, string type, string reason, JsonObject? extra = null)
    {
        JsonObject Cause()
        {
            var cause = new JsonObject { ["type"] = type, ["reason"] = reason };
            if (extra is not null)
            {
                foreach (var (key, value) in extra)
                {
                    cause[key] = value?.DeepClone();
                }
            }

            return cause;
        }

        var error = Cause();
        error["root_cause"] = new JsonArray(Cause());
        return new JsonObject { ["error"] = error, ["status"] = status };
    }

    public static JsonObject IndexNotFound(string index) =>
        Error(404, "index_not_found_exception", $"no such index [{index}]", new JsonObject
        {
            ["resource.type"] = "index_or_alias",
            ["resource.id"] = index,
            ["index_uuid"] = "_na_",
            ["index"] = index,
        });

    public static JsonObject Shards(int total = 1) => new()
    {
        ["total"] = total,
        ["successful"] = total,
        ["skipped"] = 0,
        ["failed"] = 0,
    };

    public static JsonObject WriteShards() => new() { ["total"] = 2, ["successful"] = 1, ["failed"] = 0 };

    /// <summary>Null when the name is valid; else the reason Elasticsearch gives.</summary>
    public static string? InvalidIndexNameReason(string name)
    {
        if (name.Length == 0)
        {
            return "Invalid index name [], must not be empty";
        }

        if (!string.Equals(name, name.ToLowerInvariant(), StringComparison.Ordinal))
        {
            return $"Invalid index name [{name}], must be lowercase";
        }

        if (name[0] is '_' or '-' or '+')
        {
            return $"Invalid index name [{name}], must not start with '_', '-', or '+'";
        }

        if (name is "." or "..")
        {
            return $"Invalid index name [{name}], must not be '.' or '..'";
        }

        if (name.IndexOfAny(['\\', '/', '*', '?', '"', '<', '>', '|', ' ', ',', '#', ':']) >= 0)
        {
            return $"Invalid index name [{name}], must not contain the following characters [ , \", *, \\, <, |, ,, >, /, ?, #, :]";
        }

        return System.Text.Encoding.UTF8.GetByteCount(name) > 255 ? $"Invalid index name [{name}], index name is too long" : null;
    }
}
