using System.Collections.Generic;

namespace EtlFunnel.Execution.Models;

/// <summary>The machine a plan is made for: detected (respecting container limits) or a profile's.</summary>
public sealed class MachineInfo
{
    private static readonly IReadOnlyDictionary<string, string> NoLabels = new Dictionary<string, string>();

    /// <summary>Logical cores available to the process.</summary>
    public required int LogicalCores { get; init; }

    /// <summary>Memory available to the process, in bytes.</summary>
    public required long TotalMemoryBytes { get; init; }

    /// <summary>The region name, e.g. <c>EU</c>; <c>null</c> when not configured.</summary>
    public string? Region { get; init; }

    /// <summary>The host name, or the profile's name.</summary>
    public string HostName { get; init; } = "";

    /// <summary>Free-form labels from the machine profile.</summary>
    public IReadOnlyDictionary<string, string> Labels { get; init; } = NoLabels;
}
