using System.Collections.Concurrent;
using EtlFunnel.Service;
using EtlFunnel.Service.Tests.Support;

namespace EtlFunnel.Service.Tests;

public sealed class FlowSchedulerTests
{
    private static readonly TimeSpan Every30s = TimeSpan.FromSeconds(30);

    private readonly ManualTimeProvider _time = new();
    private readonly CollectingSink _log = new();
    private readonly ServiceState _state;

    public FlowSchedulerTests()
    {
        _state = new ServiceState(_time);
        _state.SetPlan(SamplePlans.Plan(("orders", 1, ["orders"])), []);
    }

    private FlowScheduler CreateSut(Func<FlowRunContext, CancellationToken, Task<FlowRunResult>> run, bool runOnStart = false, params FlowSchedule[] flows) =>
        new(flows.Length == 0 ? [new FlowSchedule("orders", Every30s)] : flows, run, _state, _time, _log.CreateLogger(), runOnStart);

    private static FlowRunResult Ok(long rows) => new(RunOutcome.Succeeded, rows, rows, 0, 0);

    [Fact]
    public async Task A_tick_during_a_run_is_skipped_and_logged_and_the_next_free_tick_runs_again()
    {
        var runs = new ControlledRuns();
        await using var sut = CreateSut(runs.RunAsync);
        sut.Start();

        _time.Advance(Every30s);
        var first = await runs.Started(0);
        first.Flow.Should().Be("orders");

        _time.Advance(Every30s);
        _time.Advance(Every30s);

        runs.Count.Should().Be(1, "the first run is still going");
        _state.Snapshot.Flows["orders"].SkippedTicks.Should().Be(2);
        _log.Lines.Where(l => l.Contains("tick skipped", StringComparison.Ordinal)).Should().HaveCount(2)
            .And.AllSatisfy(l => l.Should().StartWith("Warning: Flow \"orders\""));

        runs.Finish(0, Ok(100));
        await _state.WaitUntilAsync(s => s.Runs.Count == 1, "the first run to be recorded");

        _time.Advance(Every30s);
        await runs.Started(1);
        runs.Finish(1, Ok(7));
        var s = await _state.WaitUntilAsync(s => s.Runs.Count == 2, "the second run to be recorded");

        s.Runs.Select(r => r.Rows).Should().Equal(7, 100);
        (s.Runs[1].Finished - s.Runs[1].Started).Should().Be(TimeSpan.FromSeconds(60), "the run spanned the two skipped ticks on the service clock");
    }

    [Fact]
    public async Task Each_flow_runs_on_its_own_interval()
    {
        var starts = new ConcurrentQueue<(string Flow, DateTimeOffset At)>();
        await using var sut = CreateSut(
            (ctx, _) =>
            {
                starts.Enqueue((ctx.Flow, _time.GetUtcNow()));
                return Task.FromResult(Ok(1));
            },
            runOnStart: false,
            new FlowSchedule("fast", TimeSpan.FromSeconds(10)),
            new FlowSchedule("slow", TimeSpan.FromSeconds(25)));
        sut.Start();
        var t0 = _time.GetUtcNow();

        // 5 s steps so every due time is hit; wait for each step's runs before moving on, as a run
        // still in flight would (correctly) turn the next tick of its flow into a skip.
        var expected = 0;
        for (var t = 5; t <= 50; t += 5)
        {
            _time.Advance(TimeSpan.FromSeconds(5));
            expected += (t % 10 == 0 ? 1 : 0) + (t % 25 == 0 ? 1 : 0);
            await _state.WaitUntilAsync(s => s.Runs.Count == expected, $"{expected} runs by t={t}s");
        }

        starts.Where(x => x.Flow == "fast").Select(x => (x.At - t0).TotalSeconds).Should().Equal(10, 20, 30, 40, 50);
        starts.Where(x => x.Flow == "slow").Select(x => (x.At - t0).TotalSeconds).Should().Equal(25, 50);
        _state.Snapshot.Flows.Values.Sum(c => c.SkippedTicks).Should().Be(0);
    }

