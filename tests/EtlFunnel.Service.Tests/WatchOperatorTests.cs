using System.Net;
using System.Text.Json.Nodes;
using EtlFunnel.Service;
using EtlFunnel.Service.Tests.Support;
using Microsoft.Extensions.Options;

namespace EtlFunnel.Service.Tests;

/// <summary>What an operator relies on from <c>watch</c>: re-plans on every run, a down source retried and named, /livez and /readyz, the host.</summary>
public sealed class WatchOperatorTests
{
    private readonly ManualTimeProvider _time = new();
    private readonly CollectingSink _log = new();

    [Fact]
    public async Task Every_run_replans_first_so_a_table_created_while_watching_joins_the_next_run()
    {
        var state = new ServiceState(_time);
        string[] tables = ["orders"];
        var seen = new List<string[]>();
        using var stop = new CancellationTokenSource();
        var options = Options(state, _ =>
        {
            var now = tables;
            return Task.FromResult(ReloadResult.Ok(SamplePlans.Plan(("shop", 1, now)).ToJsonString(), now, now.Length > 1 ? ["shop: + shop/customers: public.customers"] : []));
        }, (ctx, _) =>
        {
            lock (seen)
            {
                seen.Add((string[])ctx.Plan.Model!);
            }

            return Task.FromResult(new FlowRunResult(RunOutcome.Succeeded, 1, 1, 0, 0));
        });

        var service = WatchService.RunAsync(options, stop.Token);
        await state.WaitUntilAsync(s => s.Runs.Count == 1, "the start-up run");
        tables = ["orders", "customers"];
        _time.Advance(TimeSpan.FromSeconds(30));
        await state.WaitUntilAsync(s => s.Runs.Count == 2, "the next scheduled run");
        await stop.CancelAsync();
        (await service.Within("the service to stop")).Should().Be(0);

        seen.Should().HaveCount(2);
        seen[0].Should().Equal("orders");
        seen[1].Should().Equal(["orders", "customers"], "the run re-discovered the tables before it started");
        _log.Lines.Should().Contain("Information: Hooks loaded: plan version 3, 1 change(s): +1 added, -0 removed, ~0 changed in flow(s) shop");
        state.Snapshot.Runs.Select(r => r.PlanVersion).Should().Equal([3L, 2L], "each run records the plan it re-planned and ran, not the one it was scheduled on (newest first)");
        _log.Lines.Should().Contain("Information: Flow \"shop\": re-planned before the run; it runs plan version 3");
    }

    [Fact]
    public async Task A_source_that_is_down_is_retried_with_backoff_and_reported_as_unreachable_never_as_broken_hooks()
    {
        var state = new ServiceState(_time);
        var replans = 0;
        using var stop = new CancellationTokenSource();
        var listening = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
        var options = Options(state, _ =>
        {
            var n = Interlocked.Increment(ref replans);
            return Task.FromResult(n <= 2
                ? ReloadResult.SourceUnreachable("flows.yaml(3,5): cannot read the tables of flow 'shop' from 127.0.0.1:5432/shop: Connection refused")
                : ReloadResult.Ok(SamplePlans.Plan(("shop", 1, ["orders"])).ToJsonString(), null, []));
        }, (_, _) => Task.FromResult(new FlowRunResult(RunOutcome.Succeeded, 1, 1, 0, 0))) with
        {
            StatusUrl = "http://127.0.0.1:0",
            OnListening = url => listening.SetResult(url),
        };

        var service = WatchService.RunAsync(options, stop.Token);
        using var http = new HttpClient { BaseAddress = await listening.Task.Within("the status server to listen") };
        var down = await state.WaitUntilAsync(s => s.SourceUnreachable is not null, "the first re-plan to fail to connect");
        down.Hooks.Broken.Should().BeFalse("a database that is down is not a broken hook");
        var ready = await http.GetAsync("/readyz");
        ready.StatusCode.Should().Be(HttpStatusCode.ServiceUnavailable);
        var body = JsonNode.Parse(await ready.Content.ReadAsStringAsync())!;
        body["status"]!.GetValue<string>().Should().Be("not ready");
        body["hooks"]!.GetValue<string>().Should().NotBe("broken");
        body["reasons"]!.AsArray().Select(r => r!.GetValue<string>()).Should().ContainSingle().Which.Should().StartWith("source unreachable since");
        (await http.GetAsync("/livez")).StatusCode.Should().Be(HttpStatusCode.OK, "an unreachable source is no reason to restart the process");

        // The service registers each back-off delay after it saw the failure: advancing the fake clock before that would be
        // lost, so the clock is moved on until the retry has happened.
        await AdvanceUntilAsync(() => Volatile.Read(ref replans) >= 2, TimeSpan.FromSeconds(1), "the retry after 1 s");
        await AdvanceUntilAsync(() => state.Snapshot.Plan is not null, TimeSpan.FromSeconds(2), "the retry after 2 s to plan");
        var up = state.Snapshot;
        up.SourceUnreachable.Should().BeNull();
        (await http.GetAsync("/readyz")).StatusCode.Should().Be(HttpStatusCode.OK);

        await stop.CancelAsync();
        (await service.Within("the service to stop")).Should().Be(0);
        _log.Lines.Should().Contain(l => l.StartsWith("Warning: Source unreachable: flows.yaml(3,5): cannot read the tables", StringComparison.Ordinal) && l.EndsWith("; retrying in 1s", StringComparison.Ordinal));
        _log.Lines.Should().Contain(l => l.EndsWith("; retrying in 2s", StringComparison.Ordinal));
        _log.Lines.Should().NotContain(l => l.Contains("Hook reload failed", StringComparison.Ordinal));
    }

