using System.Collections.Immutable;
using System.Text.Json;
using EtlFunnel.Execution.Models;
using EtlFunnel.Orchestration.Config;
using EtlFunnel.Orchestration.Discovery;
using EtlFunnel.Orchestration.Plans;
using EtlFunnel.Scripting;

namespace EtlFunnel.Orchestration.Planning;

/// <summary>
/// Runs flow hooks over the flows, then pipeline hooks over each flow replica's tables, validates every answer and
/// assigns each pipeline replica its partition. See docs/planning.md for the rules.
/// </summary>
public sealed class Planner
{
    private const int MaxNamesInMessage = 8;
    private readonly IOrchestrationHooks _hooks;
    private readonly string _baseDirectory;

    /// <summary>Creates a planner over a set of hooks; hook paths in messages are shown relative to <paramref name="baseDirectory"/> (default: the current directory).</summary>
    public Planner(IOrchestrationHooks hooks, string? baseDirectory = null)
    {
        _hooks = hooks ?? throw new ArgumentNullException(nameof(hooks));
        _baseDirectory = baseDirectory ?? Directory.GetCurrentDirectory();
    }

    /// <summary>The cluster's members the hooks see in <see cref="OrchestratorProps.ClusterMachines"/> (<c>run --cluster</c>; empty otherwise).</summary>
    public IReadOnlyList<MachineInfo> ClusterMachines { get; init; } = [];

    /// <summary>
    /// The <see cref="OrchestratorProps.Log"/> hooks get when they run in this process (<c>isolation: none</c>); hooks in the
    /// worker log through the worker's own logger, which the host's <c>HookHostOptions.HookLog</c> receives. Null: dropped.
    /// </summary>
    public IHookLog? HookLog { get; init; }

    /// <summary>Plans <paramref name="workload"/> for <paramref name="machine"/>; throws <see cref="PlanValidationException"/> listing every rule the hooks broke.</summary>
    public Task<ExecutionPlan> PlanAsync(Workload workload, MachineInfo machine, PlanLimits? limits = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(workload);
        return PlanAsync(workload.Flows, machine, limits, cancellationToken);
    }

    /// <summary>Plans the given flows for <paramref name="machine"/>.</summary>
    public async Task<ExecutionPlan> PlanAsync(IReadOnlyList<FlowEntity> flows, MachineInfo machine, PlanLimits? limits = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(flows);
        ArgumentNullException.ThrowIfNull(machine);
        limits ??= new PlanLimits();
        var errors = new List<PlanError>();
        var flowHooks = _hooks.FlowHooks;
        var pipelineHooks = _hooks.PipelineHooks;

        var flowByName = flows.ToDictionary(f => f.Name, StringComparer.Ordinal);
        var flowReplicas = await RunLevelAsync(
            new Level("flow", "flows", flowHooks, flows.Select(f => f.Entity).ToList().AsReadOnly(), Parent: null, Scope: "",
                name => flowByName[name].MaxReplicas ?? limits.MaxFlowReplicas,
                name => flowByName[name].MaxReplicas is null ? $"limits.max_flow_replicas ({limits.MaxFlowReplicas})" : $"max_replicas of flow '{name}' ({flowByName[name].MaxReplicas})"),
            machine, errors, cancellationToken).ConfigureAwait(false);

        if (errors.Count > 0)
        {
            throw new PlanValidationException(errors);
        }

        var plannedFlows = ImmutableArray.CreateBuilder<FlowReplicaPlan>();
        foreach (var flow in flows)
        {
            var replicas = flowReplicas.Where(r => r.Parent == flow.Name).OrderBy(r => r.ReplicaId).ToList();
            var pipelineEntities = flow.Pipelines.Select(p => p.Entity).ToList().AsReadOnly(); // shared by every flow replica: hooks must not be able to edit it
            var perReplica = new List<(Replica Flow, List<Replica> Pipelines)>(replicas.Count);
            foreach (var flowReplica in replicas)
            {
                var parent = new OrchestratorTune
                {
                    ParentEntityName = flowReplica.Parent,
                    NewEntityName = flowReplica.Name,
                    ReplicaProps = new Dictionary<string, object?>(flowReplica.Tune.ReplicaProps ?? new Dictionary<string, object?>(), StringComparer.Ordinal),
                };
                var pipelines = await RunLevelAsync(
                    new Level("pipeline", "tables", pipelineHooks, pipelineEntities, parent, $" in flow replica '{flowReplica.Name}'",
                        _ => limits.MaxPipelineReplicas, _ => $"limits.max_pipeline_replicas ({limits.MaxPipelineReplicas})"),
                    machine, errors, cancellationToken).ConfigureAwait(false);
                perReplica.Add((flowReplica, pipelines));
            }

            if (errors.Count == 0)
            {
                plannedFlows.AddRange(BuildFlow(flow, perReplica, limits, errors));
            }
        }

        if (errors.Count > 0)
        {
            throw new PlanValidationException(errors);
        }

        return new ExecutionPlan
        {
            Machine = new PlanMachine
            {
                Region = machine.Region,
                Cores = machine.LogicalCores,
                MemoryBytes = machine.TotalMemoryBytes,
                HostName = machine.HostName,
                Labels = machine.Labels.ToImmutableSortedDictionary(StringComparer.Ordinal),
            },
            Hooks = new PlanHooks
            {
                Flow = [.. flowHooks.Select(Display)],
                Pipeline = [.. pipelineHooks.Select(Display)],
            },
            Flows = plannedFlows.ToImmutable(),
        };
    }

