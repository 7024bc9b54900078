using System.Collections.Concurrent;
using Serilog;
using Serilog.Core;
using Serilog.Events;
using Serilog.Extensions.Logging;

namespace EtlFunnel.Service.Tests.Support;

/// <summary>Keeps every rendered log line so tests can assert what the service said.</summary>
internal sealed class CollectingSink : ILogEventSink
{
    private readonly ConcurrentQueue<string> _lines = new();

    public IReadOnlyList<string> Lines => [.. _lines];

    public void Emit(LogEvent logEvent) =>
        _lines.Enqueue($"{logEvent.Level}: {logEvent.RenderMessage(System.Globalization.CultureInfo.InvariantCulture)}");

    /// <summary>A Microsoft.Extensions.Logging factory (what the service libraries take) writing into this sink through Serilog.</summary>
    public Microsoft.Extensions.Logging.ILoggerFactory CreateLogger() =>
        new SerilogLoggerFactory(new LoggerConfiguration().MinimumLevel.Verbose().WriteTo.Sink(this).CreateLogger(), dispose: true);
}
