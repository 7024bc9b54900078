using System.Net;
using System.Text.Json.Nodes;
using EtlFunnel.Service;
using EtlFunnel.Service.Tests.Support;

namespace EtlFunnel.Service.Tests;

/// <summary>
/// The watch loop with its real parts (state, reloader, scheduler, status server over HTTP, config
/// watcher) and the planner / hook host / engine seams as delegates.
/// </summary>
public sealed class WatchServiceTests : IDisposable
{
    private const string Diagnostic = "hooks/flow-scale.csx(4,12): error EF0101: The name 'Corez' does not exist in the current context";

    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("etlfunnel-watch-");
    private readonly ManualTimeProvider _time = new();
    private readonly CollectingSink _log = new();

    public void Dispose() => _dir.Delete(recursive: true);

    [Fact]
    public async Task Hook_edits_change_the_served_plan_a_broken_edit_degrades_health_while_runs_go_on_and_sigterm_drains_to_exit_0()
    {
        var state = new ServiceState(_time);
        var replicas = 1;
        var broken = false;
        Action? hooksChanged = null;
        var runPlanVersions = new List<long>();
        var configPath = Path.Combine(_dir.FullName, "flows.yaml");
        await File.WriteAllTextAsync(configPath, "flows: []\n");
        var listening = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var sigterm = new CancellationTokenSource();
        var options = new WatchServiceOptions
        {
            Replan = _ => Task.FromResult(broken
                ? ReloadResult.Broken([Diagnostic])
                : ReloadResult.Ok(SamplePlans.Plan(("orders", replicas, ["orders"])).ToJsonString(), replicas, [$"orders: now {replicas} replica(s)"])),
            SubscribeHookChanges = callback =>
            {
                hooksChanged = callback;
                return new Unsubscribe(() => hooksChanged = null);
            },
            RunFlow = (ctx, _) =>
            {
                lock (runPlanVersions)
                {
                    runPlanVersions.Add(ctx.Plan.Version);
                }

                return Task.FromResult(new FlowRunResult(RunOutcome.Succeeded, 10, 10, 0, 0));
            },
            // Hook edits alone drive the plan here (re-planning before every run is WatchOperatorTests').
            ReplanEveryRun = false,
            Schedules = [new FlowSchedule("orders", TimeSpan.FromSeconds(30))],
            ConfigPath = configPath,
            StatusUrl = "http://127.0.0.1:0",
            OnListening = url => listening.SetResult(url),
            State = state,
            Time = _time,
            Log = _log.CreateLogger(),
        };

        var service = WatchService.RunAsync(options, sigterm.Token);
        using var http = new HttpClient { BaseAddress = await listening.Task.Within("the status server to listen") };
        await state.WaitUntilAsync(s => s.Runs.Count == 1, "the start-up run");

        (await PlanFlowCount(http)).Should().Be(1);

        replicas = 3;
        hooksChanged!();
        await state.WaitUntilAsync(s => s.Plan?.Version == 2, "the edited hook's plan");
        (await PlanFlowCount(http)).Should().Be(3);
        _log.Lines.Should().Contain("Information: Plan diff: orders: now 3 replica(s)");

        broken = true;
        hooksChanged!();
        await state.WaitUntilAsync(s => s.Hooks.Broken, "the broken edit to be reported");
        var health = await http.GetAsync("/healthz");
        health.StatusCode.Should().Be(HttpStatusCode.ServiceUnavailable);
        (await health.Content.ReadAsStringAsync()).Should().Contain(Diagnostic);
        (await PlanFlowCount(http)).Should().Be(3, "the last good plan stays active");

        _time.Advance(TimeSpan.FromSeconds(30));
        await state.WaitUntilAsync(s => s.Runs.Count == 2, "the next scheduled run while hooks are broken");

        broken = false;
        hooksChanged!();
        await state.WaitUntilAsync(s => !s.Hooks.Broken, "the fix to be picked up");
        (await http.GetAsync("/healthz")).StatusCode.Should().Be(HttpStatusCode.OK);

        await File.WriteAllTextAsync(configPath, "flows: [changed]\n");
        await state.WaitUntilAsync(s => s.RestartNeeded is not null, "the config edit to be noticed");

        await sigterm.CancelAsync();
        (await service.Within("the service to drain and stop")).Should().Be(0);

        runPlanVersions.Should().Equal(1, 2);
        hooksChanged.Should().BeNull("the hook subscription is released on stop");
        var afterStop = () => http.GetAsync("/healthz");
        await afterStop.Should().ThrowAsync<HttpRequestException>("the status server stops with the service");
    }

    [Fact]
    public async Task A_status_port_in_use_fails_the_start_before_anything_runs()
    {
        using var taken = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var port = ((IPEndPoint)taken.LocalEndpoint).Port;
        var replans = 0;
        var options = new WatchServiceOptions
        {
            Replan = _ =>
            {
                replans++;
                return Task.FromResult(ReloadResult.Broken(["unused"]));
            },
            SubscribeHookChanges = _ => new Unsubscribe(() => { }),
            RunFlow = (_, _) => Task.FromResult(new FlowRunResult(RunOutcome.Succeeded, 0, 0, 0, 0)),
            Schedules = [new FlowSchedule("orders", TimeSpan.FromSeconds(30))],
            StatusUrl = $"http://127.0.0.1:{port}",
            Time = _time,
            Log = _log.CreateLogger(),
        };

        var act = () => WatchService.RunAsync(options, CancellationToken.None);

        await act.Should().ThrowAsync<IOException>().WithMessage("*pick another port or 0*");
        replans.Should().Be(0);
    }

    private static async Task<int> PlanFlowCount(HttpClient http) =>
        JsonNode.Parse(await http.GetStringAsync("/plan"))!["flows"]!.AsArray().Count;

    private sealed class Unsubscribe(Action action) : IDisposable
    {
        public void Dispose() => action();
    }
}