    [Fact]
    public async Task Run_on_start_runs_every_flow_once_right_away()
    {
        await using var sut = CreateSut(
            (ctx, _) => Task.FromResult(Ok(1)),
            runOnStart: true,
            new FlowSchedule("a", TimeSpan.FromMinutes(5)),
            new FlowSchedule("b", TimeSpan.FromHours(1)));

        sut.Start();

        var s = await _state.WaitUntilAsync(s => s.Runs.Count == 2, "both start-up runs");
        s.Runs.Select(r => r.Flow).Should().BeEquivalentTo("a", "b");
        s.Runs.Should().AllSatisfy(r => r.Started.Should().Be(_time.GetUtcNow()));
    }

    [Fact]
    public async Task A_run_keeps_the_plan_it_started_with_when_a_reload_lands_mid_run()
    {
        _state.SetPlan(SamplePlans.Plan(("orders", 1, ["orders"])), [], model: "plan-A");
        var runs = new ControlledRuns();
        await using var sut = CreateSut(runs.RunAsync);
        sut.Start();

        _time.Advance(Every30s);
        var first = await runs.Started(0);
        _state.SetPlan(SamplePlans.Plan(("orders", 2, ["orders"])), ["orders: + orders#1"], model: "plan-B");
        runs.Finish(0, Ok(1));
        await _state.WaitUntilAsync(s => s.Runs.Count == 1, "the first run to be recorded");

        _time.Advance(Every30s);
        var second = await runs.Started(1);
        runs.Finish(1, Ok(1));
        var s = await _state.WaitUntilAsync(s => s.Runs.Count == 2, "the second run to be recorded");

        first.Plan.Model.Should().Be("plan-A");
        second.Plan.Model.Should().Be("plan-B");
        s.Runs.Select(r => r.PlanVersion).Should().Equal(3, 2);
    }

    [Fact]
    public async Task A_throwing_run_is_recorded_as_failed_the_service_degrades_and_keeps_scheduling()
    {
        var calls = 0;
        await using var sut = CreateSut((_, _) =>
            Interlocked.Increment(ref calls) == 1
                ? throw new InvalidOperationException("index orders-idx is read-only")
                : Task.FromResult(Ok(5)));
        sut.Start();

        _time.Advance(Every30s);
        var failed = await _state.WaitUntilAsync(s => s.Runs.Count == 1, "the failing run to be recorded");

        failed.Runs[0].Outcome.Should().Be(RunOutcome.Failed);
        failed.Runs[0].Error.Should().Be("InvalidOperationException: index orders-idx is read-only");
        failed.Health.Healthy.Should().BeFalse();
        _log.Lines.Should().Contain(l => l.StartsWith("Error: Flow \"orders\": run failed", StringComparison.Ordinal));

        _time.Advance(Every30s);
        var recovered = await _state.WaitUntilAsync(s => s.Runs.Count == 2, "the next run to be recorded");
        recovered.Health.Healthy.Should().BeTrue();
    }

    [Fact]
    public async Task Stop_ends_the_schedule_signals_runs_in_flight_to_drain_and_waits_for_their_checkpoint()
    {
        var drainSeen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var checkpointMayFinish = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var checkpointSaved = false;
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var calls = 0;
        var sut = CreateSut(async (_, ct) =>
        {
            Interlocked.Increment(ref calls);
            started.TrySetResult();
            try
            {
                await Task.Delay(Timeout.InfiniteTimeSpan, ct);
            }
            catch (OperationCanceledException)
            {
                drainSeen.TrySetResult();
            }

            // The engine finishes the batch in hand and saves its checkpoint before returning.
            await checkpointMayFinish.Task;
            checkpointSaved = true;
            return new FlowRunResult(RunOutcome.Succeeded, 42, 42, 0, 0);
        });
        sut.Start();
        _time.Advance(Every30s);
        await started.Task.Within("the run to start");

        var stopping = sut.StopAsync(CancellationToken.None);
        await drainSeen.Task.Within("the run to see the drain signal");

        stopping.IsCompleted.Should().BeFalse("stop waits for the run in flight");
        sut.RunningCount.Should().Be(1);

        checkpointMayFinish.SetResult();
        await stopping.Within("stop to complete");

        checkpointSaved.Should().BeTrue();
        sut.RunningCount.Should().Be(0);
        _state.Snapshot.Runs.Should().ContainSingle().Which.Rows.Should().Be(42);
        _time.ActiveTimers.Should().Be(0, "stopping disposes every schedule timer");

        _time.Advance(TimeSpan.FromMinutes(10));
        calls.Should().Be(1, "nothing is scheduled after stop");
        _log.Lines.Should().Contain("Information: Stopping: draining 1 run(s) in flight");
        await sut.DisposeAsync();
    }

