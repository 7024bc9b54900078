using System.Collections.Immutable;

namespace EtlFunnel.Orchestration.Config;

/// <summary>A loaded, validated <c>flows.yaml</c>. Paths are already resolved against the config file's folder.</summary>
public sealed record EtlConfig
{
    /// <summary>The config file as the user named it (used in messages).</summary>
    public required string File { get; init; }

    /// <summary>The hooks folder from <c>hooks:</c>, or <c>null</c> when not set.</summary>
    public string? HooksDirectory { get; init; }

    /// <summary>Where hook code runs, from <c>hooks: {isolation: sandbox|process|none}</c> (default sandbox: a worker under OS limits).</summary>
    public EtlFunnel.Scripting.HookIsolation HooksIsolation { get; init; } = EtlFunnel.Scripting.HookIsolation.Sandbox;

    /// <summary>Host environment variables the hook worker gets, from <c>hooks: {env: [NAME, ...]}</c>; it starts with none.</summary>
    public ImmutableArray<string> HooksEnvironment { get; init; } = [];

    /// <summary>The checkpoint folder from <c>state:</c> (default <c>.etlfunnel/state</c> beside the config); when <see cref="StateTable"/> is set, only its sibling <c>dead-letter</c> folder is used.</summary>
    public required string StateDirectory { get; init; }

    /// <summary>The checkpoint table when <c>state:</c> names a PostgreSQL database, else <c>null</c> (checkpoints in <see cref="StateDirectory"/>).</summary>
    public StateTableConfig? StateTable { get; init; }

    /// <summary>
    /// The cluster of <c>cluster:</c> (<c>run</c> hands the plan's replicas to its workers, as with <c>--cluster</c>), or
    /// <c>null</c>: runs stay on this machine.
    /// </summary>
    public ClusterConfig? Cluster { get; init; }

    /// <summary>Replica caps from <c>limits:</c>.</summary>
    public PlanLimits Limits { get; init; } = new();

    /// <summary>The <c>interval:</c> of <c>etlfunnel watch</c> for flows that set none (a duration such as <c>5m</c>), or <c>null</c>.</summary>
    public string? Interval { get; init; }

    /// <summary>Where the global <c>interval:</c> is written, for error messages.</summary>
    public ConfigLocation? IntervalLocation { get; init; }

    /// <summary>The flows, in file order.</summary>
    public required ImmutableArray<FlowConfig> Flows { get; init; }
}

/// <summary>Replica caps the planner enforces.</summary>
public sealed record PlanLimits
{
    /// <summary>Default cap on a flow's replicas.</summary>
    public const int DefaultMaxFlowReplicas = 1024;

    /// <summary>Default cap on the partitions of one table (over all flow replicas).</summary>
    public const int DefaultMaxPipelineReplicas = 4096;

    /// <summary>Most replicas of one flow (a flow's own <c>max_replicas</c> overrides it).</summary>
    public int MaxFlowReplicas { get; init; } = DefaultMaxFlowReplicas;

    /// <summary>Most partitions of one table, summed over all replicas of its flow.</summary>
    public int MaxPipelineReplicas { get; init; } = DefaultMaxPipelineReplicas;
}

/// <summary>One configured flow: a Postgres source, a destination and the tables it syncs.</summary>
public sealed record FlowConfig
{
    /// <summary>The flow's unique name.</summary>
    public required string Name { get; init; }

    /// <summary>Where the flow is defined.</summary>
    public required ConfigLocation Location { get; init; }

    /// <summary>The Npgsql connection string of the source (may contain a password: never print it).</summary>
    public required string SourceConnectionString { get; init; }

    /// <summary>Where the documents go.</summary>
    public required DestinationConfig Destination { get; init; }

    /// <summary>Table selections, in file order.</summary>
    public required ImmutableArray<PipelineConfig> Pipelines { get; init; }

