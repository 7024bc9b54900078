using System.Collections.Immutable;
using System.Text.RegularExpressions;
using YamlDotNet.RepresentationModel;

namespace EtlFunnel.Orchestration.Config;

/// <summary>Loads <c>flows.yaml</c>: unknown keys, bad values and unset <c>${VAR}</c>s are <see cref="ConfigException"/>s naming the line.</summary>
public static partial class ConfigLoader
{
    private const string DefaultStateDirectory = ".etlfunnel/state";
    private static readonly string[] IndexPlaceholders = ["schema", "table", "flow"];

    /// <summary>Loads and validates a config file; <paramref name="environment"/> resolves <c>${VAR}</c> (default: the process environment).</summary>
    public static async Task<EtlConfig> LoadAsync(string path, Func<string, string?>? environment = null, CancellationToken cancellationToken = default)
    {
        string text;
        try
        {
            text = await File.ReadAllTextAsync(path, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException(path, $"cannot read the config file: {ex.Message}", ex);
        }

        return Parse(text, path, Path.GetDirectoryName(Path.GetFullPath(path))!, environment ?? Environment.GetEnvironmentVariable);
    }

    /// <summary>Parses config text; relative paths resolve against <paramref name="baseDirectory"/>.</summary>
    public static EtlConfig Parse(string text, string displayFile, string baseDirectory, Func<string, string?> environment)
    {
        var yaml = new YamlReader(displayFile, environment);
        var root = yaml.LoadRoot(text) ?? throw new ConfigException(displayFile, "the config file is empty; it needs at least a 'flows:' list");
        var top = yaml.Mapping(root, "the config file", "hooks", "state", "cluster", "limits", "interval", "flows");

        if (!top.TryGetValue("flows", out var flowsNode))
        {
            throw new ConfigException(yaml.At(root), "the config file has no 'flows:' list; add one (see docs/planning.md)");
        }

        var limits = new PlanLimits();
        if (top.TryGetValue("limits", out var limitsNode))
        {
            var l = yaml.Mapping(limitsNode.Value, "limits", "max_flow_replicas", "max_pipeline_replicas");
            limits = new PlanLimits
            {
                MaxFlowReplicas = l.TryGetValue("max_flow_replicas", out var f) ? yaml.PositiveInt(f.Value, "limits.max_flow_replicas") : PlanLimits.DefaultMaxFlowReplicas,
                MaxPipelineReplicas = l.TryGetValue("max_pipeline_replicas", out var p) ? yaml.PositiveInt(p.Value, "limits.max_pipeline_replicas") : PlanLimits.DefaultMaxPipelineReplicas,
            };
        }

        var flows = ImmutableArray.CreateBuilder<FlowConfig>();
        var names = new Dictionary<string, ConfigLocation>(StringComparer.Ordinal);
        var flowNodes = yaml.Sequence(flowsNode.Value, "flows");
        if (flowNodes.Count == 0)
        {
            throw new ConfigException(yaml.At(flowsNode.Value), "'flows:' is empty; define at least one flow");
        }

        foreach (var flowNode in flowNodes)
        {
            var flow = ParseFlow(yaml, flowNode, baseDirectory);
            if (names.TryGetValue(flow.Name, out var first))
            {
                throw new ConfigException(flow.Location, $"flow name '{flow.Name}' is already used at {first}; flow names must be unique");
            }

            names.Add(flow.Name, flow.Location);
            flows.Add(flow);
        }

        var (stateDirectory, stateTable) = top.TryGetValue("state", out var state) ? ParseState(yaml, state.Value, flows) : (null, null);
        var (hooksDirectory, hooksIsolation, hooksEnvironment) = top.TryGetValue("hooks", out var hooks) ? ParseHooks(yaml, hooks.Value, baseDirectory) : (null, Scripting.HookIsolation.Sandbox, []);
        return new EtlConfig
        {
            File = displayFile,
            HooksDirectory = hooksDirectory,
            HooksIsolation = hooksIsolation,
            HooksEnvironment = hooksEnvironment,
            StateDirectory = Resolve(baseDirectory, stateDirectory ?? DefaultStateDirectory),
            StateTable = stateTable,
            Cluster = top.TryGetValue("cluster", out var cluster) ? ParseCluster(yaml, cluster.Value) : null,
            Limits = limits,
            Interval = top.TryGetValue("interval", out var interval) ? yaml.NonEmptyString(interval.Value, "interval") : null,
            IntervalLocation = top.TryGetValue("interval", out var intervalAt) ? yaml.At(intervalAt.Value) : null,
            Flows = flows.ToImmutable(),
        };
    }

    /// <summary><c>hooks:</c> is a folder path, or a mapping <c>{path: ./hooks, isolation: sandbox|process|none, env: [NAME]}</c>.</summary>
    private static (string? Directory, Scripting.HookIsolation Isolation, ImmutableArray<string> Environment) ParseHooks(YamlReader yaml, YamlNode node, string baseDirectory)
    {
        if (node is YamlScalarNode)
        {
            return (Resolve(baseDirectory, yaml.NonEmptyString(node, "hooks")), Scripting.HookIsolation.Sandbox, []);
        }

        if (node is not YamlMappingNode)
        {
            throw new ConfigException(yaml.At(node), "'hooks:' must be a folder path ('hooks: ./hooks') or a mapping ('hooks: {path: ./hooks, isolation: sandbox}')");
        }

        var m = yaml.Mapping(node, "hooks", "path", "isolation", "env");
        if (!m.TryGetValue("path", out var path))
        {
            throw new ConfigException(yaml.At(node), "'hooks:' needs 'path:', the hooks folder ('hooks: {path: ./hooks, isolation: sandbox}')");
        }

        var isolation = Scripting.HookIsolation.Sandbox;
        if (m.TryGetValue("isolation", out var isolationNode))
        {
            isolation = yaml.NonEmptyString(isolationNode.Value, "hooks.isolation") switch
            {
                "sandbox" => Scripting.HookIsolation.Sandbox,
                "process" => Scripting.HookIsolation.Process,
                "none" => Scripting.HookIsolation.None,
                var other => throw new ConfigException(yaml.At(isolationNode.Value),
                    $"hooks.isolation '{other}' is not one of sandbox (a worker process under OS limits, the default), process (a worker with whatever limits this OS has) or none (hooks run inside etlfunnel; only for hooks you trust)"),
            };
        }

        var environment = m.TryGetValue("env", out var env) ? yaml.StringList(env.Value, "hooks.env") : [];
        foreach (var name in environment)
        {
            if (name.Length == 0 || name.Contains('=', StringComparison.Ordinal))
            {
                throw new ConfigException(yaml.At(env.Value), $"hooks.env lists '{name}', which is not an environment variable name; list names only (values come from etlfunnel's environment)");
            }
        }

        return (Resolve(baseDirectory, yaml.NonEmptyString(path.Value, "hooks.path")), isolation, [.. environment]);
    }

    /// <summary><c>state:</c> is a folder path, a <c>postgres://</c> URL, or a mapping naming a PostgreSQL database.</summary>
    private static (string? Directory, StateTableConfig? Table) ParseState(YamlReader yaml, YamlNode node, IReadOnlyList<FlowConfig> flows)
    {
        const string Forms = "write a folder ('state: ./.etlfunnel/state'), a URL ('state: postgres://user:password@host:5432/db'), " +
            "or 'state: {postgres: \"Host=...;Database=...\", table: etlfunnel.checkpoints}' / 'state: {source: <flow name>}'";
        if (node is YamlScalarNode)
        {
            var value = yaml.NonEmptyString(node, "state");
            return PostgresUrl.IsUrl(value)
                ? (null, new StateTableConfig { ConnectionString = UrlConnectionString(yaml, node, value, "state"), Location = yaml.At(node) })
                : (value, null);
        }

        if (node is not YamlMappingNode)
        {
            throw new ConfigException(yaml.At(node), $"'state:' must be a folder path or a mapping; {Forms}");
        }

        var m = yaml.Mapping(node, "state", "postgres", "source", "table", "scope");
        string connectionString;
        if (m.TryGetValue("postgres", out var pg) == m.TryGetValue("source", out var source))
        {
            throw new ConfigException(yaml.At(node), $"'state:' needs exactly one of 'postgres:' (a connection string or URL) or 'source:' (a flow whose source database holds the table); {Forms}");
        }
        else if (pg.Value is not null)
        {
            connectionString = yaml.NonEmptyString(pg.Value, "state.postgres");
            if (PostgresUrl.IsUrl(connectionString))
            {
                connectionString = UrlConnectionString(yaml, pg.Value, connectionString, "state.postgres");
            }
            else
            {
                ValidateConnectionString(yaml, pg.Value, connectionString, "state.postgres");
            }
        }
        else
        {
            var flowName = yaml.NonEmptyString(source.Value, "state.source");
            connectionString = flows.FirstOrDefault(f => f.Name == flowName)?.SourceConnectionString
                ?? throw new ConfigException(yaml.At(source.Value),
                    $"state.source '{flowName}' is not a flow of this file; name the flow whose source database should hold the checkpoints ({string.Join(", ", flows.Select(f => f.Name))})");
        }

        var table = StateTableConfig.DefaultTable;
        if (m.TryGetValue("table", out var t))
        {
            table = yaml.NonEmptyString(t.Value, "state.table");
            if (!TableNamePattern().IsMatch(table))
            {
                throw new ConfigException(yaml.At(t.Value), $"state.table '{table}' must be 'schema.table' or 'table' in lower-case letters, digits and '_' (e.g. etlfunnel.checkpoints)");
            }
        }

        return (null, new StateTableConfig
        {
            ConnectionString = connectionString,
            Table = table,
            Scope = m.TryGetValue("scope", out var scope) ? yaml.NonEmptyString(scope.Value, "state.scope") : StateTableConfig.DefaultScope,
            Location = yaml.At(node),
        });
    }

    /// <summary><c>cluster:</c> is a <c>postgres://</c> URL or connection string, or <c>{postgres: …, id: …}</c>.</summary>
    private static ClusterConfig ParseCluster(YamlReader yaml, YamlNode node)
    {
        const string Forms = "write 'cluster: postgres://user:${PASSWORD}@host:5432/etlstate' or 'cluster: {postgres: \"Host=...;Database=...\", id: etlfunnel}' (docs/cluster.md)";
        YamlNode at = node;
        string? id = null;
        if (node is YamlMappingNode)
        {
            var m = yaml.Mapping(node, "cluster", "postgres", "id");
            if (!m.TryGetValue("postgres", out var pg))
            {
                throw new ConfigException(yaml.At(node), $"'cluster:' needs 'postgres:', the cluster's state database; {Forms}");
            }

            at = pg.Value;
            if (m.TryGetValue("id", out var idNode))
            {
                id = yaml.NonEmptyString(idNode.Value, "cluster.id");
                if (!NamePattern().IsMatch(id))
                {
                    throw new ConfigException(yaml.At(idNode.Value), $"cluster.id '{id}' may only contain letters, digits, '_' and '-'");
                }
            }
        }
        else if (node is not YamlScalarNode)
        {
            throw new ConfigException(yaml.At(node), $"'cluster:' must be a URL, a connection string or a mapping; {Forms}");
        }

        var what = at == node ? "cluster" : "cluster.postgres";
        var connectionString = yaml.NonEmptyString(at, what);
        if (PostgresUrl.IsUrl(connectionString))
        {
            connectionString = UrlConnectionString(yaml, at, connectionString, what);
        }
        else
        {
            ValidateConnectionString(yaml, at, connectionString, what);
        }

        return new ClusterConfig { ConnectionString = connectionString, ClusterId = id, Location = yaml.At(node) };
    }

    private static string UrlConnectionString(YamlReader yaml, YamlNode node, string url, string what)
    {
        try
        {
            return PostgresUrl.ToConnectionString(url);
        }
        catch (FormatException ex)
        {
            throw new ConfigException(yaml.At(node), $"{what}: {ex.Message}", ex);
        }
    }

    private static FlowConfig ParseFlow(YamlReader yaml, YamlNode node, string baseDirectory)
    {
        var f = yaml.Mapping(node, "a flow", "name", "source", "destination", "pipelines", "auxiliary", "max_replicas", "interval", "mode", "slot", "publication", "truncate");
        var location = yaml.At(node);
        if (!f.TryGetValue("name", out var nameNode))
        {
            throw new ConfigException(location, "this flow has no 'name:'; give every flow a unique name");
        }

        var name = yaml.NonEmptyString(nameNode.Value, "the flow name");
        if (!NamePattern().IsMatch(name))
        {
            throw new ConfigException(yaml.At(nameNode.Value), $"flow name '{name}' may only contain letters, digits, '_' and '-'");
        }

        if (!f.TryGetValue("source", out var sourceNode))
        {
            throw new ConfigException(location, $"flow '{name}' has no 'source:'; add 'source: {{postgres: \"Host=...;Database=...\"}}'");
        }

        var source = yaml.Mapping(sourceNode.Value, $"the source of flow '{name}'", "postgres");
        if (!source.TryGetValue("postgres", out var pg))
        {
            throw new ConfigException(yaml.At(sourceNode.Value), $"the source of flow '{name}' needs 'postgres: <connection string>'");
        }

        var connectionString = yaml.NonEmptyString(pg.Value, $"the source of flow '{name}'");
        ValidateConnectionString(yaml, pg.Value, connectionString, $"the source of flow '{name}'");

        if (!f.TryGetValue("destination", out var destNode))
        {
            throw new ConfigException(location, $"flow '{name}' has no 'destination:'; add 'destination: {{elasticsearch: http://host:9200}}' or 'destination: {{files: ./out}}'");
        }

        var destination = ParseDestination(yaml, destNode.Value, name, baseDirectory);

        if (!f.TryGetValue("pipelines", out var pipelinesNode))
        {
            throw new ConfigException(location, $"flow '{name}' has no 'pipelines:'; add at least '- schema: public' to select tables");
        }

        var pipelines = yaml.Sequence(pipelinesNode.Value, $"the pipelines of flow '{name}'").Select(p => ParsePipeline(yaml, p, name)).ToImmutableArray();
        if (pipelines.IsEmpty)
        {
            throw new ConfigException(yaml.At(pipelinesNode.Value), $"flow '{name}' has an empty 'pipelines:' list");
        }

        var auxiliary = ImmutableDictionary<string, string>.Empty;
        if (f.TryGetValue("auxiliary", out var auxNode))
        {
            if (auxNode.Value is not YamlMappingNode auxMapping)
            {
                throw new ConfigException(yaml.At(auxNode.Value), $"'auxiliary:' of flow '{name}' must map names to Postgres connection strings");
            }

            var builder = ImmutableDictionary.CreateBuilder<string, string>(StringComparer.Ordinal);
            foreach (var (k, v) in auxMapping.Children)
            {
                var auxName = yaml.NonEmptyString(k, "an auxiliary connection name");
                var cs = yaml.NonEmptyString(v, $"auxiliary connection '{auxName}'");
                ValidateConnectionString(yaml, v, cs, $"auxiliary connection '{auxName}'");
                if (!builder.TryAdd(auxName, cs))
                {
                    throw new ConfigException(yaml.At(k), $"auxiliary connection '{auxName}' is defined twice");
                }
            }

            auxiliary = builder.ToImmutable();
        }

        return new FlowConfig
        {
            Name = name,
            Location = location,
            SourceConnectionString = connectionString,
            Destination = destination,
            Pipelines = pipelines,
            Auxiliary = auxiliary,
            MaxReplicas = f.TryGetValue("max_replicas", out var max) ? yaml.PositiveInt(max.Value, $"max_replicas of flow '{name}'") : null,
            Interval = f.TryGetValue("interval", out var interval) ? yaml.NonEmptyString(interval.Value, $"interval of flow '{name}'") : null,
            IntervalLocation = f.TryGetValue("interval", out var intervalAt) ? yaml.At(intervalAt.Value) : null,
            Cdc = ParseCdc(yaml, f, name),
        };
    }

    /// <summary><c>mode: full|incremental|cdc</c> and, for cdc only, <c>slot:</c>, <c>publication:</c>, <c>truncate: stop|delete_all</c>.</summary>
    private static CdcConfig? ParseCdc(YamlReader yaml, Dictionary<string, (YamlScalarNode Key, YamlNode Value)> f, string flow)
    {
        var mode = f.TryGetValue("mode", out var modeNode) ? yaml.NonEmptyString(modeNode.Value, $"mode of flow '{flow}'") : "full";
        if (mode is not ("full" or "incremental" or "cdc"))
        {
            throw new ConfigException(yaml.At(modeNode.Value), $"mode '{mode}' of flow '{flow}' is not one of full, incremental, cdc");
        }

        if (mode != "cdc")
        {
            foreach (var key in new[] { "slot", "publication", "truncate" })
            {
                if (f.TryGetValue(key, out var stray))
                {
                    throw new ConfigException(yaml.At(stray.Key), $"'{key}:' of flow '{flow}' only applies to 'mode: cdc'; add 'mode: cdc' or remove it");
                }
            }

            return null;
        }

        string Name(string key)
        {
            if (!f.TryGetValue(key, out var n))
            {
                return DefaultCdcName(flow);
            }

            var value = yaml.NonEmptyString(n.Value, $"{key} of flow '{flow}'");
            if (value.Length > 63 || !value.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '_'))
            {
                throw new ConfigException(yaml.At(n.Value), $"{key} '{value}' of flow '{flow}' must be at most 63 lower-case letters, digits and '_' (PostgreSQL's rule for slot names), e.g. etlfunnel_{flow.ToLowerInvariant().Replace('-', '_')}");
            }

            return value;
        }

        var truncate = f.TryGetValue("truncate", out var t) ? yaml.NonEmptyString(t.Value, $"truncate of flow '{flow}'") : "stop";
        if (truncate is not ("stop" or "delete_all"))
        {
            throw new ConfigException(yaml.At(t.Value), $"truncate '{truncate}' of flow '{flow}' is not one of stop (stop the flow with an error, the default), delete_all (delete every document of the table's index)");
        }

        return new CdcConfig { Slot = Name("slot"), Publication = Name("publication"), TruncateDeletesAll = truncate == "delete_all", Location = yaml.At(modeNode.Value!) };
    }

