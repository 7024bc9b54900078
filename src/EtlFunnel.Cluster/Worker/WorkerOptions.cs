using System.Net;
using EtlFunnel.Execution.Models;

namespace EtlFunnel.Cluster.Worker;

/// <summary>Everything <c>etlfunnel worker</c> was started with.</summary>
internal sealed record WorkerOptions
{
    public required ClusterSettings Settings { get; init; }

    /// <summary>The flows.yaml this worker joins plans to (connection strings never travel with the plan).</summary>
    public required string ConfigPath { get; init; }

    /// <summary>The hooks folder whose content hash must equal the plan's (null: no hooks).</summary>
    public string? HooksDirectory { get; init; }

    /// <summary><see cref="HooksFingerprint.Compute"/> of <see cref="HooksDirectory"/>, taken at start.</summary>
    public required string HooksHash { get; init; }

    /// <summary>
    /// The data-plane transformers of this worker's own hook host (loaded from <see cref="HooksDirectory"/> under the config's
    /// isolation settings, as <c>run</c> loads them); applied to every replica this worker runs. Empty: none.
    /// </summary>
    public IReadOnlyList<EtlFunnel.Sync.Transforming.IBatchTransformer> Transformers { get; init; } = [];

    /// <summary>What this worker announces (cores, memory, region, labels).</summary>
    public required MachineInfo Machine { get; init; }

    /// <summary>The address other silos and callers reach this one at.</summary>
    public IPAddress AdvertisedAddress { get; init; } = IPAddress.Loopback;

    /// <summary>Silo-to-silo port (0: a free one).</summary>
    public int SiloPort { get; init; }

    /// <summary>Client gateway port (0: a free one).</summary>
    public int GatewayPort { get; init; }

    /// <summary>Local folder for dead letters (and the unused folder state store).</summary>
    public required string WorkDirectory { get; init; }

    public required Func<string, string?> Environment { get; init; }
}