    /// <summary>Assigns partitions: flow replica i of N and pipeline replica j of M read [(iM+j)/NM, (iM+j+1)/NM).</summary>
    private static List<FlowReplicaPlan> BuildFlow(FlowEntity flow, List<(Replica Flow, List<Replica> Pipelines)> perReplica, PlanLimits limits, List<PlanError> errors)
    {
        // Group once: a flow replica's pipeline replicas by table, in replica-id order.
        var byTable = perReplica.Select(r => r.Pipelines
                .GroupBy(p => p.Parent, StringComparer.Ordinal)
                .ToDictionary(g => g.Key, g => g.OrderBy(p => p.ReplicaId).ToList(), StringComparer.Ordinal))
            .ToList();
        var partitionCounts = flow.Pipelines.ToDictionary(
            p => p.Name,
            p => byTable.Sum(t => t.TryGetValue(p.Name, out var list) ? list.Count : 0),
            StringComparer.Ordinal);
        foreach (var (table, count) in partitionCounts.Where(c => c.Value > limits.MaxPipelineReplicas))
        {
            var hook = byTable.SelectMany(t => t.GetValueOrDefault(table) ?? []).Select(p => p.HookFile).FirstOrDefault();
            errors.Add(new PlanError(hook, null,
                $"table '{table}' of flow '{flow.Name}' would be split into {count} partitions over its {perReplica.Count} flow replicas, above limits.max_pipeline_replicas ({limits.MaxPipelineReplicas}); return fewer replicas or raise the limit in the config"));
        }

        if (errors.Count > 0)
        {
            return [];
        }

        var built = new List<FlowReplicaPlan>(perReplica.Count);
        var offsets = flow.Pipelines.ToDictionary(p => p.Name, _ => 0, StringComparer.Ordinal);
        var n = perReplica.Count;
        for (var r = 0; r < perReplica.Count; r++)
        {
            var (flowReplica, pipelineReplicas) = perReplica[r];
            var i = flowReplica.ReplicaId;
            var pipelines = ImmutableArray.CreateBuilder<PipelineReplicaPlan>(pipelineReplicas.Count);
            foreach (var table in flow.Pipelines)
            {
                var mine = byTable[r].GetValueOrDefault(table.Name) ?? [];
                var m = mine.Count;
                foreach (var p in mine)
                {
                    var j = p.ReplicaId;
                    var denominator = (long)n * m;
                    pipelines.Add(new PipelineReplicaPlan
                    {
                        Name = p.Name,
                        Parent = table.Name,
                        Table = table.Table.Ref,
                        Index = table.Index,
                        Key = table.Key,
                        Incremental = table.Incremental,
                        IncrementalMargin = table.IncrementalMargin,
                        ReplicaId = j,
                        TotalReplicas = m,
                        Props = p.Props,
                        Partition = new PlanPartition(
                            new Fraction(((long)i * m) + j, denominator),
                            new Fraction(((long)i * m) + j + 1, denominator),
                            offsets[table.Name] + j,
                            partitionCounts[table.Name]),
                        Stats = new PlanTableStats(table.Table.Rows, table.Table.RowsAreExact, table.Table.Bytes, table.Table.PartitionCount),
                    });
                }

                offsets[table.Name] += m;
            }

            built.Add(new FlowReplicaPlan
            {
                Name = flowReplica.Name,
                Parent = flow.Name,
                ReplicaId = i,
                TotalReplicas = n,
                Props = flowReplica.Props,
                Source = new PlanEndpoint("postgres", flow.SourceName),
                Destination = new PlanEndpoint(flow.Destination.Kind == DestinationKind.Elasticsearch ? "elasticsearch" : "files", DisplayTarget(flow.Destination)),
                Pipelines = pipelines.ToImmutable(),
            });
        }

        return built;
    }

