using EtlFunnel.Execution.Models;
using EtlFunnel.Scripting;

namespace EtlFunnel.Orchestration.Tests.Support;

/// <summary>A hand-written hook standing in for a compiled .csx; its SourcePath is what validation errors must name.</summary>
internal sealed class TestHook : IOrchestrationHook
{
    private readonly Func<OrchestratorProps, IReadOnlyList<OrchestratorTune>> _body;

    public TestHook(HookLevel level, string sourcePath, Func<OrchestratorProps, IReadOnlyList<OrchestratorTune>> body)
    {
        Level = level;
        SourcePath = sourcePath;
        _body = body;
    }

    public string Name => Path.GetFileName(SourcePath);

    public string SourcePath { get; }

    public HookLevel Level { get; }

    public List<OrchestratorProps> Calls { get; } = [];

    public static TestHook Flow(string sourcePath, Func<OrchestratorProps, IReadOnlyList<OrchestratorTune>> body) => new(HookLevel.Flow, sourcePath, body);

    public static TestHook Pipeline(string sourcePath, Func<OrchestratorProps, IReadOnlyList<OrchestratorTune>> body) => new(HookLevel.Pipeline, sourcePath, body);

    public Task<IReadOnlyList<OrchestratorTune>> InvokeAsync(OrchestratorProps props, CancellationToken cancellationToken = default)
    {
        Calls.Add(props);
        return Task.FromResult(_body(props));
    }
}

internal sealed class TestHooks : IOrchestrationHooks
{
    public TestHooks(params IOrchestrationHook[] hooks)
    {
        FlowHooks = hooks.Where(h => h.Level == HookLevel.Flow).ToList();
        PipelineHooks = hooks.Where(h => h.Level == HookLevel.Pipeline).ToList();
    }

    public IReadOnlyList<IOrchestrationHook> FlowHooks { get; }

    public IReadOnlyList<IOrchestrationHook> PipelineHooks { get; }
}

internal static class Tunes
{
    public static OrchestratorTune Make(string parent, string name, object? replicaId, object? total, params (string Key, object? Value)[] extra)
    {
        var props = new Dictionary<string, object?>();
        if (replicaId is not null)
        {
            props[ReplicaPropKeys.ReplicaId] = replicaId;
        }

        if (total is not null)
        {
            props[ReplicaPropKeys.TotalReplicas] = total;
        }

        foreach (var (k, v) in extra)
        {
            props[k] = v;
        }

        return new OrchestratorTune { ParentEntityName = parent, NewEntityName = name, ReplicaProps = props };
    }

    /// <summary>n replicas of every entity, named like the seed.</summary>
    public static IReadOnlyList<OrchestratorTune> Split(OrchestratorProps p, Func<OrchestratorEntityDef, int> count, string infix = "part") =>
        p.Entity.SelectMany(e => Enumerable.Range(0, count(e)).Select(i => Make(e.Name, $"{e.Name}_{infix}_{i}", i, count(e)))).ToList();
}
