using EtlFunnel.Destinations;

namespace EtlFunnel.Sync;

/// <summary>Everything one sync run needs: the flows (replicas already expanded by the planner) and the run options.</summary>
public sealed record SyncJob
{
    /// <summary>The flow replicas to run; each carries its own pipeline replicas.</summary>
    public required IReadOnlyList<SyncFlow> Flows { get; init; }

    /// <summary>How the run behaves (concurrency, state and dead-letter folders, mode).</summary>
    public SyncOptions Options { get; init; } = new();
}

/// <summary>A flow replica: one source database and one destination, with the pipeline replicas that run under it.</summary>
public sealed record SyncFlow
{
    /// <summary>Unique name of this flow replica (e.g. <c>orders_core_0</c>); used in state keys and the report.</summary>
    public required string Name { get; init; }

    /// <summary>Npgsql connection string of the source database.</summary>
    public required string SourceConnectionString { get; init; }

    /// <summary>The configured flow this replica belongs to (what hooks' <c>flow/schema.table</c> globs match); the replica's <see cref="Name"/> when not set.</summary>
    public string? ConfiguredFlow { get; init; }

    /// <summary>Where documents go.</summary>
    public required SyncDestination Destination { get; init; }

    /// <summary>The pipeline replicas of this flow replica.</summary>
    public required IReadOnlyList<SyncPipeline> Pipelines { get; init; }

    /// <summary>Change data capture settings of the flow (slot, publication, TRUNCATE policy); used by <see cref="Cdc.CdcEngine"/>.</summary>
    public Cdc.CdcFlowSettings? Cdc { get; init; }
}

/// <summary>A pipeline replica: one partition of one table, written to one index.</summary>
public sealed record SyncPipeline
{
    /// <summary>Unique name of this pipeline replica within its flow (e.g. <c>orders_partition_1</c>).</summary>
    public required string ReplicaName { get; init; }

    /// <summary>Schema of the source table.</summary>
    public string Schema { get; init; } = "public";

    /// <summary>Source table (a plain or a partitioned table).</summary>
    public required string Table { get; init; }

    /// <summary>Columns whose values make the document <c>_id</c>; empty means the table's primary key.</summary>
    public IReadOnlyList<string> KeyColumns { get; init; } = [];

    /// <summary>Destination index (or folder name for the files destination).</summary>
    public required string IndexName { get; init; }

    /// <summary>Column used as the incremental watermark; null means every run reads the whole partition.</summary>
    public string? IncrementalColumn { get; init; }

    /// <summary>This pipeline's re-read window for a date/time incremental column; null means <see cref="SyncOptions.IncrementalTimeMargin"/>.</summary>
    public TimeSpan? IncrementalTimeMargin { get; init; }

    /// <summary>This pipeline's re-read window for a numeric incremental column; null means <see cref="SyncOptions.IncrementalNumericMargin"/>.</summary>
    public decimal? IncrementalNumericMargin { get; init; }

    /// <summary>The share of the table this replica reads; <see cref="PartitionRange.Whole"/> for an unreplicated pipeline.</summary>
    public PartitionRange Partition { get; init; } = PartitionRange.Whole;

    /// <summary>Replica props from the plan (see <c>ReplicaPropKeys</c>): batch_size, batch_bytes, max_in_flight, fetch_size.</summary>
    public IReadOnlyDictionary<string, object?> Props { get; init; } = new Dictionary<string, object?>();
}

/// <summary>Whether a run reads whole partitions or only rows above the last watermark.</summary>
public enum SyncMode
{
    /// <summary>Every pipeline reads its whole partition (an interrupted full run resumes where it stopped).</summary>
    Full,

    /// <summary>Pipelines with an incremental column read rows above their last watermark minus the safety margin; others read everything.</summary>
    Incremental,

    /// <summary>Change data capture (<see cref="Cdc.CdcEngine"/>): a snapshot read like a full run, then the WAL streamed from the slot.</summary>
    Cdc,
}

/// <summary>Run-wide options.</summary>
public sealed record SyncOptions
{
    /// <summary>Data-plane transformers (hooks declaring <c>Transform</c>), applied in order to the batches of the tables they apply to.</summary>
    public IReadOnlyList<Transforming.IBatchTransformer> Transformers { get; init; } = [];

    /// <summary>
    /// Batch-level hooks (scripts declaring <c>WriteRule</c>, <c>Termination</c>, <c>OnCheckpoint</c> or <c>OnBacklog</c>), in
    /// file-name order, applied to the replicas of the tables they apply to (full and incremental runs).
    /// </summary>
    public IReadOnlyList<Batching.IPipelineHook> PipelineHooks { get; init; } = [];

    /// <summary>How many times one record may be retried on a backlog hook's Retry (then it is dead-lettered); default 3.</summary>
    public int MaxBacklogRetries { get; init; } = 3;

