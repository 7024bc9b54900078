using EtlFunnel.Service;
using EtlFunnel.Service.Tests.Support;

namespace EtlFunnel.Service.Tests;

public sealed class PlanReloaderTests
{
    private const string Diagnostic = "hooks/pipeline-split.csx(9,5): error EF0102: ; expected";

    private readonly ServiceState _state = new(new ManualTimeProvider());
    private readonly CollectingSink _log = new();

    private static string PlanJson(int replicas) => SamplePlans.Plan(("orders", replicas, ["orders"])).ToJsonString();

    private PlanReloader CreateSut(Func<CancellationToken, Task<ReloadResult>> replan) => new(replan, _state, _log.CreateLogger());

    [Fact]
    public async Task A_good_reload_publishes_the_plan_and_logs_its_diff_a_broken_one_keeps_it_and_logs_the_diagnostics()
    {
        var next = ReloadResult.Ok(PlanJson(1), "model-1", []);
        var sut = CreateSut(_ => Task.FromResult(next));

        await sut.ReloadNowAsync(CancellationToken.None);
        next = ReloadResult.Ok(PlanJson(2), "model-2", ["orders: + orders#1 (replica 1 of 2)"]);
        await sut.ReloadNowAsync(CancellationToken.None);
        next = ReloadResult.Broken([Diagnostic]);
        await sut.ReloadNowAsync(CancellationToken.None);

        var s = _state.Snapshot;
        s.Plan!.Version.Should().Be(2);
        s.Plan.Model.Should().Be("model-2");
        s.Hooks.Broken.Should().BeTrue();
        s.Hooks.Diagnostics.Should().Equal(Diagnostic);
        s.Hooks.Reloads.Should().Be(3);
        s.PlanDiff.Select(d => d.Line).Should().Equal("orders: + orders#1 (replica 1 of 2)");
        _log.Lines.Should().ContainInOrder(
            "Information: Hooks loaded: plan version 1, no change",
            "Information: Hooks loaded: plan version 2, 1 change(s): +1 added, -0 removed, ~0 changed in flow(s) orders",
            "Information: Plan diff: orders: + orders#1 (replica 1 of 2)",
            "Error: Hook reload failed with 1 diagnostic(s); still running the last good plan (version 2)",
            "Error: " + Diagnostic);

        next = ReloadResult.Ok(PlanJson(2), "model-3", []);
        await sut.ReloadNowAsync(CancellationToken.None);
        _state.Snapshot.Hooks.Broken.Should().BeFalse("fixing the file recovers without a restart");
        _state.Snapshot.Plan!.Model.Should().Be("model-3");
    }

    [Fact]
    public async Task Unchanged_broken_diagnostics_are_logged_once_then_as_one_line_per_re_plan()
    {
        var next = ReloadResult.Ok(PlanJson(1), null, []);
        var sut = CreateSut(_ => Task.FromResult(next));
        await sut.ReloadNowAsync(CancellationToken.None);
        next = ReloadResult.Broken([Diagnostic]);

        await sut.ReloadNowAsync(CancellationToken.None);
        await sut.ReloadNowAsync(CancellationToken.None);
        await sut.ReloadNowAsync(CancellationToken.None);

        _log.Lines.Count(l => l == "Error: " + Diagnostic).Should().Be(1);
        _log.Lines.Should().EndWith(
            "Warning: Hooks still broken (1 diagnostic(s), unchanged; 2 re-plan(s) since they were logged); still running the last good plan (version 1)");
        _state.Snapshot.Hooks.Broken.Should().BeTrue();

        const string other = "hooks/pipeline-split.csx(12,1): error EF0102: } expected";
        next = ReloadResult.Broken([other]);
        await sut.ReloadNowAsync(CancellationToken.None);
        _log.Lines.Should().EndWith("Error: " + other, "a different error is news");

        next = ReloadResult.Ok(PlanJson(1), null, []);
        await sut.ReloadNowAsync(CancellationToken.None);
        next = ReloadResult.Broken([other]);
        await sut.ReloadNowAsync(CancellationToken.None);
        _log.Lines.Count(l => l == "Error: " + other).Should().Be(2, "breaking again after a good reload is logged in full");
    }

    [Fact]
    public async Task A_re_plan_that_throws_or_returns_malformed_json_counts_as_broken()
    {
        var sut = CreateSut(_ => throw new InvalidOperationException("discovery: relation \"public.orders\" does not exist"));
        await sut.ReloadNowAsync(CancellationToken.None);
        _state.Snapshot.Hooks.Diagnostics.Should().Equal("re-plan failed: InvalidOperationException: discovery: relation \"public.orders\" does not exist");
        _log.Lines.Should().Contain("Error: Hook reload failed with 1 diagnostic(s); no plan is active yet, flows wait for a valid one");

        var bad = CreateSut(_ => Task.FromResult(ReloadResult.Ok("{\"flows\": 3}", null, [])));
        await bad.ReloadNowAsync(CancellationToken.None);
        _state.Snapshot.Hooks.Diagnostics.Should().ContainSingle().Which.Should().StartWith("the new plan could not be published: The plan has no 'flows' array.");
        _state.Snapshot.Plan.Should().BeNull();
    }

    [Fact]
    public async Task A_burst_of_triggers_during_a_re_plan_costs_exactly_one_more_re_plan()
    {
        var calls = 0;
        var firstStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var sut = CreateSut(async _ =>
        {
            if (Interlocked.Increment(ref calls) == 1)
            {
                firstStarted.SetResult();
                await release.Task;
            }

            return ReloadResult.Ok(PlanJson(calls), null, []);
        });

        sut.Trigger();
        await firstStarted.Task.Within("the first re-plan to start");
        for (var i = 0; i < 5; i++)
        {
            sut.Trigger();
        }

        release.SetResult();
        await sut.WhenIdleAsync().Within("the re-plans to settle");

        calls.Should().Be(2);
        _state.Snapshot.Plan!.Version.Should().Be(2);
    }
}
