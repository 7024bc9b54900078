using System.Collections.Immutable;
using System.Globalization;
using EtlFunnel.Execution.Models;
using EtlFunnel.Orchestration.Config;
using EtlFunnel.Orchestration.Machines;
using YamlDotNet.RepresentationModel;

namespace EtlFunnel.Orchestration.Discovery;

/// <summary>
/// Table stats written down instead of discovered (<c>etlfunnel hooks test --stats stats.yaml</c>): flows with their
/// tables' rows, bytes, partitions and the source's latency, planned offline exactly as discovered tables would be.
/// The format is in docs/hooks.md ("Writing and testing hooks").
/// </summary>
public static class StatsProfile
{
    /// <summary>Reads a stats file; throws <see cref="ConfigException"/> naming file(line,col) for what is wrong.</summary>
    public static async Task<IReadOnlyList<FlowEntity>> LoadAsync(string path, CancellationToken cancellationToken = default)
    {
        string text;
        try
        {
            text = await File.ReadAllTextAsync(path, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException(path, $"cannot read the stats file: {ex.Message}", ex);
        }

        return Parse(text, path);
    }

    /// <summary>Parses a stats file's YAML text.</summary>
    public static IReadOnlyList<FlowEntity> Parse(string text, string displayFile)
    {
        var yaml = new YamlReader(displayFile, Environment.GetEnvironmentVariable);
        var root = yaml.LoadRoot(text) ?? throw new ConfigException(displayFile, "the stats file is empty; it needs 'flows:' with 'tables:' (see docs/hooks.md)");
        var top = yaml.Mapping(root, "the stats file", "flows");
        if (!top.TryGetValue("flows", out var flowsNode))
        {
            throw new ConfigException(yaml.At(root), "the stats file has no 'flows:'; add e.g. 'flows: [{name: shop, tables: [{name: orders, rows: 1000000}]}]'");
        }

        var flows = new List<FlowEntity>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var flowNode in yaml.Sequence(flowsNode.Value, "'flows:'"))
        {
            var f = yaml.Mapping(flowNode, "a flow", "name", "latency_ms", "destination", "max_replicas", "tables");
            var name = f.TryGetValue("name", out var n) ? yaml.NonEmptyString(n.Value, "name") : throw new ConfigException(yaml.At(flowNode), "a flow needs 'name:'");
            if (!names.Add(name))
            {
                throw new ConfigException(yaml.At(n.Value), $"flow '{name}' is listed twice; flow names are unique");
            }

            var latency = f.TryGetValue("latency_ms", out var l) ? Number(yaml, l.Value, "latency_ms") : 1.0;
            var destination = f.TryGetValue("destination", out var d) ? yaml.NonEmptyString(d.Value, "destination") : "elasticsearch";
            var kind = destination is "files" ? DestinationKind.Files : DestinationKind.Elasticsearch;
            if (destination is not ("files" or "elasticsearch"))
            {
                throw new ConfigException(yaml.At(d.Value), $"destination '{destination}' is not a kind; write 'elasticsearch' (the default) or 'files'");
            }

            if (!f.TryGetValue("tables", out var tablesNode))
            {
                throw new ConfigException(yaml.At(flowNode), $"flow '{name}' has no 'tables:'; add e.g. 'tables: [{{schema: public, name: orders, rows: 1000000}}]'");
            }

            var pipelines = ImmutableArray.CreateBuilder<PipelineEntity>();
            var tables = new List<TableInfo>();
            foreach (var tableNode in yaml.Sequence(tablesNode.Value, $"'tables:' of flow '{name}'"))
            {
                var t = yaml.Mapping(tableNode, "a table", "schema", "name", "rows", "bytes", "partitions", "exact", "index");
                var table = new TableInfo
                {
                    Schema = t.TryGetValue("schema", out var s) ? yaml.NonEmptyString(s.Value, "schema") : "public",
                    Name = t.TryGetValue("name", out var tn) ? yaml.NonEmptyString(tn.Value, "name") : throw new ConfigException(yaml.At(tableNode), "a table needs 'name:'"),
                    Rows = t.TryGetValue("rows", out var r) ? Count(yaml, r.Value, "rows") : 0,
                    RowsAreExact = t.TryGetValue("exact", out var e) && yaml.Bool(e.Value, "exact"),
                    Bytes = t.TryGetValue("bytes", out var b) && yaml.String(b.Value, "bytes") != "0" ? MachineProfiles.ParseBytes(yaml, b.Value, "bytes") : 0,
                    PartitionCount = t.TryGetValue("partitions", out var p) ? (int)Count(yaml, p.Value, "partitions") : 0,
                    PrimaryKey = ["id"],
                };
                table = table with { Pages = table.Bytes / 8192 };
                if (tables.Any(x => x.QualifiedName == table.QualifiedName))
                {
                    throw new ConfigException(yaml.At(tableNode), $"table {table.QualifiedName} is listed twice in flow '{name}'");
                }

                tables.Add(table);
                var index = t.TryGetValue("index", out var i) ? yaml.NonEmptyString(i.Value, "index") : table.Name;
                pipelines.Add(new PipelineEntity
                {
                    Entity = new OrchestratorEntityDef
                    {
                        Name = table.QualifiedName,
                        SourceDBConn = new StatsEngine("postgres", $"{displayFile}:{name}", Stats([table]), latency),
                        DestDBConn = new StatsEngine(kind == DestinationKind.Files ? "files" : "elasticsearch", index, new TableStats(), latency),
                    },
                    Table = table,
                    Index = index,
                    Key = table.PrimaryKey,
                });
            }

            var built = pipelines.ToImmutable();
            flows.Add(new FlowEntity
            {
                Entity = new OrchestratorEntityDef
                {
                    Name = name,
                    SourceDBConn = new StatsEngine("postgres", $"{displayFile}:{name}", Stats(tables), latency),
                    DestDBConn = new StatsEngine(kind == DestinationKind.Files ? "files" : "elasticsearch", string.Join(",", built.Select(x => x.Index).Distinct(StringComparer.Ordinal)), new TableStats(), latency),
                },
                SourceName = $"{displayFile} (stats)",
                Destination = new DestinationConfig(kind, kind == DestinationKind.Files ? "./out" : "stats", yaml.At(flowNode)),
                MaxReplicas = f.TryGetValue("max_replicas", out var m) ? yaml.PositiveInt(m.Value, "max_replicas") : null,
                Pipelines = built,
            });
        }

        return flows;
    }

