using System.Globalization;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace EtlFunnel.Orchestration.Config;

/// <summary>Reads YAML through the representation model so every value keeps its line and column for error messages.</summary>
internal sealed partial class YamlReader
{
    private readonly Func<string, string?> _environment;

    public YamlReader(string displayFile, Func<string, string?> environment)
    {
        File = displayFile;
        _environment = environment;
    }

    public string File { get; }

    public YamlNode? LoadRoot(string text)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
        }
        catch (YamlException ex)
        {
            throw new ConfigException(new ConfigLocation(File, (int)ex.Start.Line, (int)ex.Start.Column), $"not valid YAML: {ex.InnerException?.Message ?? ex.Message}", ex);
        }

        if (stream.Documents.Count > 1)
        {
            throw new ConfigException(At(stream.Documents[1].RootNode), "only one YAML document is allowed per file");
        }

        return stream.Documents.Count == 0 ? null : stream.Documents[0].RootNode;
    }

    public ConfigLocation At(YamlNode node) => new(File, (int)node.Start.Line, (int)node.Start.Column);

    /// <summary>Checks a mapping's keys against the allowed set and returns them by name.</summary>
    public Dictionary<string, (YamlScalarNode Key, YamlNode Value)> Mapping(YamlNode node, string what, params string[] allowed)
    {
        if (node is not YamlMappingNode mapping)
        {
            throw new ConfigException(At(node), $"{what} must be a mapping (key: value lines)");
        }

        var result = new Dictionary<string, (YamlScalarNode, YamlNode)>(StringComparer.Ordinal);
        foreach (var (keyNode, value) in mapping.Children)
        {
            if (keyNode is not YamlScalarNode key || key.Value is null)
            {
                throw new ConfigException(At(keyNode), $"keys in {what} must be plain names");
            }

            if (Array.IndexOf(allowed, key.Value) < 0)
            {
                var hint = allowed.FirstOrDefault(a => Levenshtein.Distance(a, key.Value) <= 2);
                throw new ConfigException(At(key),
                    $"unknown key '{key.Value}' in {what}" + (hint is null ? "" : $" (did you mean '{hint}'?)") + $"; allowed keys: {string.Join(", ", allowed)}");
            }

            if (!result.TryAdd(key.Value, (key, value)))
            {
                throw new ConfigException(At(key), $"key '{key.Value}' appears twice in {what}");
            }
        }

        return result;
    }

    public IReadOnlyList<YamlNode> Sequence(YamlNode node, string what)
    {
        if (node is not YamlSequenceNode sequence)
        {
            throw new ConfigException(At(node), $"{what} must be a list (lines starting with '- ')");
        }

        return sequence.Children.ToList();
    }

    /// <summary>A scalar with <c>${VAR}</c> expanded from the environment (<c>$${</c> is a literal <c>${</c>).</summary>
    public string String(YamlNode node, string what)
    {
        if (node is not YamlScalarNode scalar || scalar.Value is null)
        {
            throw new ConfigException(At(node), $"{what} must be a single value");
        }

        if (scalar.Style is ScalarStyle.Plain && scalar.Value is "~" or "null")
        {
            throw new ConfigException(At(node), $"{what} must not be empty");
        }

        return VariablePattern().Replace(scalar.Value, m =>
        {
            if (m.Value.StartsWith("$$", StringComparison.Ordinal))
            {
                return m.Value[1..];
            }

            var name = m.Groups["name"].Value;
            return _environment(name) ?? throw new ConfigException(At(node),
                $"environment variable '{name}' (used in {what}) is not set; set it, or write $${{{name}}} for a literal '${{{name}}}'");
        });
    }

    public string NonEmptyString(YamlNode node, string what)
    {
        var value = String(node, what);
        return string.IsNullOrWhiteSpace(value) ? throw new ConfigException(At(node), $"{what} must not be empty") : value;
    }

    /// <summary>A boolean; <paramref name="fix"/> is appended to the error (e.g. "; write 'x: false' to ...").</summary>
    public bool Bool(YamlNode node, string what, string fix = "") => String(node, what) switch
    {
        "true" or "True" or "yes" => true,
        "false" or "False" or "no" => false,
        var other => throw new ConfigException(At(node), $"{what} must be true or false, not '{other}'{fix}"),
    };

    public int PositiveInt(YamlNode node, string what)
    {
        var text = String(node, what);
        return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) && value > 0
            ? value
            : throw new ConfigException(At(node), $"{what} must be a positive whole number, not '{text}'");
    }

    public IReadOnlyList<string> StringList(YamlNode node, string what)
    {
        if (node is YamlScalarNode)
        {
            return [NonEmptyString(node, what)];
        }

        var items = Sequence(node, what).Select(n => NonEmptyString(n, what)).ToList();
        return items.Count == 0 ? throw new ConfigException(At(node), $"{what} must list at least one value") : items;
    }

    [GeneratedRegex(@"\$?\$\{(?<name>[A-Za-z_][A-Za-z0-9_]*)\}")]
    private static partial Regex VariablePattern();
}
