using EtlFunnel.Orchestration.Planning;
using EtlFunnel.Orchestration.Plans;
using EtlFunnel.Orchestration.Tests.Support;

namespace EtlFunnel.Orchestration.Tests.Plans;

public sealed class PlanJsonAndDiffTests
{
    private static readonly (string, long)[] Tables = [("public.small", 1_000), ("big.events", 12_000_000)];

    private static Task<ExecutionPlan> Plan(int cores) =>
        new Planner(SeedHooks.Both()).PlanAsync(Workloads.Flows(2, Tables), Workloads.Machine(cores));

    [Fact]
    public async Task A_plan_survives_a_json_round_trip_unchanged()
    {
        var plan = await Plan(3);
        var json = PlanJson.Serialize(plan);
        var back = PlanJson.Deserialize(json);

        PlanJson.Serialize(back).Should().Be(json);
        PlanDiff.Compare(plan, back).IsEmpty.Should().BeTrue();
        back.AllPipelines().Select(x => x.Pipeline.Partition).Should().Equal(plan.AllPipelines().Select(x => x.Pipeline.Partition));
    }

    [Fact]
    public async Task The_json_is_deterministic_for_the_same_inputs() =>
        PlanJson.Serialize(await Plan(4)).Should().Be(PlanJson.Serialize(await Plan(4)));

    [Fact]
    public async Task More_cores_make_flow_and_pipeline_replicas_appear_and_repartition_the_survivors()
    {
        var diff = PlanDiff.Compare(await Plan(2), await Plan(3));

        var flow0 = diff.Flows.Single(f => f.Flow == "flow0").Changes;
        flow0.Where(c => c.Kind == ReplicaChangeKind.Appeared && !c.IsPipeline).Select(c => c.Replica).Should().Equal("flow0_core_2");
        flow0.Where(c => c.Kind == ReplicaChangeKind.Appeared && c.IsPipeline).Should().HaveCount(5); // 1 small + 4 big in the new replica
        flow0.Should().Contain(c => c.Kind == ReplicaChangeKind.PropsChanged && c.Replica == "flow0_core_0" && c.After!.Contains("\"total_replicas\":3", StringComparison.Ordinal));
        flow0.Should().Contain(c => c.Kind == ReplicaChangeKind.PartitionChanged && c.Replica == "flow0_core_1/big.events_partition_0"
            && c.Before == "big.events -> big_events [1/2, 5/8)" && c.After == "big.events -> big_events [1/3, 5/12)");
        flow0.Should().NotContain(c => c.Kind == ReplicaChangeKind.Vanished);
    }

    [Fact]
    public async Task Fewer_cores_make_replicas_vanish()
    {
        var diff = PlanDiff.Compare(await Plan(3), await Plan(2));
        diff.Flows.Single(f => f.Flow == "flow1").Changes.Where(c => c.Kind == ReplicaChangeKind.Vanished).Select(c => c.Replica)
            .Should().Equal("flow1_core_2", "flow1_core_2/public.small_partition_0", "flow1_core_2/big.events_partition_0",
                "flow1_core_2/big.events_partition_1", "flow1_core_2/big.events_partition_2", "flow1_core_2/big.events_partition_3");
    }

    [Fact]
    public async Task A_plan_written_before_tables_were_typed_still_reads_and_incremental_margins_round_trip()
    {
        var json = PlanJson.Serialize(await Plan(1));
        var old = System.Text.RegularExpressions.Regex.Replace(json, "\"table\": \\{\\s*\"schema\": \"([^\"]*)\",\\s*\"name\": \"([^\"]*)\"\\s*\\}", "\"table\": \"$1.$2\"");
        old.Should().Contain("\"table\": \"big.events\"");
        PlanJson.Deserialize(old).AllPipelines().Select(x => x.Pipeline.Table).Should().Contain(new TableRef("big", "events"));

        foreach (var text in new[] { "5m", "1h30m", "90s", "250ms", "0s", "1000", "0.5" })
        {
            IncrementalMargin.TryParse(text, out var margin).Should().BeTrue(text);
            margin!.ToString().Should().Be(text == "90s" ? "1m30s" : text);
        }

        IncrementalMargin.TryParse("5 minutes", out _).Should().BeFalse();
        IncrementalMargin.TryParse("-1", out _).Should().BeFalse();
    }
}
