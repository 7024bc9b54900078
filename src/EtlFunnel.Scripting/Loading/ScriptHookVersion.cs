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
    private readonly List<Transforming.TransformerHook> transformers = [];
    private readonly List<Batching.BatchHook> batchHooks = [];

    private ScriptHookVersion(string sourcePath, string key, HookLoadContext context)
        : base(sourcePath, key)
    {
        this.context = context;
        LoadContextReference = new WeakReference(context);
    }

    public override IReadOnlyList<IOrchestrationHook> Hooks => hooks;

    public override IReadOnlyList<Transforming.TransformerHook> Transformers => transformers;

    public override IReadOnlyList<Batching.BatchHook> BatchHooks => batchHooks;

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

            if (scriptType.GetMethod(ScriptCompiler.AppliesToInvoker, BindingFlags.Public | BindingFlags.Instance) is { } appliesInvoker)
            {
                async Task<object> Instance()
                {
                    var submissions = new object[2];
                    await factory(submissions).ConfigureAwait(false);
                    return submissions[1];
                }

                // AppliesTo is read once per loaded version (an instance member of the script: run its top level once).
                string appliesTo;
                using (var scope = new CancellationTokenSource(budget))
                {
                    begin(scope.Token);
                    var instance = Task.Run(Instance).GetAwaiter().GetResult();
                    appliesTo = appliesInvoker.CreateDelegate<Func<string?>>(instance)() is { Length: > 0 } declared ? declared : "*/*.*";
                }

                (string? File, int? Line, int? Column) LocateWithColumn(Exception ex) => SourceLocator.FromPdbWithColumn(ex, loaded, pdbImage, sourcePath);
                if (scriptType.GetMethod(ScriptCompiler.TransformInvoker, BindingFlags.Public | BindingFlags.Instance) is { } transformInvoker)
                {
                    async Task<Action<RowView, DocumentWriter>> NewInstance()
                        => transformInvoker.CreateDelegate<Action<RowView, DocumentWriter>>(await Instance().ConfigureAwait(false));

                    version.transformers.Add(new Transforming.TransformerHook(name, sourcePath, key, appliesTo, NewInstance, begin, LocateWithColumn) { Version = version });
                }

                var methods = new Dictionary<string, Func<object, object, object?>>(StringComparer.Ordinal);
                foreach (var method in new[] { ScriptCompiler.WriteRuleMethod, ScriptCompiler.TerminationMethod, ScriptCompiler.CheckpointMethod, ScriptCompiler.BacklogMethod })
                {
                    if (scriptType.GetMethod(ScriptCompiler.BatchInvokerPrefix + method, BindingFlags.Public | BindingFlags.Instance) is { } invoker)
                    {
                        methods[method] = (instance, argument) => invoker.CreateDelegate<Func<object, object?>>(instance)(argument);
                    }
                }

                if (methods.Count > 0)
                {
                    var declared = new Dictionary<string, (int Line, int Column)>(StringComparer.Ordinal);
                    var text = scriptType.GetMethod(ScriptCompiler.BatchLocations, BindingFlags.Public | BindingFlags.Static)?.CreateDelegate<Func<string>>()() ?? "";
                    foreach (var entry in text.Split(';', StringSplitOptions.RemoveEmptyEntries))
                    {
                        var (method, at) = (entry[..entry.IndexOf('=', StringComparison.Ordinal)], entry[(entry.IndexOf('=', StringComparison.Ordinal) + 1)..].Split(':'));
                        declared[method] = (int.Parse(at[0], System.Globalization.CultureInfo.InvariantCulture), int.Parse(at[1], System.Globalization.CultureInfo.InvariantCulture));
                    }

                    version.batchHooks.Add(new Batching.BatchHook(name, sourcePath, key, appliesTo, Instance, begin, LocateWithColumn, methods, declared) { Version = version });
                }
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
        transformers.Clear();
        batchHooks.Clear();
        loaded?.Unload();
    }
}
