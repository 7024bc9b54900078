using System;

namespace EtlFunnel.Execution.Models;

/// <summary>Measured connection quality.</summary>
public sealed class ConnectionStats
{
    /// <summary>Median round-trip time of a trivial request.</summary>
    public TimeSpan RoundTripLatency { get; init; }

    /// <summary>Measured bytes per second, or <c>null</c> when the engine cannot measure it cheaply.</summary>
    public double? ThroughputBytesPerSecond { get; init; }
}
