namespace EtlFunnel.Orchestration.Config;

/// <summary>
/// <c>ETLFUNNEL_ELASTICSEARCH_URL</c> sends every flow to one Elasticsearch instead of its configured destination. It is applied
/// to the loaded config, before discovery, so hooks, <c>plan</c> and <c>/plan</c> describe the destination the run writes to.
/// </summary>
public static class DestinationOverride
{
    /// <summary>The variable's name.</summary>
    public const string Variable = "ETLFUNNEL_ELASTICSEARCH_URL";

    /// <summary>The earlier name, still read (with a deprecation warning) when <see cref="Variable"/> is not set.</summary>
    public const string DeprecatedVariable = "ELASTICSEARCH_URL";

    /// <summary>
    /// The config with every flow's destination replaced by the override's Elasticsearch (each flow keeps its <c>compression:</c>),
    /// and the lines to log: one notice that it overrides the config, and a warning when the deprecated name is used. Unchanged when unset.
    /// </summary>
    public static (EtlConfig Config, IReadOnlyList<string> Notices, IReadOnlyList<string> Warnings) Apply(EtlConfig config, Func<string, string?> environment)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(environment);
        var current = environment(Variable);
        var deprecated = environment(DeprecatedVariable);
        var warnings = new List<string>();
        string name;
        string text;
        if (!string.IsNullOrWhiteSpace(current))
        {
            (name, text) = (Variable, current.Trim());
            if (!string.IsNullOrWhiteSpace(deprecated) && !string.Equals(deprecated.Trim(), text, StringComparison.Ordinal))
            {
                warnings.Add($"{DeprecatedVariable} is set too and ignored; {Variable} wins (unset {DeprecatedVariable})");
            }
        }
        else if (!string.IsNullOrWhiteSpace(deprecated))
        {
            (name, text) = (DeprecatedVariable, deprecated.Trim());
            warnings.Add($"{DeprecatedVariable} is deprecated; set {Variable} instead (the old name will stop working in a later version)");
        }
        else
        {
            return (config, [], []);
        }

        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            throw new ConfigException(name, $"'{text}' is not an http(s) URL; set it like {Variable}=http://127.0.0.1:9200 or unset it");
        }

        var flows = config.Flows.Select(f => f with
        {
            // The override replaces the cluster, not the flow's wire settings.
            // Credentials and TLS of the flow's mapping form stay; a cloud_id gives way to the URL.
            Destination = new DestinationConfig(DestinationKind.Elasticsearch, text, f.Destination.Location)
            {
                Compression = f.Destination.Compression,
                Elasticsearch = f.Destination.Elasticsearch is { } security ? security with { CloudId = null } : null,
            },
        }).ToArray();
        var notice = $"{name}={WithoutPassword(uri)} overrides the destination of every flow in {config.File} ({string.Join(", ", config.Flows.Select(f => $"{f.Name}: {Describe(f.Destination)}"))})";
        return (config with { Flows = [.. flows] }, [notice], warnings);
    }

    private static string Describe(DestinationConfig destination) => destination.Kind == DestinationKind.Files
        ? "files " + destination.Target
        : Uri.TryCreate(destination.Target, UriKind.Absolute, out var uri) ? WithoutPassword(uri) : destination.Target;

    private static string WithoutPassword(Uri uri) => string.IsNullOrEmpty(uri.UserInfo)
        ? uri.ToString()
        : new UriBuilder(uri) { UserName = uri.UserInfo.Split(':', 2)[0], Password = uri.UserInfo.Contains(':', StringComparison.Ordinal) ? "***" : "" }.Uri.ToString();
}
