using System.Collections.Immutable;
using EtlFunnel.Destinations;
using EtlFunnel.Execution.Models;
using EtlFunnel.Orchestration.Config;
using EtlFunnel.Orchestration.Plans;
using Npgsql;

namespace EtlFunnel.Orchestration.Discovery;

/// <summary>A source could not be read while discovering tables.</summary>
public sealed class DiscoveryException : Exception
{
    /// <summary>Creates the exception.</summary>
    public DiscoveryException(string message, Exception? innerException = null)
        : base(message, innerException)
    {
    }
}

/// <summary>Turns a config into a <see cref="Workload"/>: one catalog query per source database, tables matched to pipeline entries.</summary>
public static class WorkloadDiscovery
{
    /// <summary>Discovers every flow's tables and builds the entities hooks will see.</summary>
    public static async Task<Workload> DiscoverAsync(EtlConfig config, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(config);
        var sources = new Dictionary<string, Source>(StringComparer.Ordinal);
        var clusters = new Dictionary<string, ElasticsearchCluster>(StringComparer.Ordinal);
        var warnings = ImmutableArray.CreateBuilder<string>();
        var flows = ImmutableArray.CreateBuilder<FlowEntity>();
        try
        {
            foreach (var flow in config.Flows)
            {
                flows.Add(await DiscoverFlowAsync(config, flow, sources, clusters, warnings, cancellationToken).ConfigureAwait(false));
            }

            CheckIndexCollisions(flows);
        }
        catch
        {
            foreach (var s in sources.Values)
            {
                await s.DataSource.DisposeAsync().ConfigureAwait(false);
            }

            throw;
        }

        return new Workload(flows.ToImmutable(), warnings.ToImmutable(), [.. sources.Values.Select(s => s.DataSource)]);
    }

    /// <summary>The checkpoint table is ours, not the user's data: a broad pipeline entry in the database that holds it must not plan it.</summary>
    private static IReadOnlyList<TableInfo> WithoutCheckpointTable(IReadOnlyList<TableInfo> catalog, StateTableConfig? state, string sourceConnectionString)
    {
        if (state is null || !SameDatabase(state.ConnectionString, sourceConnectionString))
        {
            return catalog;
        }

        var dot = state.Table.IndexOf('.', StringComparison.Ordinal);
        var (schema, name) = dot < 0 ? ("public", state.Table) : (state.Table[..dot], state.Table[(dot + 1)..]);
        return [.. catalog.Where(t => !(t.Schema == schema && t.Name == name))];
    }