    private static TableStats Stats(IReadOnlyList<TableInfo> tables) => new()
    {
        TotalRows = tables.Sum(t => t.Rows),
        TotalBytes = tables.Sum(t => t.Bytes),
        TableCount = tables.Count,
        PartitionCount = tables.Sum(t => t.PartitionCount),
        RowsAreExact = tables.Count > 0 && tables.All(t => t.RowsAreExact),
    };

    private static long Count(YamlReader yaml, YamlNode node, string what)
    {
        var text = yaml.NonEmptyString(node, what).Replace("_", "", StringComparison.Ordinal);
        return long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value)
            ? value
            : throw new ConfigException(yaml.At(node), $"{what} '{text}' is not a whole number of 0 or more; write e.g. {what}: 1000000");
    }

    private static double Number(YamlReader yaml, YamlNode node, string what)
    {
        var text = yaml.NonEmptyString(node, what);
        return double.TryParse(text, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value)
            ? value
            : throw new ConfigException(yaml.At(node), $"{what} '{text}' is not a number of milliseconds; write e.g. {what}: 2.5");
    }

    /// <summary>An engine that answers from the stats file: no connection behind it.</summary>
    private sealed class StatsEngine(string kind, string name, TableStats stats, double latencyMs) : IDatabaseEngine
    {
        public string Kind => kind;

        public string Name => name;

        public TableStats GetTableStats() => stats;

        public Task<TableStats> GetTableStatsAsync(CancellationToken cancellationToken = default) => Task.FromResult(stats);

        public ConnectionStats MeasureConnection() => new() { RoundTripLatency = TimeSpan.FromMilliseconds(latencyMs) };

        public Task<ConnectionStats> MeasureConnectionAsync(CancellationToken cancellationToken = default) => Task.FromResult(MeasureConnection());
    }
}