    /// <summary>The per-call time budget of each transformer call (a whole batch) and each batch-level hook call (default 5 s).</summary>
    public TimeSpan TransformBudget { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>When set, counts the documents written under each transformer version.</summary>
    public Transforming.TransformerCounts? TransformerCounts { get; init; }

    /// <summary>Most pipeline replicas running at once (default: twice the processor count).</summary>
    public int MaxConcurrency { get; init; } = Environment.ProcessorCount * 2;

    /// <summary>Folder of the checkpoint store (one JSON file per replica); not used when <see cref="StateTable"/> is set.</summary>
    public string StateDirectory { get; init; } = Path.Combine(".etlfunnel", "state");

    /// <summary>When set, checkpoints are rows of this PostgreSQL table (created if missing) instead of files under <see cref="StateDirectory"/>.</summary>
    public PostgresStateTable? StateTable { get; init; }

    /// <summary>Folder where dead-lettered documents are written.</summary>
    public string DeadLetterDirectory { get; init; } = Path.Combine(".etlfunnel", "dead-letter");

    /// <summary>Full or incremental.</summary>
    public SyncMode Mode { get; init; } = SyncMode.Full;

    /// <summary>Heap blocks (8 kB each by default) per checkpointed chunk; a crash re-reads at most one chunk per replica.</summary>
    public int BlocksPerChunk { get; init; } = 1024;

    /// <summary>Re-read window behind the watermark for date/time incremental columns (transactions still in flight at the last run).</summary>
    public TimeSpan IncrementalTimeMargin { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Re-read window behind the watermark for numeric incremental columns.</summary>
    public long IncrementalNumericMargin { get; init; } = 1000;

    /// <summary>Attempts per bulk request for retryable failures (429, 502, 503, 504, dropped connections) before the replica fails.</summary>
    public int MaxBulkRetries { get; init; } = 8;

    /// <summary>First backoff delay; doubles on each attempt, with jitter.</summary>
    public TimeSpan RetryBaseDelay { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Attempts to reconnect and resume after the source connection breaks mid-read.</summary>
    public int MaxSourceReconnects { get; init; } = 5;

    /// <summary>Clock used for durations and checkpoint timestamps.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Longest wait for the ACCESS SHARE lock on a source table (held for the run so rewrites wait for it); then the run fails naming the table.</summary>
    public TimeSpan LockTimeout { get; init; } = TimeSpan.FromMinutes(1);
}

/// <summary>A PostgreSQL table that holds the checkpoints: one row per (scope, flow replica, pipeline replica) plus the run manifest.</summary>
/// <param name="ConnectionString">Npgsql connection string of the database that holds (or will hold) the table.</param>
public sealed record PostgresStateTable(string ConnectionString)
{
    /// <summary>The table used when none is named.</summary>
    public const string DefaultTable = "etlfunnel.checkpoints";

    /// <summary>The scope used when none is named.</summary>
    public const string DefaultScope = "default";

    /// <summary><c>schema.table</c> (or <c>table</c>, in <c>public</c>), lower-case; the schema and table are created if missing.</summary>
    public string Table { get; init; } = DefaultTable;

    /// <summary>Separates jobs that share the table, as separate folders do (<c>etlfunnel watch</c> uses <c>&lt;scope&gt;/watch/&lt;flow&gt;</c>).</summary>
    public string Scope { get; init; } = DefaultScope;

    /// <summary>Where the user configured this table (e.g. <c>flows.yaml(3,8)</c>), named in error messages.</summary>
    public string? ConfiguredAt { get; init; }

    /// <summary>
    /// When set, every write of this scope is fenced by a lease epoch (a cluster replica's owner, docs/cluster.md) instead of the
    /// scope's advisory lock: a write is refused with <see cref="StaleEpochException"/> once the lease row has a newer epoch.
    /// </summary>
    public StateFence? Fence { get; init; }

    /// <summary>The server and database, without credentials: <c>host:port/database</c>.</summary>
    public string Server
    {
        get
        {
            try
            {
                var b = new Npgsql.NpgsqlConnectionStringBuilder(ConnectionString);
                return $"{b.Host}:{b.Port}/{b.Database}";
            }
            catch (ArgumentException)
            {
                return "(invalid connection string)";
            }
        }
    }

    /// <summary>Describes the table without the connection string's password: <c>table etlfunnel.checkpoints (scope 'default') in host:5432/db</c>.</summary>
    public override string ToString() => $"table {Table} (scope '{Scope}') in {Server}";
}

/// <summary>
/// The lease a fenced checkpoint scope is written under: the row <c>lease_key = <paramref name="LeaseKey"/></c> of
/// <paramref name="LeaseTable"/> (columns <c>lease_key text</c>, <c>epoch bigint</c>) must still hold <paramref name="Epoch"/>.
/// </summary>
/// <param name="LeaseTable">Qualified table name of the leases, e.g. <c>etlfunnel_cluster.leases</c>.</param>
/// <param name="LeaseKey">The lease this writer holds.</param>
/// <param name="Epoch">The epoch it took; a newer owner's takeover increments it.</param>
public sealed record StateFence(string LeaseTable, string LeaseKey, long Epoch);

/// <summary>A checkpoint write was refused because another owner took the replica's lease (a newer fencing epoch): this owner must stop.</summary>
public sealed class StaleEpochException : Exception
{
    /// <summary>Creates the exception for <paramref name="fence"/>.</summary>
    public StaleEpochException(StateFence fence)
        : base($"the checkpoint of lease '{fence?.LeaseKey}' was not written: epoch {fence?.Epoch} is stale (another worker took over this replica); this owner stops, the new owner resumes from the last checkpoint.")
    {
        Fence = fence;
    }

    /// <summary>Creates the exception.</summary>
    public StaleEpochException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public StaleEpochException(string message) : base(message)
    {
    }

    /// <summary>Creates the exception with an inner cause.</summary>
    public StaleEpochException(string message, Exception innerException) : base(message, innerException)
    {
    }

    /// <summary>The stale fence (null when created without one).</summary>
    public StateFence? Fence { get; }
}
