using System.Text.Json;
using EtlFunnel.Execution.Models;
using EtlFunnel.Orchestration.Tests.Support;
using Microsoft.CodeAnalysis.CSharp.Scripting;
using Microsoft.CodeAnalysis.Scripting;

namespace EtlFunnel.Orchestration.Tests.Planning;

/// <summary>
/// The shipped hooks/*.csx compile as plain C# scripts against the contract and answer exactly like the hand-written
/// mirrors the planner and CLI tests use, so those tests say something about the real samples.
/// </summary>
public sealed class SampleHooksTests
{
    private static async Task<Func<OrchestratorProps, List<OrchestratorTune>>> Compile(string file, string method)
    {
        var code = await File.ReadAllTextAsync(Repo.Path("hooks", file));
        var options = ScriptOptions.Default.WithReferences(typeof(OrchestratorProps).Assembly, typeof(List<>).Assembly);
        return await CSharpScript.EvaluateAsync<Func<OrchestratorProps, List<OrchestratorTune>>>(
            code + $"\n(System.Func<OrchestratorProps, List<OrchestratorTune>>){method}", options);
    }

    private static string Json(IEnumerable<OrchestratorTune> tunes) => JsonSerializer.Serialize(tunes);

    [Fact]
    public async Task The_sample_hooks_compile_and_answer_like_their_hand_written_mirrors()
    {
        var flow = await Compile("flow-by-cores.csx", "GetFlowOrchestration");
        var pipeline = await Compile("pipeline-by-rows.csx", "GetPipelineOrchestration");
        var flows = Workloads.Flows(2, ("public.small", 10), ("public.mid", 1_000_001), ("public.big", 10_000_001));

        foreach (var cores in new[] { 8, 16, 32 })
        {
            var flowProps = new OrchestratorProps { Entity = [.. flows.Select(f => f.Entity)], Machine = Workloads.Machine(cores) };
            Json(flow(flowProps)).Should().Be(Json(await SeedHooks.FlowByCores().InvokeAsync(flowProps)));
        }

        var pipelineProps = new OrchestratorProps { Entity = [.. flows[0].Pipelines.Select(p => p.Entity)], Machine = Workloads.Machine() };
        var fromScript = pipeline(pipelineProps);
        Json(fromScript).Should().Be(Json(await SeedHooks.PipelineByRows().InvokeAsync(pipelineProps)));
        fromScript.GroupBy(t => t.ParentEntityName).Select(g => g.Count()).Should().Equal(1, 2, 4);
    }

    [Fact]
    public async Task The_plugin_sample_answers_like_the_script_samples()
    {
        var flows = Workloads.Flows(2, ("public.small", 10), ("public.mid", 1_000_001), ("public.big", 10_000_001));
        var flowProps = new OrchestratorProps { Entity = [.. flows.Select(f => f.Entity)], Machine = Workloads.Machine(16) };
        var pipelineProps = new OrchestratorProps { Entity = [.. flows[0].Pipelines.Select(p => p.Entity)], Machine = Workloads.Machine(16) };

        Json(new EtlFunnel.Samples.Plugins.CpuFlows().GetFlowOrchestration(flowProps)).Should().Be(Json(await SeedHooks.FlowByCores().InvokeAsync(flowProps)));
        Json(new EtlFunnel.Samples.Plugins.RowSplitPipelines().GetPipelineOrchestration(pipelineProps)).Should().Be(Json(await SeedHooks.PipelineByRows().InvokeAsync(pipelineProps)));
    }
}