    [Fact]
    public async Task Run_async_drains_when_its_token_is_cancelled_and_a_run_that_gives_up_is_recorded_as_cancelled()
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var sut = CreateSut(async (_, ct) =>
        {
            started.TrySetResult();
            await Task.Delay(Timeout.InfiniteTimeSpan, ct);
            return Ok(1);
        });
        using var sigterm = new CancellationTokenSource();

        var running = sut.RunAsync(sigterm.Token);
        _time.Advance(Every30s);
        await started.Task.Within("the run to start");
        await sigterm.CancelAsync();
        await running.Within("RunAsync to return after draining");

        var run = _state.Snapshot.Runs.Should().ContainSingle().Subject;
        run.Outcome.Should().Be(RunOutcome.Cancelled);
        _state.Snapshot.Health.Healthy.Should().BeTrue("a drained run is not a failure");
    }

    [Fact]
    public async Task Without_a_valid_plan_ticks_are_skipped_and_logged_not_run()
    {
        var state = new ServiceState(_time);
        var calls = 0;
        await using var sut = new FlowScheduler([new FlowSchedule("orders", Every30s)], (FlowRunContext ctx, CancellationToken ct) =>
        {
            Interlocked.Increment(ref calls);
            return Task.FromResult(Ok(1));
        }, state, _time, _log.CreateLogger(), runOnStart: true);

        sut.Start();
        _time.Advance(Every30s);

        calls.Should().Be(0);
        sut.RunningCount.Should().Be(0);
        state.Snapshot.Flows["orders"].SkippedTicks.Should().Be(2);
        _log.Lines.Should().Contain("Warning: Flow \"orders\": tick skipped, no valid plan yet (see the hook diagnostics)");
    }

    [Fact]
    public void A_flow_scheduled_twice_or_with_a_zero_interval_is_refused()
    {
        var twice = () => CreateSut((_, _) => Task.FromResult(Ok(0)), false, new FlowSchedule("a", Every30s), new FlowSchedule("a", Every30s));
        var zero = () => CreateSut((_, _) => Task.FromResult(Ok(0)), false, new FlowSchedule("a", TimeSpan.Zero));

        twice.Should().Throw<ArgumentException>().WithMessage("Flow 'a' is scheduled twice.*");
        zero.Should().Throw<ArgumentException>().WithMessage("Flow 'a': the interval must be longer than zero.*");
    }

    /// <summary>Runs that start when the scheduler calls them and finish when the test says so.</summary>
    private sealed class ControlledRuns
    {
        private readonly ConcurrentDictionary<int, TaskCompletionSource<FlowRunContext>> _started = new();
        private readonly ConcurrentDictionary<int, TaskCompletionSource<FlowRunResult>> _results = new();
        private int _count;

        public int Count => Volatile.Read(ref _count);

        public Task<FlowRunResult> RunAsync(FlowRunContext context, CancellationToken ct)
        {
            var n = Interlocked.Increment(ref _count) - 1;
            StartedSource(n).SetResult(context);
            return ResultSource(n).Task.WaitAsync(ct);
        }

        public Task<FlowRunContext> Started(int n) => StartedSource(n).Task.Within($"run #{n} to start");

        public void Finish(int n, FlowRunResult result) => ResultSource(n).SetResult(result);

        private TaskCompletionSource<FlowRunContext> StartedSource(int n) =>
            _started.GetOrAdd(n, _ => new TaskCompletionSource<FlowRunContext>(TaskCreationOptions.RunContinuationsAsynchronously));

        private TaskCompletionSource<FlowRunResult> ResultSource(int n) =>
            _results.GetOrAdd(n, _ => new TaskCompletionSource<FlowRunResult>(TaskCreationOptions.RunContinuationsAsynchronously));
    }
}
