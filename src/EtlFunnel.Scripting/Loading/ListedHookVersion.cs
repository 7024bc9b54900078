using System.Reflection;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using EtlFunnel.Execution.Models;
using EtlFunnel.Scripting.Compiling;

namespace EtlFunnel.Scripting.Loading;

/// <summary>
/// A compiled (or plugin) hook listed from its metadata only, for <c>hooks check</c>: nothing of it is loaded into a
/// load context, so no module initializer, static constructor or other hook code can run.
/// </summary>
internal sealed class ListedHookVersion : HookFileVersion
{
    private readonly List<IOrchestrationHook> hooks;

    private ListedHookVersion(string sourcePath, string key, List<IOrchestrationHook> hooks)
        : base(sourcePath, key)
    {
        this.hooks = hooks;
    }

    public override IReadOnlyList<IOrchestrationHook> Hooks => hooks;

    public static ListedHookVersion ForScript(string root, string sourcePath, string key, byte[] assembly)
    {
        using var pe = new PEReader(new MemoryStream(assembly, writable: false));
        var md = pe.GetMetadataReader();
        var methods = md.TypeDefinitions.Select(md.GetTypeDefinition)
            .Where(t => md.GetString(t.Name) == ScriptCompiler.ScriptClassName)
            .SelectMany(t => t.GetMethods().Select(m => md.GetString(md.GetMethodDefinition(m).Name)))
            .ToHashSet(StringComparer.Ordinal);
        var name = Path.GetRelativePath(root, sourcePath).Replace('\\', '/');
        var listed = new List<IOrchestrationHook>();
        if (methods.Contains(ScriptCompiler.FlowInvoker))
        {
            listed.Add(new ListedHook(name, sourcePath, HookLevel.Flow, key));
        }

        if (methods.Contains(ScriptCompiler.PipelineInvoker))
        {
            listed.Add(new ListedHook(name, sourcePath, HookLevel.Pipeline, key));
        }

        return new ListedHookVersion(sourcePath, key, listed);
    }

    public static (ListedHookVersion? Version, List<HookDiagnostic> Diagnostics) ForPlugin(string dllPath, string key)
    {
        var listed = new List<IOrchestrationHook>();
        try
        {
            using var pe = new PEReader(File.OpenRead(dllPath));
            var md = pe.GetMetadataReader();
            var ns = typeof(IFlowOrchestrator).Namespace;
            foreach (var type in md.TypeDefinitions.Select(md.GetTypeDefinition)
                .Where(t => (t.Attributes & TypeAttributes.VisibilityMask) == TypeAttributes.Public && (t.Attributes & (TypeAttributes.Abstract | TypeAttributes.Interface)) == 0))
            {
                var interfaces = type.GetInterfaceImplementations()
                    .Select(i => md.GetInterfaceImplementation(i).Interface)
                    .Where(h => h.Kind == HandleKind.TypeReference)
                    .Select(h => md.GetTypeReference((TypeReferenceHandle)h))
                    .Where(r => md.GetString(r.Namespace) == ns)
                    .Select(r => md.GetString(r.Name))
                    .ToHashSet(StringComparer.Ordinal);
                var fullName = $"{md.GetString(type.Namespace)}.{md.GetString(type.Name)}".TrimStart('.');
                var name = $"{Path.GetFileName(dllPath)}:{fullName}";
                if (interfaces.Contains(nameof(IFlowOrchestrator)))
                {
                    listed.Add(new ListedHook(name, dllPath, HookLevel.Flow, key));
                }

                if (interfaces.Contains(nameof(IPipelineOrchestrator)))
                {
                    listed.Add(new ListedHook(name, dllPath, HookLevel.Pipeline, key));
                }
            }
        }
        catch (Exception ex) when (ex is BadImageFormatException or IOException or InvalidOperationException)
        {
            return (null, [new HookDiagnostic(dllPath, 1, 1, "error", "EF0003", $"cannot read plugin: {ex.Message}")]);
        }

        if (listed.Count == 0)
        {
            return (null, [new HookDiagnostic(dllPath, 1, 1, "warning", "EF0001", "the plugin has no public class implementing IFlowOrchestrator or IPipelineOrchestrator, so it serves no level")]);
        }

        return (new ListedHookVersion(dllPath, key, listed), []);
    }

    protected override void Unload()
    {
        // Nothing was loaded.
    }
}

/// <summary>A hook known by name and level only (<c>hooks check</c>); it cannot be invoked.</summary>
internal sealed class ListedHook(string name, string sourcePath, HookLevel level, string key) : IOrchestrationHook
{
    public string Name => name;

    public string SourcePath => sourcePath;

    public HookLevel Level => level;

    public string Key => key;

    public Task<IReadOnlyList<OrchestratorTune>> InvokeAsync(OrchestratorProps props, CancellationToken cancellationToken = default)
        => throw new InvalidOperationException($"hook '{name}' was only compiled and checked (hooks check), not loaded; it cannot run");
}
