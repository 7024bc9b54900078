using EtlFunnel.Execution.Models;
using EtlFunnel.Orchestration.Config;
using EtlFunnel.Orchestration.Planning;
using EtlFunnel.Orchestration.Tests.Support;

namespace EtlFunnel.Orchestration.Tests.Planning;

public sealed class PlannerTests
{
    private static readonly (string, long)[] Tables = [("public.small", 1_000), ("public.medium", 2_000_000), ("big.events", 12_000_000)];

    private static Task<EtlFunnel.Orchestration.Plans.ExecutionPlan> Plan(params TestHook[] hooks) =>
        new Planner(new TestHooks(hooks)).PlanAsync(Workloads.Flows(2, Tables), Workloads.Machine());

    private static async Task<PlanValidationException> Refused(params TestHook[] hooks)
    {
        var act = () => Plan(hooks);
        return (await act.Should().ThrowAsync<PlanValidationException>()).Which;
    }

    [Fact]
    public async Task Without_hooks_every_flow_and_table_gets_one_replica_reading_the_whole_table()
    {
        var plan = await Plan();

        plan.Flows.Select(f => f.Name).Should().Equal("flow0", "flow1");
        plan.Flows.Should().OnlyContain(f => f.ReplicaId == 0 && f.TotalReplicas == 1 && f.Pipelines.Length == 3);
        plan.AllPipelines().Should().OnlyContain(x => x.Pipeline.Partition.Start.ToString() == "0" && x.Pipeline.Partition.End.ToString() == "1");
        plan.Flows[0].Props.GetProperty("replica_id").GetInt32().Should().Be(0);
    }

    [Fact]
    public async Task Seed_hooks_scale_flows_by_cores_and_split_tables_by_rows()
    {
        var plan = await new Planner(SeedHooks.Both()).PlanAsync(Workloads.Flows(1, Tables), Workloads.Machine(cores: 8));

        plan.Flows.Should().HaveCount(8);
        plan.Flows[3].Name.Should().Be("flow0_core_3");
        var perTable = plan.AllPipelines().GroupBy(x => x.Pipeline.Table.ToString()).ToDictionary(g => g.Key, g => g.Count());
        perTable.Should().Equal(new Dictionary<string, int> { ["public.small"] = 8, ["public.medium"] = 16, ["big.events"] = 32 });
        plan.Flows[0].Pipelines.First(p => p.Table.ToString() == "big.events").Props.GetProperty("partition_hint").GetString().Should().Be("split_0");
    }

    [Fact]
    public async Task Pipeline_hooks_see_the_flow_replica_as_parent_and_the_machine()
    {
        var pipeline = TestHook.Pipeline("hooks/p.csx", p => Tunes.Split(p, _ => 1));
        await new Planner(new TestHooks(SeedHooks.FlowByCores(), pipeline)).PlanAsync(Workloads.Flows(1, Tables), Workloads.Machine(cores: 3));

        pipeline.Calls.Should().HaveCount(3);
        pipeline.Calls.Select(c => c.Parent!.NewEntityName).Should().Equal("flow0_core_0", "flow0_core_1", "flow0_core_2");
        pipeline.Calls[2].Parent!.ReplicaProps["thread_id"].Should().Be(2);
        pipeline.Calls.Should().OnlyContain(c => c.Machine.LogicalCores == 3 && c.Entity.Count == 3);
    }

    [Fact]
    public async Task Flow_hooks_receive_all_flows_once_without_a_parent()
    {
        var flow = TestHook.Flow("hooks/f.csx", p => Tunes.Split(p, _ => 1));
        await Plan(flow);

        flow.Calls.Should().ContainSingle().Which.Parent.Should().BeNull();
        flow.Calls[0].Entity.Select(e => e.Name).Should().Equal("flow0", "flow1");
    }

    [Fact]
    public async Task Unknown_parent_entity_is_refused_naming_the_hook_file_and_the_entry()
    {
        var ex = await Refused(TestHook.Flow("hooks/flow.csx", _ => [Tunes.Make("flow0", "a", 0, 1), Tunes.Make("flow1", "b", 0, 1), Tunes.Make("nope", "c", 0, 1)]));
        ex.Errors.Should().ContainSingle().Which.ToString().Should().Contain("hooks/flow.csx: error: flow tune #2 (NewEntityName 'c', ParentEntityName 'nope'): unknown ParentEntityName 'nope'")
            .And.Contain("flow0, flow1");
    }

