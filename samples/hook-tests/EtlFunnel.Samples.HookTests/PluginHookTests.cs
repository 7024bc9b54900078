using EtlFunnel.Execution.Models;
using EtlFunnel.Execution.Testing;
using EtlFunnel.Samples.Plugins;

namespace EtlFunnel.Samples.HookTests;

/// <summary>The sample plugin's hooks called as the planner calls them, on fake machines and tables.</summary>
public sealed class PluginHookTests
{
    [Fact]
    public void CpuFlows_gives_every_flow_one_replica_per_core()
    {
        var props = Props.Flow(Machines.With(cores: 8, memoryGb: 32, region: "EU")).Entity("shop").Entity("crm").Build();

        var tunes = new CpuFlows().GetFlowOrchestration(props).ToList();

        tunes.Should().HaveCount(16);
        tunes.Where(t => t.ParentEntityName == "shop").Select(t => t.NewEntityName)
            .Should().Equal(Enumerable.Range(0, 8).Select(i => $"shop_core_{i}"));
        tunes.Should().OnlyContain(t => (int)t.ReplicaProps[ReplicaPropKeys.TotalReplicas]! == 8);
    }

    [Theory]
    [InlineData(10_000, 1)]
    [InlineData(1_000_000, 1)]
    [InlineData(1_000_001, 2)]
    [InlineData(10_000_001, 4)]
    public void RowSplitPipelines_splits_a_table_by_its_rows(long rows, int replicas)
    {
        var props = Props.Pipeline(Machines.With(cores: 4)).Entity("sales.orders", rows: rows).Build();

        var tunes = new RowSplitPipelines().GetPipelineOrchestration(props).ToList();

        tunes.Should().HaveCount(replicas).And.OnlyContain(t => t.ParentEntityName == "sales.orders");
        tunes.Select(t => t.ReplicaProps[ReplicaPropKeys.ReplicaId]).Should().Equal(Enumerable.Range(0, replicas).Cast<object>());
    }

    [Fact]
    public void RowSplitPipelines_asks_each_table_for_its_stats_once()
    {
        var orders = FakeDatabaseEngine.Table(rows: 5_000_000);
        var events = FakeDatabaseEngine.Table(rows: 50_000_000);
        var props = Props.Pipeline().Entity("sales.orders", orders).Entity("sales.events", events).Build();

        _ = new RowSplitPipelines().GetPipelineOrchestration(props).ToList();

        orders.StatsCalls.Should().Be(1);
        events.StatsCalls.Should().Be(1);
    }

    [Fact]
    public void A_source_that_is_down_fails_the_hook_with_its_error()
    {
        var down = new FakeDatabaseEngine("postgres", "db:5432/shop") { Failure = new InvalidOperationException("connection refused") };
        var props = Props.Pipeline().Entity("sales.orders", down).Build();

        var call = () => new RowSplitPipelines().GetPipelineOrchestration(props).ToList();

        call.Should().Throw<InvalidOperationException>().WithMessage("connection refused");
    }

    [Fact]
    public void The_fakes_answer_what_they_were_given()
    {
        var engine = FakeDatabaseEngine.Table(rows: 1234, bytes: 5678, partitions: 3, exact: true, latencyMs: 2.5);

        engine.GetTableStats().Should().BeEquivalentTo(new TableStats { TotalRows = 1234, TotalBytes = 5678, TableCount = 1, PartitionCount = 3, RowsAreExact = true });
        engine.MeasureConnection().RoundTripLatency.Should().Be(TimeSpan.FromMilliseconds(2.5));
        Machines.With(cores: 2, memoryGb: 0.5).TotalMemoryBytes.Should().Be(512L << 20);
        Props.Pipeline().Build().Parent!.ReplicaProps[ReplicaPropKeys.TotalReplicas].Should().Be(1);
    }

    [Fact]
    public void Check_failures_carry_the_reason()
    {
        var failure = Check.Throws<CheckFailedException>(() => Check.Replicas(2, [], "shop", "two per flow"));

        failure.Message.Should().Be("expected 2 replica(s) of 'shop' but got 0: two per flow");
    }
}