    /// <summary>The default slot and publication name of a CDC flow: <c>etlfunnel_&lt;flow&gt;</c>, lower-case, '-' as '_', at most 63 characters.</summary>
    public static string DefaultCdcName(string flow)
    {
        var name = "etlfunnel_" + flow.ToLowerInvariant().Replace('-', '_');
        return name.Length > 63 ? name[..63] : name;
    }

    private static DestinationConfig ParseDestination(YamlReader yaml, YamlNode node, string flow, string baseDirectory)
    {
        var dest = yaml.Mapping(node, $"the destination of flow '{flow}'", "elasticsearch", "files", "compression");
        var hasEs = dest.TryGetValue("elasticsearch", out var es);
        var hasFiles = dest.TryGetValue("files", out var files);
        if (hasEs == hasFiles)
        {
            throw new ConfigException(yaml.At(node), $"the destination of flow '{flow}' needs exactly one of 'elasticsearch:' or 'files:'");
        }

        if (hasFiles)
        {
            return dest.TryGetValue("compression", out var stray)
                ? throw new ConfigException(yaml.At(stray.Key),
                    $"'compression:' of flow '{flow}' only applies to an 'elasticsearch:' destination (files are written uncompressed); remove it")
                : new DestinationConfig(DestinationKind.Files, Resolve(baseDirectory, yaml.NonEmptyString(files.Value, $"the files destination of flow '{flow}'")), yaml.At(files.Value));
        }

        if (es.Value is YamlMappingNode)
        {
            return ParseElasticsearchMapping(yaml, es.Value, flow, baseDirectory) with
            {
                Compression = !dest.TryGetValue("compression", out var compressionOfMapping)
                    || yaml.Bool(compressionOfMapping.Value, $"'compression:' of flow '{flow}'",
                        "; write 'compression: false' to send bulk requests uncompressed (less CPU, more bytes on the network) or 'true' (the default) to gzip them"),
            };
        }

        return new DestinationConfig(DestinationKind.Elasticsearch, ParseUrl(yaml, es.Value, flow), yaml.At(es.Value))
        {
            Compression = !dest.TryGetValue("compression", out var compression)
                || yaml.Bool(compression.Value, $"'compression:' of flow '{flow}'",
                    "; write 'compression: false' to send bulk requests uncompressed (less CPU, more bytes on the network) or 'true' (the default) to gzip them"),
        };
    }

