using System.Reflection;
using System.Runtime.Loader;
using EtlFunnel.Execution.Models;

namespace EtlFunnel.Scripting.Loading;

/// <summary>
/// A collectible load context for one version of one compiled hook script. The contract assembly resolves to the
/// host's own copy so <see cref="OrchestratorProps"/> and <see cref="OrchestratorTune"/> are the same types on both
/// sides; everything else falls back to the default context (the BCL).
/// </summary>
internal sealed class HookLoadContext : AssemblyLoadContext
{
    private static readonly Assembly Contract = typeof(OrchestratorProps).Assembly;

    public HookLoadContext(string name)
        : base(name, isCollectible: true)
    {
    }

    protected override Assembly? Load(AssemblyName assemblyName)
        => string.Equals(assemblyName.Name, Contract.GetName().Name, StringComparison.Ordinal) ? Contract : null;
}
