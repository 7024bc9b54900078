using EtlFunnel.Cli.Tests.Support;
using EtlFunnel.Execution.Models;
using EtlFunnel.Orchestration.Tests.Support;
using EtlFunnel.Scripting;

namespace EtlFunnel.Cli.Tests.Commands;

/// <summary>Every way hooks can break the plan, through the command: exit 1, the hook file and entry on stderr, nothing on stdout.</summary>
[Collection(QuickstartCollection.Name)]
public sealed class PlanValidationCliTests
{
    private readonly Dictionary<string, string> _env;

    public PlanValidationCliTests(QuickstartDatabase db) => _env = new() { ["QUICKSTART_PG"] = db.ConnectionString };

    private static OrchestratorTune T(string parent, string name, object? id, object? total, params (string, object?)[] extra) => Tunes.Make(parent, name, id, total, extra);

    private async Task<string> Refused(params TestHook[] hooks) => await Refused(null, hooks);

    private async Task<string> Refused(string? config, params TestHook[] hooks)
    {
        var result = await CliRunner.RunAsync(["plan", "--config", config ?? CliRunner.QuickstartConfig, "--hooks", CliRunner.HooksDir, "--format", "json"], new TestHooks(hooks), _env);
        result.ExitCode.Should().Be(1, result.Err);
        result.Out.Should().BeEmpty();
        result.Err.Should().Contain("The plan was refused");
        return result.Err;
    }

    private static TestHook OnePerFlow() => TestHook.Flow("hooks/flow.csx", p => Tunes.Split(p, _ => 1));

    [Fact]
    public async Task Unknown_parent_entity_name() =>
        (await Refused(TestHook.Flow("hooks/flow.csx", _ => [T("shop", "s", 0, 1), T("crm", "c", 0, 1), T("shopp", "x", 0, 1)])))
            .Should().Contain("hooks/flow.csx: error: flow tune #2 (NewEntityName 'x', ParentEntityName 'shopp'): unknown ParentEntityName 'shopp'; the flows here are: shop, crm");

    [Fact]
    public async Task Duplicate_new_entity_name() =>
        (await Refused(TestHook.Flow("hooks/flow.csx", _ => [T("shop", "same", 0, 1), T("crm", "same", 0, 1)])))
            .Should().Contain("hooks/flow.csx: error: flow tune #1 (NewEntityName 'same', ParentEntityName 'crm'): duplicate NewEntityName 'same', already used by tune #0 of hooks/flow.csx");

    [Fact]
    public async Task Entity_left_with_no_replica() =>
        (await Refused(OnePerFlow(), TestHook.Pipeline("hooks/pipeline.csx", p => Tunes.Split(p, _ => 1).Where(t => t.ParentEntityName != "sales.orders").ToList())))
            .Should().Contain("hooks/pipeline.csx: error: 1 tables got no replica in flow replica 'shop_part_0' from hooks/pipeline.csx: sales.orders");

    [Fact]
    public async Task Replica_id_missing() =>
        (await Refused(TestHook.Flow("hooks/flow.csx", _ => [T("shop", "s", null, 1), T("crm", "c", 0, 1)])))
            .Should().Contain("hooks/flow.csx: error: flow tune #0 (NewEntityName 's', ParentEntityName 'shop'): ReplicaProps has no 'replica_id'");

    [Fact]
    public async Task Total_replicas_missing() =>
        (await Refused(TestHook.Flow("hooks/flow.csx", _ => [T("shop", "s", 0, null), T("crm", "c", 0, 1)])))
            .Should().Contain("ReplicaProps has no 'total_replicas'");

    [Fact]
    public async Task Replica_id_not_an_integer() =>
        (await Refused(TestHook.Flow("hooks/flow.csx", _ => [T("shop", "s", "zero", 1), T("crm", "c", 0, 1)])))
            .Should().Contain("'replica_id' must be an integer, not the string \"zero\"");

    [Fact]
    public async Task Total_replicas_inconsistent() =>
        (await Refused(TestHook.Flow("hooks/flow.csx", _ => [T("shop", "s0", 0, 2), T("shop", "s1", 1, 3), T("crm", "c", 0, 1)])))
            .Should().Contain("hooks/flow.csx: error: flow 'shop': its tunes disagree on total_replicas ('s0' says 2, 's1' says 3)");