    [Fact]
    public async Task Duplicate_new_entity_names_are_refused_naming_both_entries()
    {
        var ex = await Refused(TestHook.Flow("hooks/flow.csx", _ => [Tunes.Make("flow0", "same", 0, 1), Tunes.Make("flow1", "same", 0, 1)]));
        ex.Errors.Should().ContainSingle().Which.Message.Should().Contain("duplicate NewEntityName 'same', already used by tune #0 of hooks/flow.csx");
    }

    [Fact]
    public async Task Pipeline_replica_names_only_need_to_be_unique_within_their_flow_replica()
    {
        var plan = await Plan(TestHook.Flow("hooks/f.csx", p => Tunes.Split(p, _ => 2)), TestHook.Pipeline("hooks/p.csx", p => Tunes.Split(p, _ => 1, "same")));
        plan.Flows.Should().HaveCount(4);
    }

    [Fact]
    public async Task An_entity_left_without_a_replica_is_refused()
    {
        var ex = await Refused(
            TestHook.Flow("hooks/f.csx", p => Tunes.Split(p, _ => 1)),
            TestHook.Pipeline("hooks/p.csx", p => Tunes.Split(p, _ => 1).Where(t => t.ParentEntityName != "big.events").ToList()));
        ex.Errors.Should().HaveCount(2); // once per flow replica
        ex.Errors[0].ToString().Should().Be("hooks/p.csx: error: 1 tables got no replica in flow replica 'flow0_part_0' from hooks/p.csx: big.events; every pipeline needs at least one tune with its name as ParentEntityName");
    }

    [Theory]
    [InlineData(null, 2, "ReplicaProps has no 'replica_id'")]
    [InlineData(0, null, "ReplicaProps has no 'total_replicas'")]
    [InlineData("0", 1, "'replica_id' must be an integer, not the string \"0\"")]
    [InlineData(0, 1.5, "'total_replicas' must be an integer, not Double 1.5")]
    [InlineData(-1, 1, "'replica_id' is -1; it must be at least 0")]
    [InlineData(0, 0, "'total_replicas' is 0; it must be at least 1")]
    public async Task Missing_or_non_integer_replica_ids_are_refused(object? replicaId, object? total, string expected)
    {
        var ex = await Refused(TestHook.Flow("hooks/flow.csx", _ => [Tunes.Make("flow0", "a", replicaId, total), Tunes.Make("flow1", "b", 0, 1)]));
        ex.Errors.Should().Contain(e => e.Message.Contains(expected, StringComparison.Ordinal) && e.File == "hooks/flow.csx");
    }

    [Fact]
    public async Task Inconsistent_total_replicas_are_refused()
    {
        var ex = await Refused(TestHook.Flow("hooks/flow.csx", _ => [Tunes.Make("flow0", "a", 0, 2), Tunes.Make("flow0", "b", 1, 3), Tunes.Make("flow1", "c", 0, 1)]));
        ex.Errors.Should().ContainSingle().Which.Message.Should().Contain("flow 'flow0': its tunes disagree on total_replicas ('a' says 2, 'b' says 3)");
    }

