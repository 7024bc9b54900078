using Microsoft.Extensions.Logging;

namespace EtlFunnel.Cluster;

/// <summary>Orleans logs into the command's logger factory, warnings and above only: its information level prints every option at start.</summary>
internal static class ClusterLogging
{
    public static void Configure(ILoggingBuilder logging, ILoggerFactory target)
    {
        logging.ClearProviders();
        logging.AddProvider(new Forward(target));
        logging.AddFilter("Orleans", LogLevel.Warning);
        logging.AddFilter("Microsoft", LogLevel.Warning);
        logging.AddFilter("Polly", LogLevel.Warning);
    }

    private sealed class Forward(ILoggerFactory target) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => target.CreateLogger(categoryName);

        public void Dispose()
        {
        }
    }
}
