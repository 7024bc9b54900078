using System.Diagnostics;
using EtlFunnel.Service;
using EtlFunnel.Service.Tests.Support;

namespace EtlFunnel.Service.Tests;

public sealed class ShutdownSignalTests
{
    [Fact]
    public async Task A_real_sigterm_cancels_the_token_and_the_process_keeps_running_to_drain()
    {
        var log = new CollectingSink();
        using var shutdown = ShutdownSignal.Register(log.CreateLogger());
        var cancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var registration = shutdown.Token.Register(() => cancelled.TrySetResult());

        using (var kill = Process.Start("kill", $"-TERM {Environment.ProcessId}"))
        {
            await kill.WaitForExitAsync();
            kill.ExitCode.Should().Be(0);
        }

        await cancelled.Task.Within("SIGTERM to cancel the shutdown token");
        shutdown.Token.IsCancellationRequested.Should().BeTrue();
        log.Lines.Should().Contain(l => l.StartsWith("Information: SIGTERM received: stopping the schedule", StringComparison.Ordinal));
    }
}
