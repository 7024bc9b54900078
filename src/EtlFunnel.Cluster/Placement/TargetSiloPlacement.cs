using Orleans.Placement;
using Orleans.Runtime;
using Orleans.Runtime.Placement;

namespace EtlFunnel.Cluster.Placement;

/// <summary>
/// Places a replica grain on the silo its key names (<c>…@&lt;silo&gt;</c>, chosen by the caller by free cores and labels);
/// when that silo is gone, on any compatible silo (the caller then sees the owner in the lease and counts it there).
/// </summary>
[Serializable, GenerateSerializer, Immutable, SuppressReferenceTracking]
internal sealed class TargetSiloPlacement : PlacementStrategy
{
    public static TargetSiloPlacement Instance { get; } = new();
}

/// <summary>Puts a grain class under <see cref="TargetSiloPlacement"/>.</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
internal sealed class TargetSiloPlacementAttribute : PlacementAttribute
{
    public TargetSiloPlacementAttribute()
        : base(TargetSiloPlacement.Instance)
    {
    }
}

/// <summary>The director of <see cref="TargetSiloPlacement"/>.</summary>
internal sealed class TargetSiloPlacementDirector : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var silos = context.GetCompatibleSilos(target);
        if (TargetOf(System.Text.Encoding.UTF8.GetString(target.GrainIdentity.Key.AsSpan())) is { } wanted)
        {
            foreach (var silo in silos)
            {
                if (silo.ToParsableString() == wanted)
                {
                    return Task.FromResult(silo);
                }
            }
        }

        return Task.FromResult(silos[Random.Shared.Next(silos.Length)]);
    }

    /// <summary>The grain key of attempt <paramref name="attempt"/> of a replica's lease, placed on <paramref name="silo"/>.</summary>
    public static string GrainKey(string leaseKey, int attempt, string silo) => $"{leaseKey}#{attempt}@{silo}";

    /// <summary>The silo named in a grain key (after the '@' that follows the attempt; a silo address has an '@' of its own).</summary>
    public static string? TargetOf(string grainKey)
    {
        var hash = grainKey.LastIndexOf('#');
        var at = hash < 0 ? -1 : grainKey.IndexOf('@', hash);
        return at < 0 ? null : grainKey[(at + 1)..];
    }

    /// <summary>The lease key inside a grain key.</summary>
    public static string LeaseKeyOf(string grainKey) => grainKey[..grainKey.LastIndexOf('#')];
}