    /// <summary>Extra Postgres connections hooks see in <c>AuxiliaryDBConnMap</c>, by name.</summary>
    public ImmutableDictionary<string, string> Auxiliary { get; init; } = ImmutableDictionary<string, string>.Empty;

    /// <summary>This flow's cap on flow replicas (overrides <see cref="PlanLimits.MaxFlowReplicas"/>).</summary>
    public int? MaxReplicas { get; init; }

    /// <summary>How often <c>etlfunnel watch</c> runs this flow (a duration such as <c>30s</c>, <c>1h30m</c>), or <c>null</c> for the default.</summary>
    public string? Interval { get; init; }

    /// <summary>Where this flow's <c>interval:</c> is written, for error messages.</summary>
    public ConfigLocation? IntervalLocation { get; init; }

    /// <summary>The change data capture settings when the flow says <c>mode: cdc</c>, else <c>null</c>.</summary>
    public CdcConfig? Cdc { get; init; }
}

/// <summary>A flow's <c>mode: cdc</c> settings: <c>slot:</c>, <c>publication:</c> (both default <c>etlfunnel_&lt;flow&gt;</c>) and <c>truncate:</c>.</summary>
public sealed record CdcConfig
{
    /// <summary>The pgoutput replication slot of the flow.</summary>
    public required string Slot { get; init; }

    /// <summary>The publication listing the flow's tables (created if missing).</summary>
    public required string Publication { get; init; }

    /// <summary>True for <c>truncate: delete_all</c> (delete every document of the index); false for <c>truncate: stop</c> (the default).</summary>
    public bool TruncateDeletesAll { get; init; }

    /// <summary>Where <c>mode: cdc</c> is written, for error messages.</summary>
    public required ConfigLocation Location { get; init; }
}

/// <summary>The kind of destination.</summary>
public enum DestinationKind
{
    /// <summary>An Elasticsearch cluster URL.</summary>
    Elasticsearch,

    /// <summary>A folder of bulk-ready NDJSON files.</summary>
    Files,
}

/// <summary>A flow's destination.</summary>
public sealed record DestinationConfig(DestinationKind Kind, string Target, ConfigLocation Location)
{
    /// <summary>Whether requests to an Elasticsearch destination are gzipped (<c>compression:</c>, default true); always true for files.</summary>
    public bool Compression { get; init; } = true;

    /// <summary>Credentials and TLS from the mapping form of <c>elasticsearch:</c>, or <c>null</c> for the string form.</summary>
    public ElasticsearchSecurityConfig? Elasticsearch { get; init; }
}

/// <summary>
/// <c>destination: {elasticsearch: {url|cloud_id, api_key|username+password, ca_file|fingerprint}}</c>. Holds secrets:
/// <see cref="ToString"/> shows only which settings are present.
/// </summary>
public sealed record ElasticsearchSecurityConfig
{
    /// <summary>The <c>cloud_id:</c> of an Elastic Cloud deployment (the destination's target is the URL it decodes to), or <c>null</c>.</summary>
    public string? CloudId { get; init; }

    /// <summary>The <c>api_key:</c> (sent as <c>Authorization: ApiKey ...</c>), or <c>null</c>.</summary>
    public string? ApiKey { get; init; }

    /// <summary>The basic-auth <c>username:</c>, or <c>null</c>.</summary>
    public string? Username { get; init; }

    /// <summary>The basic-auth <c>password:</c>, or <c>null</c>.</summary>
    public string? Password { get; init; }

    /// <summary>The <c>ca_file:</c> (PEM or DER, resolved against the config's folder) the server certificate must chain to, or <c>null</c>.</summary>
    public string? CaFile { get; init; }

    /// <summary>The <c>fingerprint:</c> (SHA-256 of the CA certificate, hex with or without colons), or <c>null</c>.</summary>
    public string? Fingerprint { get; init; }