    [Fact]
    public async Task Replica_ids_with_a_gap() =>
        (await Refused(OnePerFlow(), TestHook.Pipeline("hooks/pipeline.csx", p =>
                p.Entity.SelectMany(e => new[] { T(e.Name, e.Name + "_0", 0, 3), T(e.Name, e.Name + "_2", 2, 3) }).ToList())))
            .Should().Contain("hooks/pipeline.csx: error: pipeline 'catalog.categories' in flow replica 'shop_part_0': total_replicas is 3 but 2 tunes came back; replica_id 1 missing");

    [Fact]
    public async Task Replica_id_used_twice() =>
        (await Refused(TestHook.Flow("hooks/flow.csx", _ => [T("shop", "s0", 0, 2), T("shop", "s1", 0, 2), T("crm", "c", 0, 1)])))
            .Should().Contain("hooks/flow.csx: error: flow 'shop': replica_id 0 is used by 2 tunes ('s0', 's1'); each replica_id must appear exactly once");

    [Fact]
    public async Task Replica_id_not_below_total_replicas() =>
        (await Refused(TestHook.Flow("hooks/flow.csx", _ => [T("shop", "s0", 0, 2), T("shop", "s2", 2, 2), T("crm", "c", 0, 1)])))
            .Should().Contain("hooks/flow.csx: error: flow 'shop': tune 's2' has replica_id 2, which is not below its total_replicas 2");

    [Fact]
    public async Task Flow_replicas_above_the_configured_cap()
    {
        var config = CliRunner.WriteConfig(File.ReadAllText(CliRunner.QuickstartConfig).Replace("flows:", "limits: {max_flow_replicas: 4}\nflows:", StringComparison.Ordinal));
        (await Refused(config, TestHook.Flow("hooks/flow.csx", p => Tunes.Split(p, _ => 5))))
            .Should().Contain("hooks/flow.csx: error: flow 'shop': 5 replicas, above the cap of limits.max_flow_replicas (4)");
    }

    [Fact]
    public async Task Pipeline_partitions_above_the_configured_cap()
    {
        var config = CliRunner.WriteConfig(File.ReadAllText(CliRunner.QuickstartConfig).Replace("flows:", "limits: {max_pipeline_replicas: 6}\nflows:", StringComparison.Ordinal));
        (await Refused(config, TestHook.Flow("hooks/flow.csx", p => Tunes.Split(p, _ => 4)), TestHook.Pipeline("hooks/pipeline.csx", p => Tunes.Split(p, _ => 2))))
            .Should().Contain("hooks/pipeline.csx: error: table 'catalog.categories' of flow 'shop' would be split into 8 partitions over its 4 flow replicas, above limits.max_pipeline_replicas (6)");
    }

    [Fact]
    public async Task Props_that_cannot_be_serialised() =>
        (await Refused(TestHook.Flow("hooks/flow.csx", _ => [T("shop", "s", 0, 1, ("self", new SelfReferencing())), T("crm", "c", 0, 1)])))
            .Should().Contain("hooks/flow.csx: error: flow tune #0 (NewEntityName 's', ParentEntityName 'shop'): ReplicaProps cannot be serialised to JSON");

    [Fact]
    public async Task Two_hooks_answering_the_same_flow() =>
        (await Refused(OnePerFlow(), TestHook.Flow("hooks/zz-extra.csx", _ => [T("crm", "crm_extra", 0, 1)])))
            .Should().Contain("hooks/zz-extra.csx: error: flow tune #0 (NewEntityName 'crm_extra', ParentEntityName 'crm'): flow 'crm' is answered by both hooks/flow.csx and hooks/zz-extra.csx");

    [Fact]
    public async Task A_hook_that_fails_at_run_time_is_reported_with_file_and_line() =>
        (await Refused(TestHook.Flow("hooks/flow.csx", _ => throw new HookInvocationException("flow.csx", "hooks/flow.csx", 14, "ran past its time budget of 10 s"))))
            .Should().Contain("hooks/flow.csx(14): error: flow hook 'flow.csx' failed: ran past its time budget of 10 s");

    private sealed class SelfReferencing
    {
        public SelfReferencing Self => this;
    }
}