    /// <summary>The destination as the plan shows it: an Elasticsearch URL loses its password (<c>http://user:***@host:9200</c>).</summary>
    private static string DisplayTarget(DestinationConfig destination)
    {
        if (destination.Kind != DestinationKind.Elasticsearch || !Uri.TryCreate(destination.Target, UriKind.Absolute, out var uri) || string.IsNullOrEmpty(uri.UserInfo))
        {
            return destination.Target;
        }

        var user = uri.UserInfo.Split(':', 2)[0];
        return new UriBuilder(uri) { UserName = user, Password = uri.UserInfo.Contains(':', StringComparison.Ordinal) ? "***" : "" }.Uri.ToString();
    }

    /// <summary>The engine's props (batch_size, ...) are read here exactly as the engine reads them, so what the plan accepts, the run accepts.</summary>
    private static string? EnginePropsProblem(JsonElement props)
    {
        var values = PlanProps.ToValues(props); // what the run hands the engine

        foreach (var key in ReplicaPropValues.EngineKeys)
        {
            try
            {
                _ = ReplicaPropValues.PositiveInt(values, key, 1);
            }
            catch (FormatException ex)
            {
                return ex.Message;
            }
        }

        return null;
    }

    private async Task<List<Replica>> RunLevelAsync(Level level, MachineInfo machine, List<PlanError> errors, CancellationToken cancellationToken)
    {
        var replicas = new List<Replica>();
        if (level.Hooks.Count == 0)
        {
            foreach (var entity in level.Entities)
            {
                var tune = new OrchestratorTune
                {
                    ParentEntityName = entity.Name,
                    NewEntityName = entity.Name,
                    ReplicaProps = new Dictionary<string, object?>(StringComparer.Ordinal) { [ReplicaPropKeys.ReplicaId] = 0, [ReplicaPropKeys.TotalReplicas] = 1 },
                };
                replicas.Add(new Replica(null, 0, tune, entity.Name, entity.Name, 0, 1, JsonSerializer.SerializeToElement(tune.ReplicaProps)));
            }

            return replicas;
        }

        var known = level.Entities.Select(e => e.Name).ToHashSet(StringComparer.Ordinal);
        var answeredBy = new Dictionary<string, string?>(StringComparer.Ordinal);
        var names = new Dictionary<string, (string? File, int Index)>(StringComparer.Ordinal);
        var reportedConflicts = new HashSet<(string, string?)>();
        var errorsBefore = errors.Count;
        var invocationFailed = false;
        foreach (var hook in level.Hooks)
        {
            var file = Display(hook);
            IReadOnlyList<OrchestratorTune> tunes;
            try
            {
                var props = new OrchestratorProps { Entity = level.Entities, Machine = machine, ClusterMachines = ClusterMachines, Parent = level.Parent, CancellationToken = cancellationToken };
                if (HookLog is { } hookLog)
                {
                    props = new OrchestratorProps { Entity = props.Entity, Machine = props.Machine, ClusterMachines = props.ClusterMachines, Parent = props.Parent, CancellationToken = props.CancellationToken, Log = hookLog };
                }

                tunes = await hook.InvokeAsync(props, cancellationToken).ConfigureAwait(false)
                    ?? throw new HookInvocationException(hook.Name, null, null, "the hook returned null instead of a list of tunes");
            }
            catch (HookInvocationException ex)
            {
                errors.Add(new PlanError(ex.File is null ? file : DisplayPath(ex.File), ex.Line, $"{level.Name} hook '{hook.Name}' failed{level.Scope}: {ex.Message}"));
                invocationFailed = true;
                continue;
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                errors.Add(new PlanError(file, null, $"{level.Name} hook '{hook.Name}' failed{level.Scope}: {ex.GetType().Name}: {ex.Message}"));
                invocationFailed = true;
                continue;
            }

            for (var k = 0; k < tunes.Count; k++)
            {
                var tune = tunes[k];
                if (tune is null)
                {
                    errors.Add(new PlanError(file, null, $"{level.Name} tune #{k}{level.Scope} is null; return only real OrchestratorTune objects"));
                    continue;
                }

                var entry = new Entry(level, k, tune);
                if (!known.Contains(tune.ParentEntityName ?? ""))
                {
                    errors.Add(new PlanError(file, null, $"{entry}: unknown ParentEntityName '{tune.ParentEntityName}'; the {level.Plural} here are: {List(level.Entities.Select(e => e.Name))}"));
                    continue;
                }

                if (answeredBy.TryGetValue(tune.ParentEntityName!, out var owner))
                {
                    if (owner != file)
                    {
                        if (reportedConflicts.Add((tune.ParentEntityName!, file)))
                        {
                            errors.Add(new PlanError(file, null,
                                $"{entry}: {level.Name} '{tune.ParentEntityName}' is answered by both {owner} and {file}; each {level.Name} must be answered by exactly one hook, so make one of them skip it"));
                        }

                        continue;
                    }
                }
                else
                {
                    answeredBy[tune.ParentEntityName!] = file;
                }

                if (string.IsNullOrWhiteSpace(tune.NewEntityName))
                {
                    errors.Add(new PlanError(file, null, $"{entry}: NewEntityName is empty; give every replica a unique name"));
                    continue;
                }

                if (names.TryGetValue(tune.NewEntityName, out var first))
                {
                    errors.Add(new PlanError(file, null,
                        $"{entry}: duplicate NewEntityName '{tune.NewEntityName}', already used by tune #{first.Index} of {first.File}; replica names must be unique{(level.Parent is null ? " in the plan" : " within a flow replica")}"));
                    continue;
                }

                names.Add(tune.NewEntityName, (file, k));
                var tuneProps = tune.ReplicaProps ?? new Dictionary<string, object?>();
                if (!ReadId(tuneProps, ReplicaPropKeys.ReplicaId, entry, file, errors, out var id) |
                    !ReadId(tuneProps, ReplicaPropKeys.TotalReplicas, entry, file, errors, out var total))
                {
                    continue;
                }

                JsonElement json;
                try
                {
                    json = JsonSerializer.SerializeToElement(tuneProps);
                }
                catch (Exception ex) when (ex is NotSupportedException or JsonException or InvalidOperationException or ArgumentException)
                {
                    errors.Add(new PlanError(file, null, $"{entry}: ReplicaProps cannot be serialised to JSON ({ex.Message}); use numbers, strings, booleans, lists and dictionaries of those"));
                    continue;
                }

                if (level.Parent is not null && EnginePropsProblem(json) is { } problem)
                {
                    errors.Add(new PlanError(file, null, $"{entry}: {problem}; the sync engine reads it per pipeline replica (see ReplicaPropKeys)"));
                    continue;
                }

                replicas.Add(new Replica(file, k, tune, tune.ParentEntityName!, tune.NewEntityName, id, total, json));
            }
        }

        ValidateReplicaSets(level, replicas, errors);
        if (!invocationFailed && errors.Count == errorsBefore)
        {
            var missing = level.Entities.Select(e => e.Name).Where(n => !answeredBy.ContainsKey(n)).ToList();
            if (missing.Count > 0)
            {
                errors.Add(new PlanError(Display(level.Hooks[0]), null,
                    $"{missing.Count} {level.Plural} got no replica{level.Scope} from {List(level.Hooks.Select(Display))}: {List(missing)}; every {level.Name} needs at least one tune with its name as ParentEntityName"));
            }
        }

        return replicas;
    }