    [Fact]
    public void Backoff_doubles_from_one_second_up_to_a_minute()
    {
        Enumerable.Range(1, 9).Select(PlanReloader.Backoff).Select(d => d.TotalSeconds).Should().Equal(1, 2, 4, 8, 16, 32, 60, 60, 60);
    }

    [Fact]
    public async Task The_generic_host_runs_the_service_until_stopped_and_returns_its_exit_code()
    {
        var state = new ServiceState(_time);
        using var stop = new CancellationTokenSource();
        var options = Options(state, _ => Task.FromResult(ReloadResult.Ok(SamplePlans.Plan(("shop", 1, ["orders"])).ToJsonString(), null, [])),
            (_, _) => Task.FromResult(new FlowRunResult(RunOutcome.Succeeded, 1, 1, 0, 0)));

        var host = WatchHost.RunAsync(options, stop.Token);
        await state.WaitUntilAsync(s => s.Runs.Count == 1, "the start-up run on the host");
        await stop.CancelAsync();

        (await host.Within("the host to stop")).Should().Be(0);
        _log.Lines.Should().Contain("Information: Stopped: runs drained");
    }

    [Fact]
    public async Task The_generic_host_refuses_invalid_options_at_start_before_anything_runs()
    {
        var replans = 0;
        var options = Options(new ServiceState(_time), _ =>
        {
            replans++;
            return Task.FromResult(ReloadResult.Broken(["unused"]));
        }, (_, _) => Task.FromResult(new FlowRunResult(RunOutcome.Succeeded, 0, 0, 0, 0))) with
        {
            Schedules = [new FlowSchedule("shop", TimeSpan.Zero), new FlowSchedule("shop", TimeSpan.FromSeconds(1))],
            StatusUrl = "http://192.0.2.10:9464",
        };

        var act = () => WatchHost.RunAsync(options, CancellationToken.None);

        var thrown = await act.Should().ThrowAsync<OptionsValidationException>();
        thrown.Which.Failures.Should().Contain(f => f.Contains("flow shop: the interval must be positive", StringComparison.Ordinal))
            .And.Contain(f => f.Contains("scheduled 2 times", StringComparison.Ordinal))
            .And.Contain(f => f.Contains("--status-allow-remote", StringComparison.Ordinal));
        replans.Should().Be(0);
    }

    [Fact]
    public async Task Livez_is_always_200_and_readyz_is_ready_then_degraded_on_a_broken_hook_edit_over_the_last_good_plan()
    {
        var state = new ServiceState(_time);
        await using var server = await StatusServer.StartAsync(new Uri("http://127.0.0.1:0"), state, CancellationToken.None);
        using var http = new HttpClient { BaseAddress = server.BoundUrl };

        (await http.GetAsync("/readyz")).StatusCode.Should().Be(HttpStatusCode.ServiceUnavailable, "no plan yet");
        (await http.GetAsync("/livez")).StatusCode.Should().Be(HttpStatusCode.OK);

        state.SetHooksOk();
        state.SetPlan(SamplePlans.Plan(("shop", 1, ["orders"])), []);
        var ready = JsonNode.Parse(await (await http.GetAsync("/readyz")).Content.ReadAsStringAsync())!;
        ready["status"]!.GetValue<string>().Should().Be("ready");

        state.SetHooksBroken(["hooks/flow.csx(4,12): error CS0103: The name 'Corez' does not exist in the current context"]);
        var degraded = await http.GetAsync("/readyz");
        degraded.StatusCode.Should().Be(HttpStatusCode.OK, "the service still runs the last good plan: not a restart-worthy failure");
        var body = JsonNode.Parse(await degraded.Content.ReadAsStringAsync())!;
        body["status"]!.GetValue<string>().Should().Be("degraded");
        body["hooks"]!.GetValue<string>().Should().Be("broken");
        body["reasons"]!.AsArray().Should().ContainSingle().Which!.GetValue<string>().Should().Contain("flow.csx(4,12)");
        (await http.GetAsync("/livez")).StatusCode.Should().Be(HttpStatusCode.OK);
    }

    [Fact]
    public void A_non_loopback_status_url_is_accepted_only_with_the_explicit_flag()
    {
        var act = () => StatusServer.ParseUrl("http://0.0.0.0:9464");
        act.Should().Throw<FormatException>().WithMessage("*--status-allow-remote*");

        StatusServer.ParseUrl("http://0.0.0.0:9464", allowNonLoopback: true).Should().Be((IPAddress.Any, 9464));
    }

    private WatchServiceOptions Options(
        ServiceState state,
        Func<CancellationToken, Task<ReloadResult>> replan,
        Func<FlowRunContext, CancellationToken, Task<FlowRunResult>> run) => new()
    {
        Replan = replan,
        SubscribeHookChanges = _ => new Unsubscribe(),
        RunFlow = run,
        Schedules = [new FlowSchedule("shop", TimeSpan.FromSeconds(30))],
        State = state,
        Time = _time,
        Log = _log.CreateLogger(),
    };

    private async Task AdvanceUntilAsync(Func<bool> condition, TimeSpan step, string what)
    {
        var guard = TimeProvider.System.GetTimestamp();
        while (!condition())
        {
            if (TimeProvider.System.GetElapsedTime(guard) > TimeSpan.FromSeconds(30))
            {
                throw new TimeoutException($"Gave up after 30s waiting for: {what}");
            }

            _time.Advance(step);
            await Task.Delay(50);
        }
    }

    private sealed class Unsubscribe : IDisposable
    {
        public void Dispose()
        {
        }
    }
}
