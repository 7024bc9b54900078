using System.Reflection;
using System.Runtime.Loader;
using EtlFunnel.Execution.Models;
using McMaster.NETCore.Plugins;

namespace EtlFunnel.Scripting.Loading;

/// <summary>
/// A plugin folder <c>hooks/&lt;Name&gt;/&lt;Name&gt;.dll</c> loaded with McMaster.NETCore.Plugins into an unloadable
/// context that shares the contract assembly with the host. Every public class implementing
/// <see cref="IFlowOrchestrator"/> / <see cref="IPipelineOrchestrator"/> becomes a hook; one instance per version.
/// </summary>
internal sealed class PluginHookVersion : HookFileVersion
{
    private PluginLoader? loader;
    private readonly List<IOrchestrationHook> hooks = [];

    private PluginHookVersion(string sourcePath, string key, PluginLoader loader)
        : base(sourcePath, key)
    {
        this.loader = loader;
    }

    public override IReadOnlyList<IOrchestrationHook> Hooks => hooks;

    public static (PluginHookVersion? Version, List<HookDiagnostic> Diagnostics) Load(string dllPath, string key, TimeSpan budget, TimeProvider time)
    {
        var diagnostics = new List<HookDiagnostic>();
        var loader = PluginLoader.CreateFromAssemblyFile(
            dllPath,
            isUnloadable: true,
            sharedTypes: [typeof(IFlowOrchestrator), typeof(IPipelineOrchestrator), typeof(OrchestratorProps)],
            configure: config => config.LoadInMemory = true); // the file can be replaced while this version runs
        var version = new PluginHookVersion(dllPath, key, loader);
        try
        {
            var assembly = loader.LoadDefaultAssembly();
            var context = AssemblyLoadContext.GetLoadContext(assembly);
            (string? File, int? Line) Locate(Exception ex) => SourceLocator.FromStackTrace(ex, a => AssemblyLoadContext.GetLoadContext(a) == context, dllPath);
            var assemblyName = Path.GetFileName(dllPath);
            foreach (var type in assembly.GetExportedTypes().Where(t => t is { IsClass: true, IsAbstract: false }).OrderBy(t => t.FullName, StringComparer.Ordinal))
            {
                var flow = typeof(IFlowOrchestrator).IsAssignableFrom(type);
                var pipeline = typeof(IPipelineOrchestrator).IsAssignableFrom(type);
                if (!flow && !pipeline)
                {
                    continue;
                }

                object instance;
                try
                {
                    instance = Activator.CreateInstance(type)!;
                }
                catch (Exception ex) when (ex is MissingMethodException or TargetInvocationException or MemberAccessException)
                {
                    diagnostics.Add(new HookDiagnostic(dllPath, 1, 1, "error", "EF0003",
                        $"cannot create plugin hook '{type.FullName}': it needs a public parameterless constructor that does not throw ({ex.InnerException?.Message ?? ex.Message})"));
                    continue;
                }

                var name = $"{assemblyName}:{type.FullName}";
                if (flow)
                {
                    var hook = (IFlowOrchestrator)instance;
                    version.hooks.Add(new GuardedHook(name, HookLevel.Flow, version, (p, _) => Task.FromResult<IEnumerable<OrchestratorTune>?>(hook.GetFlowOrchestration(p)), Locate, budget, time));
                }

                if (pipeline)
                {
                    var hook = (IPipelineOrchestrator)instance;
                    version.hooks.Add(new GuardedHook(name, HookLevel.Pipeline, version, (p, _) => Task.FromResult<IEnumerable<OrchestratorTune>?>(hook.GetPipelineOrchestration(p)), Locate, budget, time));
                }
            }

            if (version.hooks.Count == 0 && diagnostics.Count == 0)
            {
                diagnostics.Add(new HookDiagnostic(dllPath, 1, 1, "warning", "EF0001",
                    "the plugin has no public class implementing IFlowOrchestrator or IPipelineOrchestrator, so it serves no level"));
            }
        }
        catch (Exception ex) when (ex is FileNotFoundException or FileLoadException or BadImageFormatException or ReflectionTypeLoadException or TypeLoadException)
        {
            diagnostics.Add(new HookDiagnostic(dllPath, 1, 1, "error", "EF0003", $"cannot load plugin: {ex.Message}"));
        }

        if (diagnostics.Any(d => d.Severity == "error") || version.hooks.Count == 0)
        {
            version.Retire();
            return (null, diagnostics);
        }

        return (version, diagnostics);
    }

    protected override void Unload()
    {
        var loaded = loader;
        loader = null;
        hooks.Clear();
        loaded?.Dispose();
    }
}