    private static void ValidateReplicaSets(Level level, List<Replica> replicas, List<PlanError> errors)
    {
        foreach (var group in replicas.GroupBy(r => r.Parent, StringComparer.Ordinal))
        {
            var file = group.First().HookFile;
            var what = $"{level.Name} '{group.Key}'{level.Scope}";
            var totals = group.Select(r => r.Total).Distinct().ToList();
            if (totals.Count > 1)
            {
                errors.Add(new PlanError(file, null,
                    $"{what}: its tunes disagree on total_replicas ({string.Join(", ", group.Select(r => $"'{r.Name}' says {r.Total}"))}); every replica of an entity must carry the same total_replicas"));
                continue;
            }

            var total = totals[0];
            var count = group.Count();
            var cap = level.Cap(group.Key);
            if (count > cap)
            {
                errors.Add(new PlanError(file, null, $"{what}: {count} replicas, above the cap of {level.CapName(group.Key)}; return fewer replicas or raise the cap in the config"));
                continue;
            }

            var ids = group.GroupBy(r => r.ReplicaId).ToDictionary(g => g.Key, g => g.Select(r => r.Name).ToList());
            foreach (var (id, holders) in ids.Where(i => i.Value.Count > 1))
            {
                errors.Add(new PlanError(file, null, $"{what}: replica_id {id} is used by {holders.Count} tunes ({List(holders.Select(h => $"'{h}'"))}); each replica_id must appear exactly once"));
            }

            foreach (var bad in group.Where(r => r.ReplicaId >= total))
            {
                errors.Add(new PlanError(file, null, $"{what}: tune '{bad.Name}' has replica_id {bad.ReplicaId}, which is not below its total_replicas {total}; ids run from 0 to total_replicas - 1"));
            }

            var gaps = Enumerable.Range(0, Math.Min(total, cap + 1)).Where(i => !ids.ContainsKey(i)).ToList();
            if (gaps.Count > 0 || count != total)
            {
                errors.Add(new PlanError(file, null,
                    $"{what}: total_replicas is {total} but {count} tune{(count == 1 ? "" : "s")} came back" +
                    (gaps.Count > 0 ? $"; replica_id {List(gaps.Select(g => g.ToString(System.Globalization.CultureInfo.InvariantCulture)))} missing (a gap would leave part of the table unread)" : "") +
                    "; return exactly one tune for each replica_id from 0 to total_replicas - 1"));
            }
        }
    }

