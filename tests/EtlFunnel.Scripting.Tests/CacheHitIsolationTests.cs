using System.Reflection;
using System.Runtime.Loader;
using EtlFunnel.Scripting.Tests.Support;

namespace EtlFunnel.Scripting.Tests;

public sealed class CacheHitIsolationTests
{
    [Fact]
    public async Task A_cache_hit_loads_hooks_without_loading_the_compiler()
    {
        using var hooks = new TempHooks();
        hooks.CopyFixture("Seed/flow-by-cores.csx");
        await (await HookHost.LoadAsync(Fixtures.Options(hooks.Path, hooks.Cache))).DisposeAsync(); // compiles and fills the cache

        // A fresh copy of the host in its own context shows which assemblies a cache-hit load pulls in.
        var context = new RecordingContext();
        try
        {
            var scripting = context.LoadFromAssemblyPath(typeof(HookHost).Assembly.Location);
            var optionsType = scripting.GetType(typeof(HookHostOptions).FullName!, throwOnError: true)!;
            var options = Activator.CreateInstance(optionsType)!;
            optionsType.GetProperty(nameof(HookHostOptions.HooksDirectory))!.SetValue(options, hooks.Path);
            optionsType.GetProperty(nameof(HookHostOptions.CacheDirectory))!.SetValue(options, hooks.Cache);
            // In-process: with the worker, this process loads no hook machinery at all.
            var isolation = optionsType.GetProperty(nameof(HookHostOptions.Isolation))!;
            isolation.SetValue(options, Enum.Parse(isolation.PropertyType, nameof(HookIsolation.None)));
            var hostType = scripting.GetType(typeof(HookHost).FullName!, throwOnError: true)!;
            var load = (Task)hostType.GetMethod(nameof(HookHost.LoadAsync))!.Invoke(null, [options, CancellationToken.None])!;
            await load;
            var host = load.GetType().GetProperty("Result")!.GetValue(load)!;
            var flowHooks = (System.Collections.ICollection)hostType.GetProperty(nameof(HookHost.FlowHooks))!.GetValue(host)!;
            await ((IAsyncDisposable)host).DisposeAsync();

            flowHooks.Count.Should().Be(1, "the hook was loaded from the cache");
            context.Requested.Should().Contain("EtlFunnel.Contracts").And.NotContain(n => n.StartsWith("Microsoft.CodeAnalysis", StringComparison.Ordinal));
        }
        finally
        {
            context.Unload();
        }
    }

    private sealed class RecordingContext() : AssemblyLoadContext("cache-hit-probe", isCollectible: true)
    {
        public List<string> Requested { get; } = [];

        protected override Assembly? Load(AssemblyName assemblyName)
        {
            lock (Requested)
            {
                Requested.Add(assemblyName.Name!);
            }

            var local = Path.Combine(AppContext.BaseDirectory, assemblyName.Name + ".dll");
            return File.Exists(local) ? LoadFromAssemblyPath(local) : null;
        }
    }
}