    [Fact]
    public async Task A_gap_in_replica_ids_is_refused_because_part_of_the_table_would_go_unread()
    {
        var ex = await Refused(
            TestHook.Flow("hooks/f.csx", p => Tunes.Split(p, _ => 1)),
            TestHook.Pipeline("hooks/p.csx", p => p.Entity.SelectMany(e => new[] { Tunes.Make(e.Name, e.Name + "_0", 0, 3), Tunes.Make(e.Name, e.Name + "_2", 2, 3) }).ToList()));
        ex.Errors.Should().Contain(e => e.Message.Contains("pipeline 'big.events' in flow replica 'flow1_part_0': total_replicas is 3 but 2 tunes came back; replica_id 1 missing", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_replica_id_used_twice_is_refused()
    {
        var ex = await Refused(TestHook.Flow("hooks/flow.csx", _ => [Tunes.Make("flow0", "a", 0, 2), Tunes.Make("flow0", "b", 0, 2), Tunes.Make("flow1", "c", 0, 1)]));
        ex.Errors.Select(e => e.Message).Should().Contain(m => m.Contains("replica_id 0 is used by 2 tunes ('a', 'b')", StringComparison.Ordinal))
            .And.Contain(m => m.Contains("replica_id 1 missing", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Flow_replicas_above_the_cap_are_refused_naming_the_limit()
    {
        var act = () => new Planner(new TestHooks(TestHook.Flow("hooks/f.csx", p => Tunes.Split(p, _ => 5))))
            .PlanAsync(Workloads.Flows(1, Tables), Workloads.Machine(), new PlanLimits { MaxFlowReplicas = 4 });
        (await act.Should().ThrowAsync<PlanValidationException>()).Which.Errors.Should().ContainSingle()
            .Which.ToString().Should().Be("hooks/f.csx: error: flow 'flow0': 5 replicas, above the cap of limits.max_flow_replicas (4); return fewer replicas or raise the cap in the config");
    }

    [Fact]
    public async Task A_flows_own_max_replicas_overrides_the_global_cap()
    {
        var flows = Workloads.Flows(1, Tables).Select(f => f with { MaxReplicas = 2 }).ToList();
        var act = () => new Planner(new TestHooks(TestHook.Flow("hooks/f.csx", p => Tunes.Split(p, _ => 3)))).PlanAsync(flows, Workloads.Machine());
        (await act.Should().ThrowAsync<PlanValidationException>()).Which.Errors[0].Message.Should().Contain("above the cap of max_replicas of flow 'flow0' (2)");
    }

    [Fact]
    public async Task Partitions_of_a_table_above_the_pipeline_cap_over_all_flow_replicas_are_refused()
    {
        var act = () => new Planner(new TestHooks(TestHook.Flow("hooks/f.csx", p => Tunes.Split(p, _ => 4)), TestHook.Pipeline("hooks/p.csx", p => Tunes.Split(p, _ => 3))))
            .PlanAsync(Workloads.Flows(1, ("public.t", 1)), Workloads.Machine(), new PlanLimits { MaxPipelineReplicas = 10 });
        (await act.Should().ThrowAsync<PlanValidationException>()).Which.Errors.Should().ContainSingle()
            .Which.ToString().Should().Contain("hooks/p.csx: error: table 'public.t' of flow 'flow0' would be split into 12 partitions over its 4 flow replicas, above limits.max_pipeline_replicas (10)");
    }

    [Fact]
    public async Task Props_that_cannot_be_serialised_are_refused()
    {
        var ex = await Refused(TestHook.Flow("hooks/flow.csx", _ =>
            [Tunes.Make("flow0", "a", 0, 1, ("callback", (Action)(() => { }))), Tunes.Make("flow1", "b", 0, 1, ("ratio", double.NaN))]));
        ex.Errors.Should().HaveCount(2);
        ex.Errors.Should().OnlyContain(e => e.Message.Contains("ReplicaProps cannot be serialised to JSON", StringComparison.Ordinal) && e.File == "hooks/flow.csx");
    }

    [Fact]
    public async Task Two_hooks_answering_the_same_entity_are_refused_naming_both_files()
    {
        var ex = await Refused(
            TestHook.Flow("hooks/a.csx", p => Tunes.Split(p, _ => 1)),
            TestHook.Flow("hooks/b.csx", p => [Tunes.Make("flow1", "other", 0, 1)]));
        ex.Errors.Should().ContainSingle().Which.Message.Should().Contain("flow 'flow1' is answered by both hooks/a.csx and hooks/b.csx");
    }

    [Fact]
    public async Task Two_hooks_may_share_a_level_when_each_answers_different_entities()
    {
        var plan = await Plan(
            TestHook.Flow("hooks/a.csx", _ => [Tunes.Make("flow0", "f0", 0, 1)]),
            TestHook.Flow("hooks/b.csx", _ => [Tunes.Make("flow1", "f1a", 0, 2), Tunes.Make("flow1", "f1b", 1, 2)]));
        plan.Flows.Select(f => f.Name).Should().Equal("f0", "f1a", "f1b");
        plan.Hooks.Flow.Should().Equal("hooks/a.csx", "hooks/b.csx");
    }

    [Fact]
    public async Task A_failing_hook_is_reported_with_its_file_and_line()
    {
        var ex = await Refused(TestHook.Flow("hooks/flow.csx", _ => throw new EtlFunnel.Scripting.HookInvocationException("flow.csx", "hooks/flow.csx", 7, "boom")));
        ex.Errors.Should().ContainSingle().Which.ToString().Should().Be("hooks/flow.csx(7): error: flow hook 'flow.csx' failed: boom");
    }

    [Fact]
    public async Task A_hook_returning_null_tunes_is_refused()
    {
        var ex = await Refused(TestHook.Flow("hooks/flow.csx", _ => [null!, Tunes.Make("flow0", "a", 0, 1), Tunes.Make("flow1", "b", 0, 1)]));
        ex.Errors.Should().ContainSingle().Which.Message.Should().Contain("flow tune #0 is null");
    }

    [Fact]
    public async Task A_hook_cannot_change_the_plan_by_mutating_the_parent_tune_it_was_given()
    {
        var plan = await Plan(
            SeedHooks.FlowByCores(),
            TestHook.Pipeline("hooks/p.csx", p =>
            {
                p.Parent!.ReplicaProps["thread_id"] = 999;
                return Tunes.Split(p, _ => 1);
            }));
        plan.Flows.Select(f => f.Props.GetProperty("thread_id").GetInt32()).Should().Equal(0, 1, 2, 3, 0, 1, 2, 3);
    }

    [Fact]
    public async Task Replica_ids_of_any_integral_type_are_accepted()
    {
        var plan = await Plan(TestHook.Flow("hooks/f.csx", _ => [Tunes.Make("flow0", "a", 0L, (short)2), Tunes.Make("flow0", "b", (byte)1, 2u), Tunes.Make("flow1", "c", 0, 1)]));
        plan.Flows.Select(f => (f.Name, f.ReplicaId, f.TotalReplicas)).Should().Equal(("a", 0, 2), ("b", 1, 2), ("c", 0, 1));
    }

    [Fact]
    public async Task Extra_props_are_carried_into_the_plan_untouched()
    {
        var plan = await Plan(TestHook.Flow("hooks/f.csx", p => p.Entity.Select(e => Tunes.Make(e.Name, e.Name, 0, 1,
            (ReplicaPropKeys.BatchSize, 500), ("tags", new[] { "x", "y" }), ("nested", new Dictionary<string, object> { ["a"] = 1 }))).ToList()));
        plan.Flows[0].Props.GetRawText().Should().Be("""{"replica_id":0,"total_replicas":1,"batch_size":500,"tags":["x","y"],"nested":{"a":1}}""");
    }

    [Fact]
    public async Task A_hook_cannot_edit_the_entity_list_the_next_flow_replica_gets()
    {
        var pipeline = TestHook.Pipeline("hooks/p.csx", p =>
        {
            ((IList<OrchestratorEntityDef>)p.Entity).Clear();
            return Tunes.Split(p, _ => 1);
        });
        var ex = await Refused(SeedHooks.FlowByCores(), pipeline);

        ex.Errors.Should().OnlyContain(e => e.Message.Contains("failed in flow replica", StringComparison.Ordinal) && e.Message.Contains("NotSupportedException", StringComparison.Ordinal));
        pipeline.Calls.Should().OnlyContain(c => c.Entity.Count == 3);
    }

    [Theory]
    [InlineData("lots", "the string \"lots\"")]
    [InlineData(0, "0")]
    [InlineData(-5, "-5")]
    [InlineData(2.5, "2.5")]
    [InlineData(true, "true")]
    [InlineData(3_000_000_000L, "3000000000")]
    public async Task A_pipeline_prop_the_engine_cannot_read_is_refused_naming_the_hook_and_tune(object value, string shown)
    {
        var ex = await Refused(TestHook.Pipeline("hooks/p.csx", p => p.Entity.Select(e => Tunes.Make(e.Name, e.Name + "_0", 0, 1, (ReplicaPropKeys.BatchSize, e.Name == "public.small" ? value : 100))).ToList()));
        ex.Errors.Should().HaveCount(2, "once per flow replica").And.OnlyContain(e => e.File == "hooks/p.csx");
        ex.Errors[0].Message.Should().Be(
            $"pipeline tune #0 (NewEntityName 'public.small_0', ParentEntityName 'public.small') in flow replica 'flow0': prop 'batch_size' must be a positive whole number (at most 2147483647), not {shown}; the sync engine reads it per pipeline replica (see ReplicaPropKeys)");
    }

    [Fact]
    public async Task Engine_props_of_any_integral_type_a_whole_double_or_a_numeric_string_are_accepted_and_flow_props_are_not_checked()
    {
        var plan = await Plan(
            TestHook.Flow("hooks/f.csx", p => p.Entity.Select(e => Tunes.Make(e.Name, e.Name, 0, 1, (ReplicaPropKeys.BatchSize, "not read at flow level"))).ToList()),
            TestHook.Pipeline("hooks/p.csx", p => p.Entity.Select(e => Tunes.Make(e.Name, e.Name + "_0", 0, 1,
                (ReplicaPropKeys.BatchSize, (short)100), (ReplicaPropKeys.BatchBytes, "1048576"), (ReplicaPropKeys.MaxInFlight, 4.0), (ReplicaPropKeys.FetchSize, 10_000L))).ToList()));
        plan.AllPipelines().Should().HaveCount(6);
    }
}