    private static PipelineConfig ParsePipeline(YamlReader yaml, YamlNode node, string flow)
    {
        var p = yaml.Mapping(node, $"a pipeline of flow '{flow}'", "schema", "table", "index", "key", "incremental", "exact_counts", "incremental_margin");
        var pipeline = new PipelineConfig { Location = yaml.At(node) };
        if (p.TryGetValue("schema", out var schema))
        {
            pipeline = pipeline with { Schema = yaml.NonEmptyString(schema.Value, "schema") };
        }

        if (p.TryGetValue("table", out var table))
        {
            pipeline = pipeline with { Table = yaml.NonEmptyString(table.Value, "table") };
        }

        if (p.TryGetValue("index", out var index))
        {
            var template = yaml.NonEmptyString(index.Value, "index");
            foreach (Match m in PlaceholderPattern().Matches(template))
            {
                if (Array.IndexOf(IndexPlaceholders, m.Groups[1].Value) < 0)
                {
                    throw new ConfigException(yaml.At(index.Value), $"unknown placeholder '{{{m.Groups[1].Value}}}' in index template '{template}'; use {{schema}}, {{table}} or {{flow}}");
                }
            }

            pipeline = pipeline with { Index = template };
        }

        if (p.TryGetValue("key", out var key))
        {
            pipeline = pipeline with { Key = [.. yaml.StringList(key.Value, "key")] };
        }

        if (p.TryGetValue("incremental", out var incremental))
        {
            pipeline = pipeline with { Incremental = yaml.NonEmptyString(incremental.Value, "incremental") };
        }

        if (p.TryGetValue("exact_counts", out var exact))
        {
            pipeline = pipeline with { ExactCounts = yaml.Bool(exact.Value, "exact_counts") };
        }

        if (p.TryGetValue("incremental_margin", out var margin))
        {
            pipeline = ParseIncrementalMargin(yaml, pipeline, margin.Value, flow);
        }

        return pipeline;
    }

