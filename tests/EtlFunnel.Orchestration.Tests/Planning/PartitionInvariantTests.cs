using EtlFunnel.Execution.Models;
using EtlFunnel.Orchestration.Planning;
using EtlFunnel.Orchestration.Plans;
using EtlFunnel.Orchestration.Tests.Support;

namespace EtlFunnel.Orchestration.Tests.Planning;

/// <summary>The exactly-once invariant: for any flow × pipeline replication, each table's partitions are disjoint and cover [0, 1).</summary>
public sealed class PartitionInvariantTests
{
    private static readonly (string, long)[] Tables = [("public.a", 10), ("public.b", 5_000_000), ("s1.c", 20_000_000)];

    public static TheoryData<int, int> Seeds()
    {
        var data = new TheoryData<int, int>();
        foreach (var n in new[] { 1, 2, 3, 4, 5, 7, 8, 12, 16, 32 })
        {
            foreach (var seed in new[] { 1, 2, 3 })
            {
                data.Add(n, seed);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public async Task Partitions_of_every_table_are_disjoint_and_cover_it_for_any_replication(int flowReplicas, int seed)
    {
        // Each flow replica picks its own M per table, as real hooks may (e.g. by the flow replica's props).
        var random = new Random(seed * 7919 + flowReplicas);
        var chosen = new Dictionary<(string, string), int>();
        var flowHook = TestHook.Flow("hooks/flow.csx", p => Tunes.Split(p, _ => flowReplicas, "core"));
        var pipelineHook = TestHook.Pipeline("hooks/pipeline.csx", p => Tunes.Split(p, e =>
        {
            var key = (p.Parent!.NewEntityName, e.Name);
            if (!chosen.TryGetValue(key, out var m))
            {
                m = random.Next(1, 10);
                chosen[key] = m;
            }

            return m;
        }));

        var plan = await new Planner(new TestHooks(flowHook, pipelineHook)).PlanAsync(Workloads.Flows(2, Tables), Workloads.Machine());

        plan.Flows.Should().HaveCount(2 * flowReplicas);
        AssertCoverage(plan);
    }

    [Fact]
    public async Task Every_combination_of_small_N_and_per_replica_M_covers_each_table_exactly_once()
    {
        // Exhaustive over N in 1..4 and every M vector in 1..4 for each flow replica (340 plans).
        var checkedPlans = 0;
        for (var n = 1; n <= 4; n++)
        {
            foreach (var ms in Vectors(n, 4))
            {
                var flowHook = TestHook.Flow("hooks/flow.csx", p => Tunes.Split(p, _ => n));
                var pipelineHook = TestHook.Pipeline("hooks/pipeline.csx", p =>
                    Tunes.Split(p, _ => ms[(int)p.Parent!.ReplicaProps[ReplicaPropKeys.ReplicaId]!]));
                var plan = await new Planner(new TestHooks(flowHook, pipelineHook)).PlanAsync(Workloads.Flows(1, ("public.t", 1)), Workloads.Machine());
                AssertCoverage(plan);
                checkedPlans++;
            }
        }

        checkedPlans.Should().Be(4 + 16 + 64 + 256);
    }

    [Fact]
    public async Task Flow_replica_i_of_N_and_pipeline_replica_j_of_M_read_the_documented_interval()
    {
        var flowHook = TestHook.Flow("hooks/flow.csx", p => Tunes.Split(p, _ => 2));
        var pipelineHook = TestHook.Pipeline("hooks/pipeline.csx", p => Tunes.Split(p, _ => 2));
        var plan = await new Planner(new TestHooks(flowHook, pipelineHook)).PlanAsync(Workloads.Flows(1, ("public.t", 1)), Workloads.Machine());

        plan.AllPipelines().Select(x => $"{x.Pipeline.Partition.Start}..{x.Pipeline.Partition.End} #{x.Pipeline.Partition.Index}/{x.Pipeline.Partition.Count}")
            .Should().Equal("0..1/4 #0/4", "1/4..1/2 #1/4", "1/2..3/4 #2/4", "3/4..1 #3/4");
    }

    private static void AssertCoverage(ExecutionPlan plan)
    {
        foreach (var table in plan.AllPipelines().GroupBy(x => (x.Flow.Parent, x.Pipeline.Table)))
        {
            var parts = table.Select(x => x.Pipeline.Partition).OrderBy(p => p.Start).ToList();
            parts[0].Start.Should().Be(Fraction.Zero, "the first partition of {0} starts at 0", table.Key);
            parts[^1].End.Should().Be(Fraction.One, "the last partition of {0} ends at 1", table.Key);
            for (var k = 0; k < parts.Count; k++)
            {
                (parts[k].Start < parts[k].End).Should().BeTrue("partition {0} of {1} is not empty", k, table.Key);
                if (k > 0)
                {
                    parts[k].Start.Should().Be(parts[k - 1].End, "partitions of {0} are adjacent: no gap, no overlap", table.Key);
                }
            }

            parts.Select(p => p.Index).Order().Should().Equal(Enumerable.Range(0, parts.Count));
            parts.Should().OnlyContain(p => p.Count == parts.Count);
        }
    }

    private static IEnumerable<int[]> Vectors(int length, int max)
    {
        if (length == 0)
        {
            yield return [];
            yield break;
        }

        foreach (var rest in Vectors(length - 1, max))
        {
            for (var v = 1; v <= max; v++)
            {
                yield return [.. rest, v];
            }
        }
    }
}
