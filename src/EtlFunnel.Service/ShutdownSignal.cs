using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;

namespace EtlFunnel.Service;

/// <summary>
/// SIGTERM / SIGINT (Ctrl-C) / SIGQUIT as a <see cref="CancellationToken"/>: the first signal cancels
/// <see cref="Token"/> and keeps the process alive so the service can drain and save checkpoints; a
/// second signal exits at once (128 + signal number), so an operator can still force the exit.
/// </summary>
internal sealed class ShutdownSignal : IDisposable
{
    private readonly CancellationTokenSource _cts = new();
    private readonly PosixSignalRegistration[] _registrations;
    private readonly ILogger _log;
    private int _signals;

    private ShutdownSignal(ILoggerFactory log)
    {
        _log = log.CreateLogger<ShutdownSignal>();
        _registrations =
        [
            PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal),
            PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal),
            PosixSignalRegistration.Create(PosixSignal.SIGQUIT, OnSignal),
        ];
    }

    /// <summary>Cancelled by the first shutdown signal.</summary>
    public CancellationToken Token => _cts.Token;

    /// <summary>Starts listening for shutdown signals.</summary>
    public static ShutdownSignal Register(ILoggerFactory log) => new(log ?? throw new ArgumentNullException(nameof(log)));

    /// <summary>Stops listening (signals get their default action again).</summary>
    public void Dispose()
    {
        foreach (var r in _registrations)
        {
            r.Dispose();
        }

        _cts.Dispose();
    }

    private void OnSignal(PosixSignalContext context)
    {
        if (Interlocked.Increment(ref _signals) == 1)
        {
            context.Cancel = true;
            _log.LogInformation("{Signal} received: stopping the schedule and draining runs in flight (send it again to exit at once)", context.Signal);
            _cts.Cancel();
        }
        else
        {
            _log.LogWarning("{Signal} received again: exiting without draining", context.Signal);
            // The Generic Host's console lifetime cancels the default action of every such signal; exit as it would have.
            Environment.Exit(128 + context.Signal switch
            {
                PosixSignal.SIGINT => 2,
                PosixSignal.SIGQUIT => 3,
                _ => 15,
            });
        }
    }
}