    private static PipelineConfig ParseIncrementalMargin(YamlReader yaml, PipelineConfig pipeline, YamlNode node, string flow)
    {
        var text = yaml.NonEmptyString(node, "incremental_margin");
        if (pipeline.Incremental is null)
        {
            throw new ConfigException(yaml.At(node), $"'incremental_margin:' in a pipeline of flow '{flow}' needs 'incremental: <column>' in the same entry; add the column or remove the margin");
        }

        return Plans.IncrementalMargin.TryParse(text, out var parsed)
            ? pipeline with { IncrementalMargin = parsed, IncrementalMarginLocation = yaml.At(node) }
            : throw new ConfigException(yaml.At(node),
                $"incremental_margin '{text}' is neither a duration nor a number; write a duration for a date/time column (e.g. 5m, 90s, 1h30m, 250ms) or a number for a numeric column (e.g. 1000)");
    }

    /// <summary>The mapping form: <c>elasticsearch: {url | cloud_id, api_key | username + password, ca_file | fingerprint}</c>.</summary>
    private static DestinationConfig ParseElasticsearchMapping(YamlReader yaml, YamlNode node, string flow, string baseDirectory)
    {
        var what = $"the elasticsearch destination of flow '{flow}'";
        var m = yaml.Mapping(node, what, "url", "cloud_id", "api_key", "username", "password", "ca_file", "fingerprint");
        var hasUrl = m.TryGetValue("url", out var url);
        var hasCloud = m.TryGetValue("cloud_id", out var cloud);
        if (hasUrl == hasCloud)
        {
            throw new ConfigException(hasUrl ? yaml.At(cloud.Key) : yaml.At(node),
                $"{what} needs exactly one of 'url:' (e.g. https://es.example:9200) or 'cloud_id:' (from the Elastic Cloud console)" + (hasUrl ? "; remove one of them" : ""));
        }

        string target;
        ConfigLocation location;
        string? cloudId = null;
        if (hasUrl)
        {
            target = ParseUrl(yaml, url.Value, flow);
            location = yaml.At(url.Value);
            if (Uri.TryCreate(target, UriKind.Absolute, out var withUser) && !string.IsNullOrEmpty(withUser.UserInfo))
            {
                throw new ConfigException(location, $"write the credentials of {what} as 'username:' and 'password:' (or 'api_key:'), not in the URL");
            }
        }
        else
        {
            cloudId = yaml.NonEmptyString(cloud.Value, $"cloud_id of flow '{flow}'");
            location = yaml.At(cloud.Value);
            target = CloudIdUrl(cloudId) ?? throw new ConfigException(location,
                $"cloud_id of flow '{flow}' is not '<deployment>:<base64 of host$es-id$kibana-id>'; copy it unchanged from the Elastic Cloud console");
        }

        string? apiKey = m.TryGetValue("api_key", out var key) ? yaml.NonEmptyString(key.Value, $"api_key of flow '{flow}'") : null;
        string? username = m.TryGetValue("username", out var user) ? yaml.NonEmptyString(user.Value, $"username of flow '{flow}'") : null;
        string? password = m.TryGetValue("password", out var pass) ? yaml.String(pass.Value, $"password of flow '{flow}'") : null;
        if (apiKey is not null && (username is not null || password is not null))
        {
            throw new ConfigException(yaml.At(username is not null ? user.Key : pass.Key),
                $"{what} sets 'api_key:' and basic auth; use either 'api_key:' or 'username:' + 'password:', not both");
        }

        if (password is not null && username is null)
        {
            throw new ConfigException(yaml.At(pass.Key), $"{what} sets 'password:' without 'username:'; add the user name");
        }

        var hasCa = m.TryGetValue("ca_file", out var ca);
        var hasPrint = m.TryGetValue("fingerprint", out var print);
        if (hasCa && hasPrint)
        {
            throw new ConfigException(yaml.At(print.Key), $"{what} sets 'ca_file:' and 'fingerprint:'; trust the cluster by one of them");
        }

        string? caFile = null;
        if (hasCa)
        {
            caFile = Resolve(baseDirectory, yaml.NonEmptyString(ca.Value, $"ca_file of flow '{flow}'"));
            if (!File.Exists(caFile))
            {
                throw new ConfigException(yaml.At(ca.Value), $"ca_file '{caFile}' of flow '{flow}' does not exist (relative paths are resolved against the folder of the config file); fix the path");
            }
        }

        string? fingerprint = null;
        if (hasPrint)
        {
            fingerprint = yaml.NonEmptyString(print.Value, $"fingerprint of flow '{flow}'");
            if (!FingerprintPattern().IsMatch(fingerprint))
            {
                throw new ConfigException(yaml.At(print.Value),
                    $"fingerprint '{fingerprint}' of flow '{flow}' is not a SHA-256 fingerprint; write the CA certificate's 64 hex digits, with or without ':' (openssl x509 -fingerprint -sha256 -noout -in ca.crt)");
            }
        }

        return new DestinationConfig(DestinationKind.Elasticsearch, target, location)
        {
            Elasticsearch = new ElasticsearchSecurityConfig
            {
                CloudId = cloudId,
                ApiKey = apiKey,
                Username = username,
                Password = password,
                CaFile = caFile,
                Fingerprint = fingerprint,
            },
        };
    }

