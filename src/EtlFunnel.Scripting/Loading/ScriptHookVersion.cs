using System.Reflection;
using EtlFunnel.Execution.Models;
using EtlFunnel.Scripting.Compiling;

namespace EtlFunnel.Scripting.Loading;

/// <summary>
/// A compiled hook script loaded into its own collectible <see cref="HookLoadContext"/>. Each call runs the script's
/// submission factory (top-level code and field initialisers) afresh, then the hook method on that instance.
/// Uses reflection only on the emitted assembly, never Roslyn: this is the cache-hit path.
/// </summary>
internal sealed class ScriptHookVersion : HookFileVersion
{
    private HookLoadContext? context;
    private readonly List<IOrchestrationHook> hooks = [];

    private ScriptHookVersion(string sourcePath, string key, HookLoadContext context)
        : base(sourcePath, key)
    {
        this.context = context;
        LoadContextReference = new WeakReference(context);
    }

    public override IReadOnlyList<IOrchestrationHook> Hooks => hooks;

    /// <summary>Lets tests prove the context is collected after unload.</summary>
    public WeakReference LoadContextReference { get; }

    public static ScriptHookVersion Load(string root, string sourcePath, string key, byte[] assembly, byte[] pdb, TimeSpan budget, TimeProvider time)
    {
        var context = new HookLoadContext("hook:" + Path.GetFileName(sourcePath) + ":" + key[..12]);
        try
        {
            var loaded = context.LoadFromStream(new MemoryStream(assembly, writable: false), new MemoryStream(pdb, writable: false));
            var scriptType = loaded.GetType(ScriptCompiler.ScriptClassName, throwOnError: true)!;
            var runtimeType = loaded.GetType(ScriptCompiler.ScriptClassName + "+" + ScriptCompiler.RuntimeClassName, throwOnError: true)!;
            var factory = scriptType.GetMethod("<Factory>", BindingFlags.Public | BindingFlags.Static)!
                .CreateDelegate<Func<object[], Task<object>>>();
            var begin = runtimeType.GetMethod("Begin", BindingFlags.Public | BindingFlags.Static)!
                .CreateDelegate<Action<CancellationToken>>();

            var version = new ScriptHookVersion(sourcePath, key, context);
            var name = Path.GetRelativePath(root, sourcePath).Replace('\\', '/');
            var pdbImage = System.Collections.Immutable.ImmutableArray.Create(pdb);
            (string? File, int? Line) Locate(Exception ex) => SourceLocator.FromPdb(ex, loaded, pdbImage, sourcePath);
            foreach (var (level, invokerName) in new[] { (HookLevel.Flow, ScriptCompiler.FlowInvoker), (HookLevel.Pipeline, ScriptCompiler.PipelineInvoker) })
            {
                if (scriptType.GetMethod(invokerName, BindingFlags.Public | BindingFlags.Instance) is not { } invoker)
                {
                    continue;
                }

                async Task<IEnumerable<OrchestratorTune>?> Call(OrchestratorProps props, CancellationToken token)
                {
                    var submissions = new object[2];
                    await factory(submissions).ConfigureAwait(false);
                    var hook = invoker.CreateDelegate<Func<OrchestratorProps, Task<IEnumerable<OrchestratorTune>?>>>(submissions[1]);
                    return await hook(props).ConfigureAwait(false);
                }

                version.hooks.Add(new GuardedHook(name, level, version, Call, Locate, budget, time, begin));
            }

            return version;
        }
        catch
        {
            context.Unload();
            throw;
        }
    }

    protected override void Unload()
    {
        var loaded = context;
        context = null;
        hooks.Clear();
        loaded?.Unload();
    }
}