    /// <summary>Names the settings without their secret values.</summary>
    public override string ToString() => string.Join(", ", new[]
    {
        CloudId is null ? null : "cloud_id",
        ApiKey is null ? null : "api_key: ***",
        Username is null ? null : $"username: {Username}",
        Password is null ? null : "password: ***",
        CaFile is null ? null : $"ca_file: {CaFile}",
        Fingerprint is null ? null : $"fingerprint: {Fingerprint}",
    }.Where(s => s is not null));
}

/// <summary>One <c>pipelines:</c> entry: the tables it selects and how they map to indices.</summary>
public sealed record PipelineConfig
{
    /// <summary>Schema glob (<c>*</c>, <c>?</c>), default <c>public</c>.</summary>
    public string Schema { get; init; } = "public";

    /// <summary>Table glob, default <c>*</c>.</summary>
    public string Table { get; init; } = "*";

    /// <summary>Target index template with <c>{schema}</c>, <c>{table}</c>, <c>{flow}</c>; default <c>{schema}_{table}</c>.</summary>
    public string Index { get; init; } = "{schema}_{table}";

    /// <summary>Explicit key columns; empty means the primary key.</summary>
    public ImmutableArray<string> Key { get; init; } = [];

    /// <summary>A column that only grows, for incremental syncs; <c>null</c> for full syncs.</summary>
    public string? Incremental { get; init; }

    /// <summary>Count rows exactly (one <c>count(*)</c> per table) instead of the catalog estimate.</summary>
    public bool ExactCounts { get; init; }

    /// <summary><c>incremental_margin:</c> (a duration for date/time columns, an amount for numeric ones), or <c>null</c> for the column type's default.</summary>
    public Plans.IncrementalMargin? IncrementalMargin { get; init; }

    /// <summary>Where <c>incremental_margin:</c> is written, for error messages.</summary>
    public ConfigLocation? IncrementalMarginLocation { get; init; }

    /// <summary>Where the entry is defined.</summary>
    public required ConfigLocation Location { get; init; }
}

/// <summary>Checkpoints in a PostgreSQL table: <c>state: postgres://...</c> or <c>state: {postgres: ..., table: ..., scope: ...}</c> or <c>state: {source: &lt;flow&gt;}</c>.</summary>
public sealed record StateTableConfig
{
    /// <summary>The table used when none is named.</summary>
    public const string DefaultTable = "etlfunnel.checkpoints";

    /// <summary>The scope used when none is named.</summary>
    public const string DefaultScope = "default";

    /// <summary>Npgsql connection string of the database holding the table (may contain a password: never print it).</summary>
    public required string ConnectionString { get; init; }

    /// <summary><c>schema.table</c> or <c>table</c> (in <c>public</c>), lower-case.</summary>
    public string Table { get; init; } = DefaultTable;

    /// <summary>Separates jobs that share one table (e.g. one scope per region).</summary>
    public string Scope { get; init; } = DefaultScope;

    /// <summary>Where <c>state:</c> is written, for error messages.</summary>
    public required ConfigLocation Location { get; init; }

    /// <summary>Describes the table without credentials.</summary>
    public override string ToString() => $"table {Table} (scope '{Scope}') at {Location}";
}

/// <summary>
/// <c>cluster:</c> in flows.yaml: the cluster's state database (a <c>postgres://</c> URL or an Npgsql connection string,
/// <c>${VAR}</c>s resolved) and optionally its id, the same as <c>--cluster</c> and <c>--cluster-id</c>.
/// </summary>
public sealed record ClusterConfig
{
    /// <summary>Npgsql connection string of the cluster's state database (may contain a password: never print it).</summary>
    public required string ConnectionString { get; init; }

    /// <summary>The cluster id of <c>cluster: {id: …}</c>, or <c>null</c> (<c>ETLFUNNEL_CLUSTER_ID</c>, else <c>etlfunnel</c>).</summary>
    public string? ClusterId { get; init; }

    /// <summary>Where <c>cluster:</c> is written, for error messages.</summary>
    public required ConfigLocation Location { get; init; }
}
