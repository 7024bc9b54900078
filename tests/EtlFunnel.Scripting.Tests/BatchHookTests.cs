using EtlFunnel.Execution.Models;
using EtlFunnel.Scripting.Batching;
using EtlFunnel.Scripting.Tests.Support;
using EtlFunnel.Scripting.Transforming;

namespace EtlFunnel.Scripting.Tests;

/// <summary>The batch-level hooks (TestFixtures/BatchHooks) through the real host and worker: one round trip per call, each with its own message pair.</summary>
public sealed class BatchHookTests
{
    private static readonly PipelineInfo Products = new() { Flow = "shop", FlowReplica = "shop", Replica = "products_0", Schema = "public", Table = "products", Index = "products", Mode = "full" };

    private static BacklogRecord Failed(string id, int attempt, string document = "{}") => new()
    {
        Pipeline = Products,
        Id = id,
        Stage = FailureStage.Transform,
        Reason = "x.csx(1,1): boom",
        Attempt = attempt,
        MaxAttempts = 4,
        Document = document,
    };

    [Fact]
    public async Task Each_hook_answers_through_the_worker_and_applies_to_its_tables_only()
    {
        using var hooks = new TempHooks();
        hooks.CopyFixture("BatchHooks/limits.csx");
        await using var host = await HookHost.LoadAsync(Fixtures.Options(hooks.Path, hooks.Cache));
        host.Diagnostics.Where(d => d.Severity == "error").Should().BeEmpty();
        host.Transformers.Should().BeEmpty("the file declares no Transform");
        var hook = host.BatchHooks.Should().ContainSingle().Subject;
        hook.Kinds.Should().Be(BatchHookKinds.WriteRule | BatchHookKinds.Termination | BatchHookKinds.Checkpoint | BatchHookKinds.Backlog);
        hook.Matches(new TransformTarget("shop", "public", "products")).Should().BeTrue();
        hook.Matches(new TransformTarget("shop", "public", "orders")).Should().BeFalse();

        var rule = await hook.WriteRuleAsync(Products, TimeSpan.FromSeconds(5));
        (rule.BatchSize, rule.CheckInterval).Should().Be((250, 2));
        var termination = await hook.TerminationAsync(Products, TimeSpan.FromSeconds(5));
        (termination.MaxRecords, termination.MaxPipelineTime, termination.IdleTimeout).Should().Be((10_000L, TimeSpan.FromMinutes(5), (TimeSpan?)null));

        (await hook.CheckpointAsync(new CheckpointInfo { Pipeline = Products, DeadLettered = 1 }, TimeSpan.FromSeconds(5))).Stops.Should().BeFalse();
        var stop = await hook.CheckpointAsync(new CheckpointInfo { Pipeline = Products, DeadLettered = 11 }, TimeSpan.FromSeconds(5));
        (stop.Stops, stop.Reason).Should().Be((true, "too many dead letters in products: 11"));

        var decisions = await hook.BacklogAsync([Failed("1", 1), Failed("2", 2), Failed("3", 2, "{\"name\":\"fatal\"}")], TimeSpan.FromSeconds(5));
        decisions.Select(d => d.Action).Should().Equal(BacklogAction.Retry, BacklogAction.Skip, BacklogAction.Stop);
        decisions[2].Reason.Should().Be("record 3 is fatal");
    }

    [Fact]
    public async Task Batch_hooks_with_the_wrong_shape_are_refused_at_their_lines()
    {
        using var hooks = new TempHooks();
        var file = hooks.CopyFixture("BatchHooks/wrong-shapes.csx");
        await using var host = await HookHost.LoadAsync(Fixtures.Options(hooks.Path, hooks.Cache));

        var refused = host.Diagnostics.Where(d => d.Id == "EF0006").ToList();
        refused.Select(d => (d.File, d.Line, d.Column)).Should().Equal((file, 2, 5), (file, 3, 17), (file, 4, 20), (file, 5, 32));
        refused[0].Message.Should().Contain("WriteRule must be 'WriteRule WriteRule(PipelineInfo p)'");
        refused[3].Message.Should().Contain("OnBacklog must be 'BacklogDecision OnBacklog(BacklogRecord r)'");
        host.BatchHooks.Should().BeEmpty();
    }

    [Fact]
    public async Task A_bad_value_a_throw_a_null_and_a_time_out_are_errors_at_the_scripts_file_line_and_column()
    {
        using var hooks = new TempHooks();
        var file = hooks.CopyFixture("BatchHooks/broken.csx");
        await using var host = await HookHost.LoadAsync(Fixtures.Options(hooks.Path, hooks.Cache));
        var hook = host.BatchHooks.Should().ContainSingle().Subject;

        var bad = await FluentActions.Awaiting(() => hook.WriteRuleAsync(Products, TimeSpan.FromSeconds(5))).Should().ThrowAsync<BatchHookException>();
        bad.Which.Message.Should().StartWith($"{file}(2,11): WriteRule in 'broken.csx' returned BatchSize 0 for public.products; it must be 1 to 100,000");

        var threw = await FluentActions.Awaiting(() => hook.TerminationAsync(Products, TimeSpan.FromSeconds(5))).Should().ThrowAsync<BatchHookException>();
        threw.Which.Message.Should().Be($"{file}(6,5): Termination in 'broken.csx' threw InvalidOperationException: no limits for products");

        var none = await FluentActions.Awaiting(() => hook.CheckpointAsync(new CheckpointInfo { Pipeline = Products }, TimeSpan.FromSeconds(5))).Should().ThrowAsync<BatchHookException>();
        none.Which.Message.Should().Be($"{file}(9,20): OnCheckpoint in 'broken.csx' returned null.");

        var slow = await FluentActions.Awaiting(() => hook.BacklogAsync([Failed("1", 1)], TimeSpan.FromMilliseconds(300))).Should().ThrowAsync<BatchHookException>();
        slow.Which.Message.Should().StartWith($"{file}(13,").And.Contain("OnBacklog in 'broken.csx' ran past its time budget of 300 ms");

        // The worker is still usable after the time-out: the next call answers.
        (await FluentActions.Awaiting(() => hook.WriteRuleAsync(Products, TimeSpan.FromSeconds(5))).Should().ThrowAsync<BatchHookException>()).Which.Message.Should().Contain("BatchSize 0");
    }
}