    private static bool ReadId(IDictionary<string, object?> props, string key, Entry entry, string? file, List<PlanError> errors, out int value)
    {
        value = 0;
        if (!props.TryGetValue(key, out var raw))
        {
            errors.Add(new PlanError(file, null, $"{entry}: ReplicaProps has no '{key}'; every tune needs integer '{ReplicaPropKeys.ReplicaId}' and '{ReplicaPropKeys.TotalReplicas}'"));
            return false;
        }

        if (!ReplicaValue.TryGetInt(raw, out value))
        {
            errors.Add(new PlanError(file, null, $"{entry}: '{key}' must be an integer, not {ReplicaValue.Describe(raw)}"));
            return false;
        }

        var min = key == ReplicaPropKeys.TotalReplicas ? 1 : 0;
        if (value < min)
        {
            errors.Add(new PlanError(file, null, $"{entry}: '{key}' is {value}; it must be at least {min}"));
            return false;
        }

        return true;
    }

    private static string List(IEnumerable<string> items)
    {
        var all = items.ToList();
        return all.Count <= MaxNamesInMessage
            ? string.Join(", ", all)
            : $"{string.Join(", ", all.Take(MaxNamesInMessage))} (and {all.Count - MaxNamesInMessage} more)";
    }

    private string Display(IOrchestrationHook hook) => DisplayPath(hook.SourcePath);

    private string DisplayPath(string path)
    {
        if (!Path.IsPathRooted(path))
        {
            return path;
        }

        var relative = Path.GetRelativePath(_baseDirectory, path);
        return relative.StartsWith("..", StringComparison.Ordinal) || Path.IsPathRooted(relative) ? path : relative;
    }

    private sealed record Level(
        string Name,
        string Plural,
        IReadOnlyList<IOrchestrationHook> Hooks,
        IReadOnlyList<OrchestratorEntityDef> Entities,
        OrchestratorTune? Parent,
        string Scope,
        Func<string, int> Cap,
        Func<string, string> CapName);

    /// <summary>Names a tune in messages; formatted only when an error is reported.</summary>
    private readonly record struct Entry(Level Level, int Index, OrchestratorTune Tune)
    {
        public override string ToString() =>
            $"{Level.Name} tune #{Index} (NewEntityName '{Tune.NewEntityName}', ParentEntityName '{Tune.ParentEntityName}'){Level.Scope}";
    }

    private sealed record Replica(string? HookFile, int TuneIndex, OrchestratorTune Tune, string Parent, string Name, int ReplicaId, int Total, JsonElement Props);
}