    /// <summary>The HTTPS URL a cloud id names (<c>name:base64("host[:port]$es-id$kibana-id")</c>), or null when it is malformed.</summary>
    private static string? CloudIdUrl(string cloudId)
    {
        var colon = cloudId.IndexOf(':', StringComparison.Ordinal);
        if (colon <= 0 || colon == cloudId.Length - 1)
        {
            return null;
        }

        string decoded;
        try
        {
            decoded = System.Text.Encoding.UTF8.GetString(Convert.FromBase64String(cloudId[(colon + 1)..]));
        }
        catch (FormatException)
        {
            return null;
        }

        var parts = decoded.Split('$');
        if (parts.Length < 2 || parts[0].Length == 0 || parts[1].Length == 0)
        {
            return null;
        }

        var (host, port) = parts[0].Split(':', 2) is [var h, var p] ? (h, ":" + p) : (parts[0], "");
        return Uri.TryCreate($"https://{parts[1]}.{host}{port}", UriKind.Absolute, out var uri) ? uri.ToString().TrimEnd('/') : null;
    }

    private static string ParseUrl(YamlReader yaml, YamlNode node, string flow)
    {
        var text = yaml.NonEmptyString(node, $"the elasticsearch destination of flow '{flow}'");
        return Uri.TryCreate(text, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps)
            ? text
            : throw new ConfigException(yaml.At(node), $"'{text}' is not an http(s) URL; write e.g. http://127.0.0.1:9200");
    }

    private static void ValidateConnectionString(YamlReader yaml, YamlNode node, string connectionString, string what)
    {
        try
        {
            _ = new Npgsql.NpgsqlConnectionStringBuilder(connectionString);
        }
        catch (ArgumentException ex)
        {
            throw new ConfigException(yaml.At(node), $"{what} is not a valid Npgsql connection string: {ex.Message}", ex);
        }
    }

    private static string Resolve(string baseDirectory, string path) => Path.GetFullPath(Path.Combine(baseDirectory, path));

    [GeneratedRegex(@"^(?:[a-z_][a-z0-9_]{0,62}\.)?[a-z_][a-z0-9_]{0,62}$")]
    private static partial Regex TableNamePattern();

    [GeneratedRegex("^(?:[0-9A-Fa-f]{64}|[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){31})$")]
    private static partial Regex FingerprintPattern();

    [GeneratedRegex("^[A-Za-z0-9_-]+$")]
    private static partial Regex NamePattern();

    [GeneratedRegex(@"\{([^}]*)\}")]
    private static partial Regex PlaceholderPattern();
}
