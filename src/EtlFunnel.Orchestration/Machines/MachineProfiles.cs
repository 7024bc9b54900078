using System.Collections.Immutable;
using System.Globalization;
using System.Text.RegularExpressions;
using EtlFunnel.Execution.Models;
using EtlFunnel.Orchestration.Config;
using YamlDotNet.RepresentationModel;

namespace EtlFunnel.Orchestration.Machines;

/// <summary>The machine a plan is made for: the real one, or a YAML profile that stands in for another region's machine.</summary>
public static partial class MachineProfiles
{
    /// <summary>The environment variable that names the real machine's region.</summary>
    public const string RegionVariable = "ETLFUNNEL_REGION";

    /// <summary>Detects this machine: cores and memory as the runtime sees them (container limits respected), region from <c>ETLFUNNEL_REGION</c>.</summary>
    public static MachineInfo Detect(Func<string, string?>? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        var region = environment(RegionVariable);
        return new MachineInfo
        {
            // Both respect cgroup CPU and memory limits, so a container sees its own share rather than the host's.
            LogicalCores = Environment.ProcessorCount,
            TotalMemoryBytes = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes,
            Region = string.IsNullOrWhiteSpace(region) ? null : region,
            HostName = Environment.MachineName,
        };
    }

    /// <summary>Loads a profile (<c>region</c>, <c>cores</c>, <c>memory</c>, optional <c>name</c> and <c>labels</c>).</summary>
    public static async Task<MachineInfo> LoadAsync(string path, CancellationToken cancellationToken = default)
    {
        string text;
        try
        {
            text = await File.ReadAllTextAsync(path, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException(path, $"cannot read the machine profile: {ex.Message}", ex);
        }

        return Parse(text, path);
    }

    /// <summary>Parses a profile's YAML text.</summary>
    public static MachineInfo Parse(string text, string displayFile)
    {
        var yaml = new YamlReader(displayFile, Environment.GetEnvironmentVariable);
        var root = yaml.LoadRoot(text) ?? throw new ConfigException(displayFile, "the machine profile is empty; it needs 'cores:' and 'memory:'");
        var m = yaml.Mapping(root, "the machine profile", "name", "region", "cores", "memory", "labels");
        if (!m.TryGetValue("cores", out var cores))
        {
            throw new ConfigException(yaml.At(root), "the machine profile has no 'cores:'; add e.g. 'cores: 8'");
        }

        if (!m.TryGetValue("memory", out var memory))
        {
            throw new ConfigException(yaml.At(root), "the machine profile has no 'memory:'; add e.g. 'memory: 32GB'");
        }

        var labels = ImmutableSortedDictionary.CreateBuilder<string, string>(StringComparer.Ordinal);
        if (m.TryGetValue("labels", out var labelsNode))
        {
            if (labelsNode.Value is not YamlMappingNode mapping)
            {
                throw new ConfigException(yaml.At(labelsNode.Value), "'labels:' must map names to values");
            }

            foreach (var (k, v) in mapping.Children)
            {
                labels[yaml.NonEmptyString(k, "a label name")] = yaml.String(v, "a label value");
            }
        }

        var region = m.TryGetValue("region", out var r) ? yaml.NonEmptyString(r.Value, "region") : null;
        return new MachineInfo
        {
            LogicalCores = yaml.PositiveInt(cores.Value, "cores"),
            TotalMemoryBytes = ParseBytes(yaml, memory.Value),
            Region = region,
            HostName = m.TryGetValue("name", out var n) ? yaml.NonEmptyString(n.Value, "name") : Path.GetFileNameWithoutExtension(displayFile),
            Labels = labels.ToImmutable(),
        };
    }

    /// <summary>A size (<c>32GB</c>, <c>512MB</c>, a number of bytes; binary units) at <paramref name="node"/>.</summary>
    internal static long ParseBytes(YamlReader yaml, YamlNode node, string what = "memory")
    {
        var text = yaml.NonEmptyString(node, what);
        var match = SizePattern().Match(text);
        if (!match.Success)
        {
            throw new ConfigException(yaml.At(node), $"{what} '{text}' is not a size; write e.g. 32GB, 512MB or a number of bytes");
        }

        // Binary units: "32GB RAM" means 32 GiB in every machine catalogue.
        var unit = match.Groups["unit"].Value.ToUpperInvariant().Replace("I", "", StringComparison.Ordinal).TrimEnd('B');
        var factor = unit switch
        {
            "" => 1L,
            "K" => 1L << 10,
            "M" => 1L << 20,
            "G" => 1L << 30,
            "T" => 1L << 40,
            _ => throw new ConfigException(yaml.At(node), $"unknown memory unit in '{text}'"),
        };
        var value = decimal.Parse(match.Groups["value"].Value, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture) * factor;
        return value is < 1 or > long.MaxValue
            ? throw new ConfigException(yaml.At(node), $"{what} '{text}' is out of range")
            : (long)value;
    }

    [GeneratedRegex(@"^\s*(?<value>\d+(\.\d+)?)\s*(?<unit>([KMGTkmgt][iI]?)?[Bb]?)\s*$")]
    private static partial Regex SizePattern();
}
