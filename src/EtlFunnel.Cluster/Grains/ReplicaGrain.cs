using EtlFunnel.Cluster.Placement;
using EtlFunnel.Cluster.Worker;
using Orleans.Runtime;

namespace EtlFunnel.Cluster.Grains;

/// <summary>What a caller hands a replica grain: which pipeline replica of which plan, and the checkpoints it resumes from.</summary>
[GenerateSerializer, Immutable, Alias("etlfunnel.ReplicaAssignment")]
internal sealed record ReplicaAssignment
{
    [Id(0)] public required string RunId { get; init; }

    /// <summary>The flow replica's name in the plan.</summary>
    [Id(1)] public required string Flow { get; init; }

    /// <summary>The pipeline replica's name in the plan.</summary>
    [Id(2)] public required string Replica { get; init; }

    /// <summary>The whole plan as <c>PlanJson</c> (no passwords: the worker joins it to its own flows.yaml).</summary>
    [Id(3)] public required string PlanJson { get; init; }

    /// <summary>The content hash of the hooks the plan was made with (<see cref="HooksFingerprint"/>).</summary>
    [Id(4)] public required string HooksHash { get; init; }

    /// <summary>Checkpoint table (<c>schema.table</c>) in the cluster's database.</summary>
    [Id(5)] public required string StateTable { get; init; }

    /// <summary>The caller's checkpoint scope; the replica's own is <c>&lt;scope&gt;/cluster/&lt;flow&gt;/&lt;replica&gt;</c>.</summary>
    [Id(6)] public required string Scope { get; init; }

    /// <summary>True for an incremental run (watermarks kept); false reads every row.</summary>
    [Id(7)] public bool Incremental { get; init; }

    /// <summary>
    /// The run's snapshot of the replica's source database, exported by the planner (<c>pg_export_snapshot()</c>) and held
    /// open until every replica is done; the worker imports it instead of taking its own.
    /// </summary>
    [Id(8)] public required string SnapshotId { get; init; }

    /// <summary>Block count of every leaf relation of the source as of the snapshot (the planner's), so partitions fit together.</summary>
    [Id(9)] public required Dictionary<string, long> Blocks { get; init; }

    /// <summary>The replica's lease key.</summary>
    public string LeaseKey => Leases.LeaseStore.KeyOf(RunId, Flow, Replica);
}

/// <summary>How a start request ended.</summary>
[GenerateSerializer, Alias("etlfunnel.StartOutcome")]
internal enum StartOutcome
{
    /// <summary>The grain runs the replica (or already did).</summary>
    Started,

    /// <summary>Another owner holds a live lease, or the replica is finished; the caller asks again later.</summary>
    Busy,

    /// <summary>This worker may not run it (different hooks, missing flow); the message says why.</summary>
    Refused,
}

/// <summary>The answer to a start request.</summary>
[GenerateSerializer, Immutable, Alias("etlfunnel.StartResult")]
internal sealed record StartResult([property: Id(0)] StartOutcome Outcome, [property: Id(1)] string Message);

/// <summary>One attempt at one pipeline replica (key: <c>&lt;lease key&gt;#&lt;attempt&gt;@&lt;silo&gt;</c>).</summary>
[Alias("etlfunnel.IReplicaGrain")]
internal interface IReplicaGrain : IGrainWithStringKey
{
    /// <summary>Starts the replica in the background and returns at once; its outcome lands in the lease row.</summary>
    [Alias("Start")]
    Task<StartResult> StartAsync(ReplicaAssignment assignment);
}

/// <summary>The grain behind <see cref="IReplicaGrain"/>: takes the lease and hands the run to the worker's <see cref="ReplicaExecutor"/>.</summary>
[TargetSiloPlacement]
internal sealed class ReplicaGrain(ReplicaExecutor executor, ILocalSiloDetails silo) : Grain, IReplicaGrain
{
    private Task? _run;

    public async Task<StartResult> StartAsync(ReplicaAssignment assignment)
    {
        if (_run is not null)
        {
            return new StartResult(StartOutcome.Started, "already started");
        }

        var owner = $"{silo.SiloAddress.ToParsableString()} {this.GetPrimaryKeyString()}";
        var (result, run) = await executor.TryStartAsync(assignment, owner).ConfigureAwait(true);
        if (run is not null)
        {
            _run = run;
            // The run outlives this call by far; the activation stays until it ends (then idle collection removes it).
            DelayDeactivation(TimeSpan.FromDays(7));
        }

        return result;
    }
}
