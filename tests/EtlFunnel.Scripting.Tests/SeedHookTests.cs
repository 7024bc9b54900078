using EtlFunnel.Scripting.Tests.Support;

namespace EtlFunnel.Scripting.Tests;

public sealed class SeedHookTests
{
    [Fact]
    public async Task Seed_flow_hook_returns_one_replica_per_core_for_every_flow()
    {
        await using var host = await HookHost.LoadAsync(Fixtures.Options(Fixtures.Folder("Seed")));

        host.Diagnostics.Should().BeEmpty();
        host.FlowHooks.Select(h => h.Name).Should().Equal("flow-by-cores.csx");
        var tunes = await host.FlowHooks[0].InvokeAsync(Props.Of(3, Props.Entity("catalog"), Props.Entity("orders")));

        tunes.Select(t => t.NewEntityName).Should().Equal(
            "catalog_core_0", "catalog_core_1", "catalog_core_2", "orders_core_0", "orders_core_1", "orders_core_2");
        tunes[4].ParentEntityName.Should().Be("orders");
        tunes[4].ReplicaProps.Should().BeEquivalentTo(new Dictionary<string, object?>
        {
            ["replica_id"] = 1, ["thread_id"] = 1, ["total_replicas"] = 3, ["cpu_optimized"] = true,
        });
    }

    [Fact]
    public async Task Seed_pipeline_hook_splits_tables_by_row_count()
    {
        await using var host = await HookHost.LoadAsync(Fixtures.Options(Fixtures.Folder("Seed")));

        host.PipelineHooks.Select(h => h.Name).Should().Equal("pipeline-by-rows.csx");
        var tunes = await host.PipelineHooks[0].InvokeAsync(Props.Of(8,
            Props.Entity("public.small", rows: 10), Props.Entity("public.medium", rows: 2_000_000), Props.Entity("public.big", rows: 50_000_000)));

        tunes.GroupBy(t => t.ParentEntityName).ToDictionary(g => g.Key, g => g.Count())
            .Should().Equal(new Dictionary<string, int> { ["public.small"] = 1, ["public.medium"] = 2, ["public.big"] = 4 });
        tunes.Single(t => t.NewEntityName == "public.big_partition_3").ReplicaProps.Should().BeEquivalentTo(new Dictionary<string, object?>
        {
            ["replica_id"] = 3, ["total_replicas"] = 4, ["partition_hint"] = "split_3", ["data_driven"] = true,
        });
    }

    [Fact]
    public async Task Load_of_a_helper_inside_the_folder_works_and_the_helper_is_not_a_hook()
    {
        await using var host = await HookHost.LoadAsync(Fixtures.Options(Fixtures.Folder("Load")));

        host.Diagnostics.Should().BeEmpty();
        host.FlowHooks.Select(h => h.Name).Should().Equal("by-region.csx");
        host.PipelineHooks.Should().BeEmpty();
        var tunes = await host.FlowHooks[0].InvokeAsync(Props.Of(2, Props.Entity("catalog")));
        tunes.Single().NewEntityName.Should().Be("catalog_eu_0");
    }

    [Fact]
    public async Task Load_of_a_file_outside_the_folder_is_refused_at_its_line()
    {
        await using var host = await HookHost.LoadAsync(Fixtures.Options(Fixtures.Folder("LoadEscape")));

        var file = Path.Combine(Fixtures.Folder("LoadEscape"), "escape.csx");
        host.FlowHooks.Should().BeEmpty();
        host.Diagnostics.Should().ContainSingle(d => d.Id == "EF1001")
            .Which.ToString().Should().StartWith($"{file}(2,1): error EF1001: '#load \"../Seed/flow-by-cores.csx\"' (a file outside the hooks folder");
    }

    [Fact]
    public async Task One_file_serves_both_levels_with_fresh_top_level_state_per_call()
    {
        await using var host = await HookHost.LoadAsync(Fixtures.Options(Fixtures.Folder("Runtime")));

        var flow = host.FlowHooks.Single(h => h.Name == "both-levels.csx");
        var pipeline = host.PipelineHooks.Single(h => h.Name == "both-levels.csx");
        (await flow.InvokeAsync(Props.Of(1, Props.Entity("a")))).Single().NewEntityName.Should().Be("a_call1");
        (await flow.InvokeAsync(Props.Of(1, Props.Entity("a")))).Single().NewEntityName.Should().Be("a_call1");
        var props = new Execution.Models.OrchestratorProps
        {
            Entity = [Props.Entity("public.t")],
            Machine = Props.Of(1).Machine,
            Parent = new Execution.Models.OrchestratorTune { ParentEntityName = "a", NewEntityName = "a_call1" },
        };
        (await pipeline.InvokeAsync(props)).Single().NewEntityName.Should().Be("public.t_pa_call1");
    }
}
