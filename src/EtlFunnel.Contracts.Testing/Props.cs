using System;
using System.Collections.Generic;
using System.Threading;
using EtlFunnel.Execution.Models;

namespace EtlFunnel.Execution.Testing;

/// <summary>
/// Builds the <see cref="OrchestratorProps"/> a hook is called with:
/// <c>Props.Flow(Machines.With(cores: 8)).Entity("shop", rows: 5_000_000).Build()</c>, or
/// <c>Props.Pipeline(machine, parent).Entity("public.orders", rows: 12_000_000).Build()</c>.
/// </summary>
public static class Props
{
    /// <summary>Props for a flow hook (no parent) on <paramref name="machine"/> (default <c>Machines.With()</c>).</summary>
    public static OrchestratorPropsBuilder Flow(MachineInfo? machine = null) => new(machine ?? Machines.With(), parent: null);

    /// <summary>Props for a pipeline hook: the tables of flow replica <paramref name="parent"/> (default: replica 0 of 1 of a flow named <c>flow</c>).</summary>
    public static OrchestratorPropsBuilder Pipeline(MachineInfo? machine = null, OrchestratorTune? parent = null)
        => new(machine ?? Machines.With(), parent ?? new OrchestratorTune
        {
            ParentEntityName = "flow",
            NewEntityName = "flow",
            ReplicaProps = new Dictionary<string, object?> { [ReplicaPropKeys.ReplicaId] = 0, [ReplicaPropKeys.TotalReplicas] = 1 },
        });
}

/// <summary>A builder of <see cref="OrchestratorProps"/>; <see cref="Build"/> makes the immutable props.</summary>
public sealed class OrchestratorPropsBuilder
{
    private readonly List<OrchestratorEntityDef> entities = [];
    private readonly List<MachineInfo> cluster = [];
    private readonly MachineInfo machine;
    private readonly OrchestratorTune? parent;
    private CancellationToken cancellationToken;
    private IHookLog? log;

    internal OrchestratorPropsBuilder(MachineInfo machine, OrchestratorTune? parent)
    {
        this.machine = machine ?? throw new ArgumentNullException(nameof(machine));
        this.parent = parent;
    }

    /// <summary>Adds an entity whose source is a <see cref="FakeDatabaseEngine"/> table of <paramref name="rows"/> rows (and <paramref name="bytes"/>, default 100 a row).</summary>
    public OrchestratorPropsBuilder Entity(string name, long rows = 0, long? bytes = null, int partitions = 0, bool exact = false, double latencyMs = 1)
        => Entity(name, FakeDatabaseEngine.Table(rows, bytes, partitions, exact, latencyMs, name));

    /// <summary>Adds an entity with the given source engine (and destination, default a fake Elasticsearch index of the same name).</summary>
    public OrchestratorPropsBuilder Entity(string name, IDatabaseEngine source, IDatabaseEngine? destination = null, IReadOnlyDictionary<string, IDatabaseEngine>? auxiliary = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(source);
        entities.Add(new OrchestratorEntityDef
        {
            Name = name,
            SourceDBConn = source,
            DestDBConn = destination ?? new FakeDatabaseEngine("elasticsearch", name),
            AuxiliaryDBConnMap = auxiliary ?? new Dictionary<string, IDatabaseEngine>(),
        });
        return this;
    }

    /// <summary>Adds a cluster member (what <c>run --cluster</c> passes in <see cref="OrchestratorProps.ClusterMachines"/>).</summary>
    public OrchestratorPropsBuilder ClusterMachine(MachineInfo member)
    {
        cluster.Add(member ?? throw new ArgumentNullException(nameof(member)));
        return this;
    }

    /// <summary>The logger the hook sees as <see cref="OrchestratorProps.Log"/>, e.g. a <see cref="RecordingHookLog"/>.</summary>
    public OrchestratorPropsBuilder LoggingTo(IHookLog log)
    {
        this.log = log ?? throw new ArgumentNullException(nameof(log));
        return this;
    }

    /// <summary>The token the hook sees as <see cref="OrchestratorProps.CancellationToken"/> (its time budget in the host).</summary>
    public OrchestratorPropsBuilder CancelledBy(CancellationToken token)
    {
        cancellationToken = token;
        return this;
    }

    /// <summary>The props, as the planner would pass them.</summary>
    public OrchestratorProps Build() => new()
    {
        Entity = entities.ToArray(),
        Machine = machine,
        ClusterMachines = cluster.ToArray(),
        Parent = parent,
        CancellationToken = cancellationToken,
        Log = log ?? new RecordingHookLog(),
    };
}
