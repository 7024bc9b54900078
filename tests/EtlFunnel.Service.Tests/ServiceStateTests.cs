using System.Text.Json.Nodes;
using EtlFunnel.Service;
using EtlFunnel.Service.Tests.Support;

namespace EtlFunnel.Service.Tests;

public sealed class ServiceStateTests
{
    private const string Diagnostic = "hooks/flow-scale.csx(3,17): error EF0101: The name 'Corez' does not exist in the current context";

    private readonly ManualTimeProvider _time = new();

    private ServiceState CreateSut(int runs = 50) => new(_time, runCapacity: runs);

    private static FlowRunResult Ok(long rows = 10) => new(RunOutcome.Succeeded, rows, rows, 1, 2, null, new JsonObject { ["pipelines"] = 1 });

    [Fact]
    public void A_new_service_is_healthy_with_no_plan_and_hooks_not_yet_loaded()
    {
        var s = CreateSut().Snapshot;

        s.Health.Healthy.Should().BeTrue();
        s.Plan.Should().BeNull();
        s.Hooks.Should().Be(HookStatus.Initial);
        s.Runs.Should().BeEmpty();
    }

    [Fact]
    public void A_broken_hook_makes_the_service_unhealthy_keeps_the_last_good_plan_and_fixing_it_recovers()
    {
        var sut = CreateSut();
        sut.SetHooksOk();
        var good = sut.SetPlan(SamplePlans.Plan(("orders", 1, ["orders"])), ["orders: +1 flow replica"]);

        _time.Advance(TimeSpan.FromMinutes(1));
        sut.SetHooksBroken([Diagnostic]);

        var broken = sut.Snapshot;
        broken.Health.Healthy.Should().BeFalse();
        broken.Health.Reasons.Should().ContainSingle().Which.Should()
            .Contain("hooks are broken").And.Contain(Diagnostic).And.Contain("last good plan (version 1)");
        broken.Plan.Should().BeSameAs(good);
        broken.Hooks.Broken.Should().BeTrue();
        broken.Hooks.Diagnostics.Should().Equal(Diagnostic);
        broken.Hooks.BrokenSince.Should().Be(_time.GetUtcNow());

        _time.Advance(TimeSpan.FromMinutes(1));
        sut.SetHooksBroken([Diagnostic, "hooks/flow-scale.csx(4,1): error EF0102: another"]);
        sut.Snapshot.Hooks.BrokenSince.Should().Be(broken.Hooks.BrokenSince, "it stays broken since the first failure");

        _time.Advance(TimeSpan.FromMinutes(1));
        sut.SetHooksOk();

        var fixedState = sut.Snapshot;
        fixedState.Health.Healthy.Should().BeTrue();
        fixedState.Hooks.Diagnostics.Should().BeEmpty();
        fixedState.Hooks.BrokenSince.Should().BeNull();
        fixedState.Hooks.LastReload.Should().Be(_time.GetUtcNow());
        fixedState.Hooks.Reloads.Should().Be(4, "every load attempt counts");
        fixedState.Hooks.Failures.Should().Be(2);
    }

    [Fact]
    public void A_failed_last_run_makes_the_service_unhealthy_until_that_flow_succeeds_again()
    {
        var sut = CreateSut();
        var t0 = _time.GetUtcNow();
        sut.RecordRun("orders", t0, t0.AddSeconds(5), Ok(), 1);
        sut.RecordRun("customers", t0, t0.AddSeconds(5), FlowRunResult.Failed("NpgsqlException: connection refused"), 1);

        var s = sut.Snapshot;
        s.Health.Healthy.Should().BeFalse();
        s.Health.Reasons.Should().ContainSingle().Which.Should()
            .Contain("flow 'customers' failed").And.Contain("connection refused");

        sut.RecordRun("customers", t0.AddMinutes(1), t0.AddMinutes(2), Ok(), 1);
        sut.Snapshot.Health.Healthy.Should().BeTrue();
        sut.Snapshot.Flows["customers"].FailedRuns.Should().Be(1, "counters keep history even after recovery");
    }

    [Fact]
    public void A_cancelled_run_during_shutdown_does_not_count_as_a_failure()
    {
        var sut = CreateSut();
        var t0 = _time.GetUtcNow();
        sut.RecordRun("orders", t0, t0, new FlowRunResult(RunOutcome.Cancelled, 3, 3, 0, 0, "stopping"), 1);

        sut.Snapshot.Health.Healthy.Should().BeTrue();
    }

    [Fact]
    public void Recent_runs_keep_the_newest_n_newest_first_while_counters_keep_adding_up()
    {
        var sut = CreateSut(runs: 3);
        var t0 = _time.GetUtcNow();
        for (var i = 1; i <= 5; i++)
        {
            sut.RecordRun("orders", t0.AddMinutes(i), t0.AddMinutes(i).AddSeconds(10), Ok(rows: i * 100), 1);
        }

        var s = sut.Snapshot;
        s.Runs.Select(r => r.Rows).Should().Equal(500, 400, 300);
        s.Runs.Select(r => r.Id).Should().Equal(5, 4, 3);
        var c = s.Flows["orders"];
        c.Runs.Should().Be(5);
        c.Rows.Should().Be(1500);
        c.DocsIndexed.Should().Be(1500);
        c.DeadLetters.Should().Be(5);
        c.Retries.Should().Be(10);
        c.LastDocsPerSecond.Should().Be(50, "the last run indexed 500 docs in 10 s");
        s.Runs[0].ReportJson.Should().Be("{\"pipelines\":1}");
    }