    private static bool SameDatabase(string a, string b)
    {
        try
        {
            var x = new NpgsqlConnectionStringBuilder(a);
            var y = new NpgsqlConnectionStringBuilder(b);
            return string.Equals(x.Host, y.Host, StringComparison.OrdinalIgnoreCase) && x.Port == y.Port &&
                   string.Equals(x.Database ?? x.Username, y.Database ?? y.Username, StringComparison.Ordinal);
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    private static async Task<FlowEntity> DiscoverFlowAsync(
        EtlConfig config,
        FlowConfig flow,
        Dictionary<string, Source> sources,
        Dictionary<string, ElasticsearchCluster> clusters,
        ImmutableArray<string>.Builder warnings,
        CancellationToken cancellationToken)
    {
        var source = GetSource(sources, flow.SourceConnectionString);
        IReadOnlyList<TableInfo> catalog;
        try
        {
            catalog = await source.TablesAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException or InvalidOperationException && ex is not OperationCanceledException)
        {
            throw new DiscoveryException(
                $"{flow.Location}: cannot read the tables of flow '{flow.Name}' from {source.DisplayName}: {ex.Message}. Check that the server runs and the connection string is right.", ex);
        }

        catalog = WithoutCheckpointTable(catalog, config.StateTable, flow.SourceConnectionString);

        // First matching entry wins, like routing rules: a narrow entry above a broad one configures its tables.
        var globs = flow.Pipelines.Select(p => (Entry: p, Schema: new Glob(p.Schema), Table: new Glob(p.Table))).ToList();
        var matched = new List<(TableInfo Table, PipelineConfig Entry)>();
        var used = new HashSet<PipelineConfig>();
        foreach (var table in catalog)
        {
            var hit = globs.FirstOrDefault(g => g.Schema.IsMatch(table.Schema) && g.Table.IsMatch(table.Name));
            if (hit.Entry is not null)
            {
                matched.Add((table, hit.Entry));
                used.Add(hit.Entry);
            }
        }

        foreach (var entry in flow.Pipelines.Where(p => !used.Contains(p)))
        {
            ReportUnmatched(flow, entry, catalog, globs.Select(g => (g.Entry, g.Schema, g.Table)).ToList(), source.DisplayName, warnings);
        }

        matched = await ApplyExactCountsAsync(flow, source, matched, cancellationToken).ConfigureAwait(false);
        var columns = await source.ColumnsAsync(matched.Where(m => !m.Entry.Key.IsEmpty || m.Entry.Incremental is not null).Select(m => m.Table).ToList(), cancellationToken).ConfigureAwait(false);

        var destination = flow.Destination;
        ElasticsearchCluster? cluster = null;
        if (destination.Kind == DestinationKind.Elasticsearch && !clusters.TryGetValue(destination.Target, out cluster))
        {
            // Keyed by URL: discovery only sends body-less GETs, so flows that differ in compression can share the first one's client.
            cluster = new ElasticsearchCluster(destination.Target, ElasticsearchDestinations.From(destination));
            clusters.Add(destination.Target, cluster);
        }

        IDatabaseEngine Dest(IReadOnlyCollection<string> indices) => cluster is not null
            ? new ElasticsearchEngine(cluster, indices)
            : new FilesEngine(destination.Target, indices);

        var auxiliary = flow.Auxiliary.ToDictionary(
            a => a.Key,
            a =>
            {
                var aux = GetSource(sources, a.Value);
                return (IDatabaseEngine)new PostgresEngine(aux.DisplayName, async ct => Sum(await aux.TablesAsync(ct).ConfigureAwait(false)), aux.Probe);
            },
            StringComparer.Ordinal);

        var pipelines = ImmutableArray.CreateBuilder<PipelineEntity>(matched.Count);
        foreach (var (table, entry) in matched)
        {
            var key = entry.Key.IsEmpty ? table.PrimaryKey : entry.Key;
            if (key.IsEmpty)
            {
                var fix = $"add a primary key to it, or 'key: [column, ...]' naming columns with a unique index to {(IsExplicit(entry) ? "this pipeline entry" : "a narrower entry above this one just for this table")}";
                if (!IsExplicit(entry))
                {
                    // One keyless table among many matched by a glob must not stop the others; a table named outright must.
                    warnings.Add($"{entry.Location}: table '{table.QualifiedName}' (flow '{flow.Name}') has no primary key, so it is skipped; to sync it, {fix}");
                    continue;
                }

                throw new ConfigException(entry.Location, $"table '{table.QualifiedName}' (flow '{flow.Name}') has no primary key; {fix}");
            }

            var described = columns.GetValueOrDefault((table.Schema, table.Name));
            var margin = described is null ? null : CheckColumns(flow, entry, table, described);

            if (table.NeverAnalyzed && !table.RowsAreExact)
            {
                warnings.Add($"{entry.Location}: table '{table.QualifiedName}' has never been analyzed, so its row estimate is 0; run ANALYZE on it or set 'exact_counts: true'");
            }

            var index = entry.Index.Replace("{schema}", table.Schema, StringComparison.Ordinal)
                .Replace("{table}", table.Name, StringComparison.Ordinal)
                .Replace("{flow}", flow.Name, StringComparison.Ordinal)
                .ToLowerInvariant(); // Elasticsearch index names must be lowercase.
            if (IndexNames.Problem(index) is { } problem)
            {
                throw new ConfigException(entry.Location,
                    $"table '{table.QualifiedName}' (flow '{flow.Name}') would write index '{index}', which Elasticsearch rejects: {problem}; set 'index:' on this entry (or a narrower one above it) to a valid name");
            }

            var stats = ToStats(table);
            pipelines.Add(new PipelineEntity
            {
                Entity = new OrchestratorEntityDef
                {
                    Name = table.QualifiedName,
                    SourceDBConn = new PostgresEngine(source.DisplayName, _ => Task.FromResult(stats), source.Probe),
                    DestDBConn = Dest([index]),
                    AuxiliaryDBConnMap = auxiliary,
                },
                Table = table,
                Index = index,
                Key = key,
                Incremental = entry.Incremental,
                IncrementalMargin = margin,
                Entry = entry,
            });
        }

        var built = pipelines.ToImmutable();
        if (built.IsEmpty)
        {
            warnings.Add($"{flow.Location}: flow '{flow.Name}' selects no table in {source.DisplayName}; it will do nothing");
        }

        var flowStats = Sum(built.Select(p => p.Table).ToList());
        return new FlowEntity
        {
            Entity = new OrchestratorEntityDef
            {
                Name = flow.Name,
                SourceDBConn = new PostgresEngine(source.DisplayName, _ => Task.FromResult(flowStats), source.Probe),
                DestDBConn = Dest(built.Select(p => p.Index).Distinct(StringComparer.Ordinal).ToList()),
                AuxiliaryDBConnMap = auxiliary,
            },
            SourceName = source.DisplayName,
            Destination = destination,
            MaxReplicas = flow.MaxReplicas,
            Pipelines = built,
        };
    }

    /// <summary>An entry without <c>*</c> or <c>?</c> names its table outright: a missing table or key there is an error, not a warning.</summary>
    private static bool IsExplicit(PipelineConfig entry) => !Glob.HasWildcards(entry.Schema) && !Glob.HasWildcards(entry.Table);

    private static void ReportUnmatched(
        FlowConfig flow, PipelineConfig entry, IReadOnlyList<TableInfo> catalog, List<(PipelineConfig Entry, Glob Schema, Glob Table)> globs, string source, ImmutableArray<string>.Builder warnings)
    {
        var what = $"pipeline entry schema '{entry.Schema}' table '{entry.Table}' of flow '{flow.Name}'";
        var shadowed = catalog.FirstOrDefault(t => new Glob(entry.Schema).IsMatch(t.Schema) && new Glob(entry.Table).IsMatch(t.Name));
        if (shadowed is not null)
        {
            var winner = globs.First(g => g.Schema.IsMatch(shadowed.Schema) && g.Table.IsMatch(shadowed.Name)).Entry;
            warnings.Add($"{entry.Location}: {what} configures no table: the entry at {winner.Location} matches its tables first (e.g. '{shadowed.QualifiedName}'); move this entry above it");
            return;
        }

        if (!IsExplicit(entry))
        {
            warnings.Add($"{entry.Location}: {what} matches no table in {source}");
            return;
        }

        var wanted = TableRef.Display(entry.Schema, entry.Table);
        var hint = catalog
            .Select(t => (Name: t.QualifiedName, Distance: string.Equals(t.QualifiedName, wanted, StringComparison.OrdinalIgnoreCase) ? 0 : Levenshtein.Distance(t.QualifiedName, wanted)))
            .Where(c => c.Distance <= Math.Max(2, wanted.Length / 3))
            .OrderBy(c => c.Distance).ThenBy(c => c.Name, StringComparer.Ordinal)
            .Take(3).Select(c => $"'{c.Name}'").ToList();
        throw new ConfigException(entry.Location,
            $"table '{wanted}' of flow '{flow.Name}' does not exist in {source}" +
            (hint.Count > 0 ? $" (did you mean {string.Join(" or ", hint)}?)" : "") +
            "; names are case-sensitive: fix 'schema:'/'table:' of this entry, or use a glob (e.g. 'table: \"orders*\"') if the table may be absent");
    }

    /// <summary>Explicit key columns exist and are unique; the incremental column exists, has a type a watermark can be kept for, and a margin that fits it.</summary>
    private static IncrementalMargin? CheckColumns(FlowConfig flow, PipelineConfig entry, TableInfo table, TableColumns described)
    {
        var byName = described.Columns.ToDictionary(c => c.Name, StringComparer.Ordinal);
        foreach (var column in entry.Key.Concat(entry.Incremental is null ? [] : [entry.Incremental]))
        {
            if (!byName.ContainsKey(column))
            {
                throw new ConfigException(entry.Location, $"column '{column}' does not exist in table '{table.QualifiedName}' (flow '{flow.Name}'); its columns are: {string.Join(", ", byName.Keys.Order(StringComparer.Ordinal))}");
            }
        }

        if (!entry.Key.IsEmpty)
        {
            var keySet = entry.Key.ToHashSet(StringComparer.Ordinal);
            // A unique index on some of the key's columns makes the whole key unique, unless NULLs (distinct to the index) repeat.
            var unique = described.UniqueIndexes.Any(i => i.Columns.All(keySet.Contains) && (i.NullsNotDistinct || i.Columns.All(c => byName[c].NotNull)));
            if (!unique)
            {
                var columnList = string.Join(", ", entry.Key);
                var nullable = described.UniqueIndexes.Any(i => i.Columns.All(keySet.Contains));
                throw new ConfigException(entry.Location,
                    $"key [{columnList}] of table '{table.QualifiedName}' (flow '{flow.Name}') is not unique: " +
                    (nullable ? "its unique index allows several NULLs, " : "no primary key or unique index/constraint covers these columns, ") +
                    "so rows sharing a key would overwrite each other's document; " +
                    $"add one (ALTER TABLE {table.QualifiedName} ADD UNIQUE{(nullable ? " NULLS NOT DISTINCT" : "")} ({columnList})" + (nullable ? " or make the columns NOT NULL" : "") +
                    ") or name columns that have one");
            }
        }

        if (entry.Incremental is not { } incremental)
        {
            return null;
        }

        var type = byName[incremental];
        var kind = WatermarkKinds.Of(type.Type, type.Category);
        if (kind is null)
        {
            throw new ConfigException(entry.Location,
                $"incremental column '{incremental}' of table '{table.QualifiedName}' (flow '{flow.Name}') has type {type.Type}, for which no watermark is kept; use a timestamp, timestamptz, date, integer, numeric, float or text column that only grows");
        }

        var where = entry.IncrementalMarginLocation ?? entry.Location;
        switch (kind, entry.IncrementalMargin)
        {
            case (WatermarkKind.Time, null):
                return IncrementalMargin.DefaultTime;
            case (WatermarkKind.Number, null):
                return IncrementalMargin.DefaultAmount;
            case (WatermarkKind.Text, null):
                return null;
            case (WatermarkKind.Time, { Amount: 0 }):
                return new IncrementalMargin { Time = TimeSpan.Zero };
            case (WatermarkKind.Time, { Time: not null } m):
                return m;
            case (WatermarkKind.Number, { Amount: >= 0 } m):
                return m;
            case (WatermarkKind.Text, _):
                throw new ConfigException(where, $"incremental column '{incremental}' of table '{table.QualifiedName}' (flow '{flow.Name}') is {type.Type}; a margin applies only to date/time and numeric columns, so remove 'incremental_margin:'");
            case (WatermarkKind.Time, _):
                throw new ConfigException(where, $"incremental column '{incremental}' of table '{table.QualifiedName}' (flow '{flow.Name}') is {type.Type}, so 'incremental_margin:' must be a duration such as 5m, 90s or 1h30m, not '{entry.IncrementalMargin}'");
            default:
                throw new ConfigException(where, $"incremental column '{incremental}' of table '{table.QualifiedName}' (flow '{flow.Name}') is {type.Type}, so 'incremental_margin:' must be a number such as 1000, not '{entry.IncrementalMargin}'");
        }
    }

    /// <summary>Two tables writing one index of one destination would overwrite each other's documents: refuse, naming both.</summary>
    private static void CheckIndexCollisions(IEnumerable<FlowEntity> flows)
    {
        var seen = new Dictionary<(string Destination, string Index), (FlowEntity Flow, PipelineEntity Pipeline)>();
        foreach (var flow in flows)
        {
            var destination = DestinationKey(flow.Destination);
            foreach (var pipeline in flow.Pipelines)
            {
                if (!seen.TryAdd((destination, pipeline.Index), (flow, pipeline)))
                {
                    var (firstFlow, first) = seen[(destination, pipeline.Index)];
                    var firstAt = first.Entry is null ? "" : $" at {first.Entry.Location}";
                    var message =
                        $"tables '{first.Name}' (flow '{firstFlow.Name}'{firstAt}) and '{pipeline.Name}' (flow '{flow.Name}') would both write index '{pipeline.Index}' (index names are lower-cased), so one would overwrite the other's documents; " +
                        "give one of them its own entry above this one with a distinct 'index:' (e.g. index: \"{schema}__{table}\")";
                    throw pipeline.Entry is { } entry ? new ConfigException(entry.Location, message) : new ConfigException(flow.Name, message);
                }
            }
        }
    }

    private static string DestinationKey(DestinationConfig destination) => destination.Kind switch
    {
        DestinationKind.Files => "files:" + Path.TrimEndingDirectorySeparator(Path.GetFullPath(destination.Target)),
        _ => Uri.TryCreate(destination.Target, UriKind.Absolute, out var uri) ? $"es:{uri.Scheme}://{uri.Host.ToLowerInvariant()}:{uri.Port}{uri.AbsolutePath.TrimEnd('/')}" : "es:" + destination.Target,
    };

    private static async Task<List<(TableInfo Table, PipelineConfig Entry)>> ApplyExactCountsAsync(
        FlowConfig flow, Source source, List<(TableInfo Table, PipelineConfig Entry)> matched, CancellationToken cancellationToken)
    {
        var toCount = matched.Where(m => m.Entry.ExactCounts).Select(m => m.Table).Distinct().ToList();
        if (toCount.Count == 0)
        {
            return matched;
        }

        IReadOnlyList<long> counts;
        try
        {
            counts = await PostgresCatalog.CountRowsAsync(source.DataSource, toCount, cancellationToken).ConfigureAwait(false);
        }
        catch (NpgsqlException ex)
        {
            throw new DiscoveryException($"{flow.Location}: counting rows for 'exact_counts' of flow '{flow.Name}' failed: {ex.Message}", ex);
        }

        var exact = toCount.Zip(counts).ToDictionary(x => x.First, x => x.Second);
        return matched.Select(m => exact.TryGetValue(m.Table, out var n) ? (m.Table with { Rows = n, RowsAreExact = true }, m.Entry) : m).ToList();
    }

    private static TableStats ToStats(TableInfo t) => new()
    {
        TotalRows = t.Rows,
        TotalBytes = t.Bytes,
        TableCount = 1,
        PartitionCount = t.PartitionCount,
        RowsAreExact = t.RowsAreExact,
    };

    private static TableStats Sum(IReadOnlyList<TableInfo> tables) => new()
    {
        TotalRows = tables.Sum(t => t.Rows),
        TotalBytes = tables.Sum(t => t.Bytes),
        TableCount = tables.Count,
        PartitionCount = tables.Sum(t => t.PartitionCount),
        RowsAreExact = tables.Count > 0 && tables.All(t => t.RowsAreExact),
    };

    private static Source GetSource(Dictionary<string, Source> sources, string connectionString)
    {
        if (!sources.TryGetValue(connectionString, out var source))
        {
            source = new Source(connectionString);
            sources.Add(connectionString, source);
        }

        return source;
    }

    /// <summary>One source database: its catalog is read once, however many flows use it.</summary>
    private sealed class Source
    {
        private readonly Once<IReadOnlyList<TableInfo>> _tables;

        public Source(string connectionString)
        {
            DataSource = NpgsqlDataSource.Create(connectionString);
            DisplayName = PostgresCatalog.DisplayName(connectionString);
            Probe = new PostgresProbe(DataSource);
            _tables = new(ct => PostgresCatalog.LoadTablesAsync(DataSource, ct));
        }

        public NpgsqlDataSource DataSource { get; }

        public string DisplayName { get; }

        public PostgresProbe Probe { get; }

        public Task<IReadOnlyList<TableInfo>> TablesAsync(CancellationToken cancellationToken) => _tables.GetAsync(cancellationToken);

        public Task<Dictionary<(string Schema, string Name), TableColumns>> ColumnsAsync(IReadOnlyList<TableInfo> tables, CancellationToken cancellationToken)
            => PostgresCatalog.LoadColumnsAsync(DataSource, tables, cancellationToken);
    }
}
