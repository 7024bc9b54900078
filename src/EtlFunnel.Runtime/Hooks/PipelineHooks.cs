using EtlFunnel.Execution.Models;
using EtlFunnel.Scripting;
using EtlFunnel.Scripting.Batching;
using EtlFunnel.Scripting.Transforming;
using EtlFunnel.Sync.Batching;

namespace EtlFunnel.Runtime.Hooks;

/// <summary>
/// The hook host's batch-level hooks (write rule, termination, checkpoint, backlog) as the sync engine's
/// <see cref="IPipelineHook"/>s. Each adapter looks its script up by file name on every call, so a hot reload applies from
/// the next call (the next batch, checkpoint or replica).
/// </summary>
public static class PipelineHooks
{
    /// <summary>One adapter per script with batch-level hooks loaded now, in file-name order.</summary>
    public static IReadOnlyList<IPipelineHook> From(HookHost host)
    {
        ArgumentNullException.ThrowIfNull(host);
        return host.BatchHooks.Select(h => (IPipelineHook)new HostPipelineHook(host, h.Name, h.SourcePath)).ToList();
    }

    private sealed class HostPipelineHook(HookHost host, string name, string sourcePath) : IPipelineHook
    {
        public string Name => name;

        public string SourcePath => sourcePath;

        public bool AppliesTo(string flow, string schema, string table) => Current()?.Matches(new TransformTarget(flow, schema, table)) ?? false;

        public bool Declares(PipelineHookKind kind) => Current() is { } hook && hook.Kinds.HasFlag(kind switch
        {
            PipelineHookKind.WriteRule => BatchHookKinds.WriteRule,
            PipelineHookKind.Termination => BatchHookKinds.Termination,
            PipelineHookKind.Checkpoint => BatchHookKinds.Checkpoint,
            _ => BatchHookKinds.Backlog,
        });

        public Task<WriteRule> WriteRuleAsync(PipelineInfo pipeline, TimeSpan budget, CancellationToken ct) => Require().WriteRuleAsync(pipeline, budget, ct);

        public Task<TerminationRule> TerminationAsync(PipelineInfo pipeline, TimeSpan budget, CancellationToken ct) => Require().TerminationAsync(pipeline, budget, ct);

        public Task<CheckpointDecision> CheckpointAsync(CheckpointInfo checkpoint, TimeSpan budget, CancellationToken ct) => Require().CheckpointAsync(checkpoint, budget, ct);

        public Task<IReadOnlyList<BacklogDecision>> BacklogAsync(IReadOnlyList<BacklogRecord> records, TimeSpan budget, CancellationToken ct) => Require().BacklogAsync(records, budget, ct);

        private IBatchHook Require() => Current() ?? throw new BatchHookException($"{sourcePath}: hook '{name}' was removed from the hooks folder during the run");

        private IBatchHook? Current() => host.BatchHooks.FirstOrDefault(h => h.Name == name);
    }
}