    [Fact]
    public void Set_plan_bumps_the_version_registers_configured_flows_and_logs_the_diff()
    {
        var sut = CreateSut();
        var v1 = sut.SetPlan(SamplePlans.Plan(("orders", 2, ["orders"]), ("customers", 1, ["customers"])), [], model: "model-1");
        var v2 = sut.SetPlan(SamplePlans.Plan(("orders", 3, ["orders"]), ("customers", 1, ["customers"])), ["orders: + orders#2", "orders: ~ orders#0 props"], model: "model-2");

        v1.Version.Should().Be(1);
        v2.Version.Should().Be(2);
        v2.Model.Should().Be("model-2");
        v2.FlowNames.Should().Equal(["customers", "orders"], "replicas orders#0..#2 belong to the configured flow 'orders'");
        var s = sut.Snapshot;
        s.Flows.Keys.Should().Equal("customers", "orders");
        s.PlanDiff.Select(d => (d.PlanVersion, d.Line)).Should().Equal((2L, "orders: + orders#2"), (2L, "orders: ~ orders#0 props"));
        JsonNode.Parse(s.Plan!.Json)!["flows"]!.AsArray().Should().HaveCount(4);
    }

    [Fact]
    public void A_plan_given_as_text_is_served_verbatim()
    {
        var sut = CreateSut();
        const string json = "{\n  \"machine\": {\"region\": \"é\"},\n  \"flows\": [ {\"name\": \"orders\", \"parent\": \"orders\", \"pipelines\": []} ]\n}";

        sut.SetPlan(json, []);

        sut.Snapshot.Plan!.Json.Should().BeSameAs(json);
    }

    [Theory]
    [InlineData("not json", "not valid JSON")]
    [InlineData("[1,2]", "must be a JSON object")]
    [InlineData("{\"machine\":{}}", "no 'flows' array")]
    [InlineData("{\"flows\":[{\"pipelines\":[]}]}", "neither 'parent' nor 'name'")]
    public void A_malformed_plan_is_refused_and_the_active_plan_stays(string json, string reason)
    {
        var sut = CreateSut();
        var good = sut.SetPlan(SamplePlans.Plan(("orders", 1, ["orders"])), []);

        var act = () => sut.SetPlan(json, []);

        act.Should().Throw<ArgumentException>().WithMessage($"*{reason}*");
        sut.Snapshot.Plan.Should().BeSameAs(good);
    }

    [Fact]
    public void The_plan_diff_log_is_bounded()
    {
        var sut = new ServiceState(_time, diffCapacity: 3);
        sut.SetPlan(SamplePlans.Plan(("orders", 1, ["orders"])), ["a", "b"]);
        sut.SetPlan(SamplePlans.Plan(("orders", 1, ["orders"])), ["c", "d"]);

        sut.Snapshot.PlanDiff.Select(d => d.Line).Should().Equal("b", "c", "d");
    }

    [Fact]
    public void A_snapshot_never_changes_after_it_was_read()
    {
        var sut = CreateSut();
        sut.SetPlan(SamplePlans.Plan(("orders", 1, ["orders"])), []);
        var before = sut.Snapshot;

        sut.SetHooksBroken([Diagnostic]);
        sut.RecordRun("orders", _time.GetUtcNow(), _time.GetUtcNow(), Ok(), 1);
        sut.SetRestartNeeded("flows.yaml changed");

        before.Hooks.Broken.Should().BeFalse();
        before.Runs.Should().BeEmpty();
        before.Flows["orders"].Runs.Should().Be(0);
        before.RestartNeeded.Should().BeNull();
        sut.Snapshot.RestartNeeded.Should().Be("flows.yaml changed");
    }

    [Fact]
    public async Task Concurrent_writers_lose_no_update()
    {
        var sut = CreateSut(runs: 10);
        var t0 = _time.GetUtcNow();
        const int Writers = 8;
        const int PerWriter = 250;

        await Task.WhenAll(Enumerable.Range(0, Writers).Select(w => Task.Run(() =>
        {
            for (var i = 0; i < PerWriter; i++)
            {
                sut.RecordRun($"flow{w % 2}", t0, t0, Ok(rows: 1), 1);
                sut.RecordSkippedTick($"flow{w % 2}");
                if (i % 50 == 0)
                {
                    sut.SetHooksOk();
                }
            }
        })));

        var s = sut.Snapshot;
        s.Flows.Values.Sum(c => c.Runs).Should().Be(Writers * PerWriter);
        s.Flows.Values.Sum(c => c.Rows).Should().Be(Writers * PerWriter);
        s.Flows.Values.Sum(c => c.SkippedTicks).Should().Be(Writers * PerWriter);
        s.Hooks.Reloads.Should().Be(Writers * (PerWriter / 50));
        s.Runs.Should().HaveCount(10);
        s.Runs.Select(r => r.Id).Should().BeInDescendingOrder();
    }
}
