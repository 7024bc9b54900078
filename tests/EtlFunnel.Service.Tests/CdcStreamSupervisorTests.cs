using EtlFunnel.Service;
using EtlFunnel.Service.Tests.Support;

namespace EtlFunnel.Service.Tests;

/// <summary>
/// The CDC stream supervisor with a real <see cref="ServiceState"/> and a stream delegate standing in for the engine (the real
/// engine end to end is WatchCdcProcessTests'): a failure is shown and retried after the backoff, a plan that changes the
/// stream's shape restarts it, one that does not leaves it running, and a stop ends it.
/// </summary>
public sealed class CdcStreamSupervisorTests
{
    private readonly ManualTimeProvider _time = new();
    private readonly CollectingSink _log = new();

    [Fact]
    public async Task A_failed_stream_is_shown_and_retried_after_the_backoff_a_new_lane_count_restarts_it_and_stop_ends_it()
    {
        var state = new ServiceState(_time);
        state.SetPlan(SamplePlans.Plan(("orders", 1, ["orders"])), [], model: 1);
        var starts = new List<object?>();
        var streaming = 0;
        using var stop = new CancellationTokenSource();
        var supervisor = new CdcStreamSupervisor(
            ["orders"],
            async (ctx, ct) =>
            {
                int attempt;
                lock (starts)
                {
                    starts.Add(ctx.Plan.Model);
                    attempt = starts.Count;
                }

                if (attempt == 1)
                {
                    return FlowRunResult.Failed("flow 'orders' at flows.yaml(4,11): the source server runs with wal_level = replica");
                }

                var lanes = (int)ctx.Plan.Model!;
                Interlocked.Increment(ref streaming);
                ctx.Report(new StreamProgress(true, lanes, "0/16B3748", 120, 0, 7));
                try
                {
                    await Task.Delay(Timeout.InfiniteTimeSpan, ct);
                }
                finally
                {
                    Interlocked.Decrement(ref streaming);
                }

                return new FlowRunResult(RunOutcome.Cancelled, 7, 7, 0, 0);
            },
            (model, _) => $"{model} lane(s)",
            state,
            _time,
            _log.CreateLogger());

        var run = supervisor.RunAsync(stop.Token);

        // The failure: shown with its error and the retry time, health degraded, the service goes on.
        var failed = await state.WaitUntilAsync(s => s.Streams.TryGetValue("orders", out var x) && x.Phase == StreamPhase.Retrying, "the failed stream to wait for its retry");
        var stream = failed.Streams["orders"];
        stream.LastError.Should().Contain("wal_level = replica");
        stream.ConsecutiveFailures.Should().Be(1);
        stream.RetryAt.Should().Be(_time.GetUtcNow() + TimeSpan.FromSeconds(1));
        failed.Health.Healthy.Should().BeFalse();
        failed.Health.Reasons.Should().ContainSingle(r => r.Contains("the CDC stream of flow 'orders' failed", StringComparison.Ordinal) && r.Contains("wal_level = replica", StringComparison.Ordinal));
        StatusJson.Health(failed).Should().Contain("\"phase\": \"retrying\"").And.Contain("wal_level = replica");

        // After the backoff it starts again and streams; a stream that runs again is healthy although its last run failed.
        _time.Advance(TimeSpan.FromSeconds(1));
        var up = await state.WaitUntilAsync(s => s.Streams["orders"] is { Phase: StreamPhase.Streaming, Lanes: 1 }, "the retried stream to stream");
        up.Health.Healthy.Should().BeTrue(string.Join("; ", up.Health.Reasons));
        up.Streams["orders"].LagBytes.Should().Be(120);

        // A plan with the same shape leaves it alone; one with another lane count restarts it on that plan.
        state.SetPlan(SamplePlans.Plan(("orders", 1, ["orders"])), [], model: 1);
        state.SetPlan(SamplePlans.Plan(("orders", 3, ["orders"])), [], model: 3);
        var restarted = await state.WaitUntilAsync(s => s.Streams["orders"] is { Phase: StreamPhase.Streaming, Lanes: 3 }, "the stream restarted with 3 lanes");
        restarted.Streams["orders"].Restarts.Should().Be(1);
        restarted.Streams["orders"].Starts.Should().Be(3);
        lock (starts)
        {
            starts.Should().Equal(1, 1, 3);
        }

        Volatile.Read(ref streaming).Should().Be(1, "the stream on the old plan stopped before the new one started");

        await stop.CancelAsync();
        await run.Within("the supervisor to stop");
        state.Snapshot.Streams["orders"].Phase.Should().Be(StreamPhase.Stopped);
        state.Snapshot.Runs.Select(r => r.Outcome).Should().Equal(RunOutcome.Cancelled, RunOutcome.Cancelled, RunOutcome.Failed);
        _log.Lines.Should().Contain(l => l.Contains("changes its CDC stream (1 lane(s) -> 3 lane(s))", StringComparison.Ordinal));
    }
}
