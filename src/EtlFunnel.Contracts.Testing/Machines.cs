using System;
using System.Collections.Generic;
using EtlFunnel.Execution.Models;

namespace EtlFunnel.Execution.Testing;

/// <summary>Machines to plan for in tests: <c>Machines.With(cores: 8, memoryGb: 32, region: "EU")</c>.</summary>
public static class Machines
{
    /// <summary>A machine with the given cores, memory (GiB, binary as in machine profiles), region, host name and labels.</summary>
    public static MachineInfo With(int cores = 4, double memoryGb = 16, string? region = null, string hostName = "test-machine", IReadOnlyDictionary<string, string>? labels = null)
    {
        if (cores < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(cores), cores, "a machine has at least one core");
        }

        if (memoryGb <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(memoryGb), memoryGb, "a machine has some memory");
        }

        return new MachineInfo
        {
            LogicalCores = cores,
            TotalMemoryBytes = (long)(memoryGb * (1L << 30)),
            Region = region,
            HostName = hostName ?? throw new ArgumentNullException(nameof(hostName)),
            Labels = labels ?? new Dictionary<string, string>(),
        };
    }
}
