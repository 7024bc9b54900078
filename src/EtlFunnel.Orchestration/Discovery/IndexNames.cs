using System.Text;

namespace EtlFunnel.Orchestration.Discovery;

/// <summary>Elasticsearch's rules for index names (MetadataCreateIndexService.validateIndexOrAliasName), checked before any data moves.</summary>
internal static class IndexNames
{
    private const int MaxBytes = 255;
    private const string Forbidden = "\\/*?\"<>| ,#:";

    /// <summary>What Elasticsearch would object to in <paramref name="index"/>, or <c>null</c> when it is a valid name.</summary>
    public static string? Problem(string index)
    {
        if (index.Length == 0)
        {
            return "it is empty";
        }

        if (index is "." or "..")
        {
            return "'.' and '..' are not index names";
        }

        if (index[0] is '-' or '_' or '+')
        {
            return $"it starts with '{index[0]}' (an index name must not start with '-', '_' or '+')";
        }

        var bad = index.IndexOfAny(Forbidden.ToCharArray());
        if (bad >= 0)
        {
            var ch = index[bad] == ' ' ? "a space" : $"'{index[bad]}'";
            return $"it contains {ch} (an index name must not contain \\ / * ? \" < > | , # : or spaces)";
        }

        if (!string.Equals(index, index.ToLowerInvariant(), StringComparison.Ordinal))
        {
            return "it has upper-case letters";
        }

        var bytes = Encoding.UTF8.GetByteCount(index);
        return bytes > MaxBytes ? $"it is {bytes} bytes long (at most {MaxBytes} bytes of UTF-8)" : null;
    }
}
