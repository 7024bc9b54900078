using System.Collections.Immutable;
using System.Runtime.CompilerServices;
using System.Text;
using Basic.Reference.Assemblies;
using EtlFunnel.Execution.Models;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Emit;
using Microsoft.CodeAnalysis.Text;

namespace EtlFunnel.Scripting.Compiling;

/// <summary>The outcome of compiling one hook script: the emitted assembly and PDB, or the diagnostics.</summary>
internal sealed record CompiledScript(byte[]? Assembly, byte[]? Pdb, IReadOnlyList<HookDiagnostic> Diagnostics)
{
    public bool Succeeded => Assembly is not null;
}

/// <summary>
/// Compiles a hook script with Roslyn: a script compilation (so top-level methods and <c>#load</c> work as users
/// expect from .csx) against a fixed reference set, checked by <see cref="PolicyWalker"/>, then rewritten for the
/// time budget (<see cref="BudgetRewriter"/>) and emitted to memory with a portable PDB and the sources embedded.
/// All Roslyn use lives here and in the classes it calls, so the cache-hit path never loads the compiler.
/// </summary>
internal static class ScriptCompiler
{
    public const string ScriptClassName = "EtlFunnelHookScript";
    public const string RuntimeClassName = "__EtlFunnelHookRuntime";
    public const string FlowInvoker = "__EtlFunnel_InvokeFlow";
    public const string PipelineInvoker = "__EtlFunnel_InvokePipeline";
    public const string FlowMethod = "GetFlowOrchestration";
    public const string PipelineMethod = "GetPipelineOrchestration";
    public const string TransformInvoker = "__EtlFunnel_InvokeTransform";
    public const string AppliesToInvoker = "__EtlFunnel_AppliesTo";
    public const string TransformMethod = "Transform";
    public const string AppliesToMember = "AppliesTo";
    public const string WriteRuleMethod = "WriteRule";
    public const string TerminationMethod = "Termination";
    public const string CheckpointMethod = "OnCheckpoint";
    public const string BacklogMethod = "OnBacklog";
    public const string BatchInvokerPrefix = "__EtlFunnel_Invoke_";
    public const string BatchLocations = "__EtlFunnel_BatchLocations";

    /// <summary>The namespaces every hook script can use without a <c>using</c>.</summary>
    public static readonly IReadOnlyList<string> DefaultUsings =
    [
        "System", "System.Collections.Generic", "System.Globalization", "System.Linq", "System.Text",
        "System.Threading", "System.Threading.Tasks", "EtlFunnel.Execution.Models",
    ];

    /// <summary>What a <c>*.test.csx</c> case also sees: the testing package's fakes, builders and <c>Check</c>.</summary>
    public static readonly IReadOnlyList<string> TestUsings = [.. DefaultUsings, "EtlFunnel.Execution.Testing"];

    private static int compilations;

    /// <summary>How many scripts this process compiled (tests use it to prove cache hits skip the compiler).</summary>
    public static int Compilations => Volatile.Read(ref compilations);

    [MethodImpl(MethodImplOptions.NoInlining)]
    public static CompiledScript Compile(ScriptSources sources, string assemblyName, bool policy = true, bool testCase = false)
    {
        Interlocked.Increment(ref compilations);
        var parseOptions = new CSharpParseOptions(LanguageVersion.Latest, kind: SourceCodeKind.Script);
        var texts = sources.Files.ToDictionary(
            f => f.Key,
            f => SourceText.From(f.Value, f.Value.Length, Encoding.UTF8, SourceHashAlgorithm.Sha256, throwIfBinaryDetected: false, canBeEmbedded: true),
            StringComparer.Ordinal);

        var resolver = new HookSourceResolver(sources.Root, texts);
        var options = new CSharpCompilationOptions(
                OutputKind.DynamicallyLinkedLibrary,
                scriptClassName: ScriptClassName,
                usings: testCase ? TestUsings : DefaultUsings,
                // Unoptimised code keeps every frame (no inlining, no tail calls), so stack traces name the hook's
                // line and unbounded recursion reaches the stack check instead of looping as a tail call.
                optimizationLevel: OptimizationLevel.Debug,
                allowUnsafe: false,
                deterministic: true,
                nullableContextOptions: NullableContextOptions.Disable)
            .WithSourceReferenceResolver(resolver)
            .WithMetadataReferenceResolver(null);

        var mainTree = CSharpSyntaxTree.ParseText(texts[sources.MainPath], parseOptions, sources.MainPath);
        var references = testCase ? References.WithTesting : References.All;
        var compilation = CSharpCompilation.CreateScriptCompilation(
            assemblyName, mainTree, references, options, previousScriptCompilation: null, returnType: null);

        var diagnostics = new List<HookDiagnostic>();
        var found = new List<HookDiagnostic>();
        foreach (var tree in policy ? compilation.SyntaxTrees : [])
        {
            found.AddRange(PolicyWalker.Check(compilation, tree, sources.Root));
        }

        // A refused #load or #r is reported once, by the policy, not again by the compiler.
        var refusedDirectives = found
            .Where(d => d.Id is Policy.HookPolicy.LoadOutsideFolder or Policy.HookPolicy.ReferenceDirective)
            .Select(d => (d.File, d.Line))
            .ToHashSet();
        foreach (var diagnostic in compilation.GetDiagnostics())
        {
            if (diagnostic.Severity < DiagnosticSeverity.Warning)
            {
                continue;
            }

            var converted = Convert(diagnostic);
            if (!refusedDirectives.Contains((converted.File, converted.Line)))
            {
                diagnostics.Add(converted);
            }
        }

        diagnostics.AddRange(found);
        var (hasFlow, hasPipeline, transform) = (false, false, TransformShape.None);
        IReadOnlyList<BatchMethod> batch = [];
        if (!testCase && !diagnostics.Any(d => d.Severity == "error"))
        {
            batch = FindBatchHooks(compilation, diagnostics);
            transform = FindTransformer(compilation, diagnostics, batch.Count > 0);
            (hasFlow, hasPipeline) = FindHookMethods(compilation, sources.MainPath, diagnostics, transform != TransformShape.None || batch.Count > 0);
        }

        diagnostics = diagnostics.DistinctBy(d => (d.File, d.Line, d.Column, d.Id)).OrderBy(d => d.File, StringComparer.Ordinal)
            .ThenBy(d => d.Line).ThenBy(d => d.Column).ToList();
        // A test case needs no hook method of its own: it calls the ones it #loads.
        if (diagnostics.Any(d => d.Severity == "error") || !(testCase || hasFlow || hasPipeline || transform != TransformShape.None || batch.Count > 0))
        {
            return new CompiledScript(null, null, diagnostics);
        }

        // Second compilation: same sources with budget checks inserted (no line breaks added, so lines map 1:1).
        var rewritten = new Dictionary<string, SourceText>(StringComparer.Ordinal);
        SyntaxTree? newMain = null;
        foreach (var tree in compilation.SyntaxTrees)
        {
            var text = BudgetRewriter.Rewrite(tree, compilation.GetSemanticModel(tree));
            if (tree == mainTree)
            {
                text = text.WithChanges(new TextChange(new TextSpan(text.Length, 0), RuntimeSource(hasFlow, hasPipeline, transform, batch)));
                newMain = CSharpSyntaxTree.ParseText(SourceText.From(text.ToString(), Encoding.UTF8, SourceHashAlgorithm.Sha256), parseOptions, sources.MainPath);
            }
            else
            {
                rewritten[tree.FilePath] = SourceText.From(text.ToString(), Encoding.UTF8, SourceHashAlgorithm.Sha256);
            }
        }

        var emitCompilation = CSharpCompilation.CreateScriptCompilation(
            assemblyName,
            newMain!,
            references,
            options.WithSourceReferenceResolver(new HookSourceResolver(sources.Root, rewritten.Count == 0 ? texts : Merge(texts, rewritten))),
            previousScriptCompilation: null,
            returnType: null);

        using var pe = new MemoryStream();
        using var pdb = new MemoryStream();
        var embedded = emitCompilation.SyntaxTrees.Select(t => EmbeddedText.FromSource(t.FilePath, t.GetText()));
        var result = emitCompilation.Emit(
            pe,
            pdb,
            options: new EmitOptions(debugInformationFormat: DebugInformationFormat.PortablePdb, pdbFilePath: assemblyName + ".pdb"),
            embeddedTexts: embedded);
        if (!result.Success)
        {
            // The rewrite broke code that compiled: a host bug, reported where the compiler saw it.
            diagnostics.AddRange(result.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error)
                .Select(d => Convert(d) with { Message = "internal error after adding time-budget checks (please report): " + d.GetMessage(System.Globalization.CultureInfo.InvariantCulture) }));
            return new CompiledScript(null, null, diagnostics);
        }

        return new CompiledScript(pe.ToArray(), pdb.ToArray(), diagnostics);
    }

    private static Dictionary<string, SourceText> Merge(Dictionary<string, SourceText> original, Dictionary<string, SourceText> rewritten)
    {
        var merged = new Dictionary<string, SourceText>(original, StringComparer.Ordinal);
        foreach (var (path, text) in rewritten)
        {
            merged[path] = text;
        }

        return merged;
    }

    [Flags]
    private enum TransformShape
    {
        None = 0,
        Transform = 1,
        AppliesToValue = 2,
        AppliesToMethod = 4,
    }

    /// <summary>Finds <c>void Transform(RowView, DocumentWriter)</c> and the optional <c>string AppliesTo</c> (property, field or method).</summary>
    private static TransformShape FindTransformer(CSharpCompilation compilation, List<HookDiagnostic> diagnostics, bool batchHooks)
    {
        var scriptClass = compilation.ScriptClass!;
        var methods = scriptClass.GetMembers(TransformMethod).OfType<IMethodSymbol>().ToList();
        if (methods.Count == 0)
        {
            return batchHooks ? AppliesToShape(scriptClass, diagnostics) : TransformShape.None;
        }

        var row = compilation.GetTypeByMetadataName(typeof(RowView).FullName!)!;
        var doc = compilation.GetTypeByMetadataName(typeof(DocumentWriter).FullName!)!;
        var ok = methods.Any(m => m.ReturnsVoid && !m.IsGenericMethod && m.Parameters.Length == 2
            && SymbolEqualityComparer.Default.Equals(m.Parameters[0].Type, row) && SymbolEqualityComparer.Default.Equals(m.Parameters[1].Type, doc));
        if (!ok)
        {
            diagnostics.Add(Convert(methods[0].Locations[0], "error", "EF0003",
                $"{TransformMethod} must be 'void {TransformMethod}(RowView row, DocumentWriter doc)' (one call per row; the batch is the unit of the time budget)"));
            return TransformShape.None;
        }

        return TransformShape.Transform | AppliesToShape(scriptClass, diagnostics);
    }

    private static TransformShape AppliesToShape(INamedTypeSymbol scriptClass, List<HookDiagnostic> diagnostics)
    {
        var applies = scriptClass.GetMembers(AppliesToMember).FirstOrDefault();
        switch (applies)
        {
            case null:
                return TransformShape.None;
            case IPropertySymbol { Type.SpecialType: SpecialType.System_String, GetMethod: not null }:
            case IFieldSymbol { Type.SpecialType: SpecialType.System_String }:
                return TransformShape.AppliesToValue;
            case IMethodSymbol { ReturnType.SpecialType: SpecialType.System_String, Parameters.Length: 0, IsGenericMethod: false }:
                return TransformShape.AppliesToMethod;
            default:
                diagnostics.Add(Convert(applies.Locations[0], "error", "EF0004",
                    $"{AppliesToMember} must be a string (property, field or parameterless method) of comma-separated 'flow/schema.table' globs, e.g. \"shop/public.products*\""));
                return TransformShape.None;
        }
    }

    /// <summary>A batch-level hook method a script declares, with where it is declared (for errors about what it returned).</summary>
    internal sealed record BatchMethod(string Name, string Parameter, string Result, string File, int Line, int Column);

    /// <summary>The batch-level hooks (write rule, termination rule, checkpoint, backlog) and their shapes; a wrong shape is EF0006 at the method.</summary>
    private static List<BatchMethod> FindBatchHooks(CSharpCompilation compilation, List<HookDiagnostic> diagnostics)
    {
        var scriptClass = compilation.ScriptClass!;
        var found = new List<BatchMethod>();
        foreach (var (name, parameter, result, parameterName) in new[]
        {
            (WriteRuleMethod, typeof(PipelineInfo), typeof(WriteRule), "p"),
            (TerminationMethod, typeof(PipelineInfo), typeof(TerminationRule), "p"),
            (CheckpointMethod, typeof(CheckpointInfo), typeof(CheckpointDecision), "c"),
            (BacklogMethod, typeof(BacklogRecord), typeof(BacklogDecision), "r"),
        })
        {
            var methods = scriptClass.GetMembers(name).OfType<IMethodSymbol>().ToList();
            if (methods.Count == 0)
            {
                continue;
            }

            var p = compilation.GetTypeByMetadataName(parameter.FullName!)!;
            var r = compilation.GetTypeByMetadataName(result.FullName!)!;
            var ok = methods.FirstOrDefault(m => !m.IsGenericMethod && m.Parameters.Length == 1 && m.Parameters[0].RefKind == RefKind.None
                && SymbolEqualityComparer.Default.Equals(m.Parameters[0].Type, p) && SymbolEqualityComparer.Default.Equals(m.ReturnType, r));
            if (ok is null)
            {
                diagnostics.Add(Convert(methods[0].Locations[0], "error", "EF0006",
                    $"{name} must be '{result.Name} {name}({parameter.Name} {parameterName})' (called once per {(result == typeof(WriteRule) || result == typeof(TerminationRule) ? "replica" : result == typeof(CheckpointDecision) ? "checkpoint" : "failed record, in one call per batch")})"));
                continue;
            }

            var at = Convert(ok.Locations[0], "error", "", "");
            found.Add(new BatchMethod(name, parameter.FullName!, result.FullName!, at.File, at.Line, at.Column));
        }

        return found;
    }

    private static (bool Flow, bool Pipeline) FindHookMethods(CSharpCompilation compilation, string mainPath, List<HookDiagnostic> diagnostics, bool isTransformer)
    {
        var scriptClass = compilation.ScriptClass!;
        var props = compilation.GetTypeByMetadataName(typeof(OrchestratorProps).FullName!)!;
        var tune = compilation.GetTypeByMetadataName(typeof(OrchestratorTune).FullName!)!;
        var enumerable = compilation.GetSpecialType(SpecialType.System_Collections_Generic_IEnumerable_T).Construct(tune);
        var task = compilation.GetTypeByMetadataName("System.Threading.Tasks.Task`1");
        var valueTask = compilation.GetTypeByMetadataName("System.Threading.Tasks.ValueTask`1");

        bool Find(string name)
        {
            var methods = scriptClass.GetMembers(name).OfType<IMethodSymbol>().ToList();
            if (methods.Count == 0)
            {
                return false;
            }

            foreach (var method in methods)
            {
                var returnType = method.ReturnType;
                if (returnType is INamedTypeSymbol { IsGenericType: true } named
                    && (SymbolEqualityComparer.Default.Equals(named.OriginalDefinition, task) || SymbolEqualityComparer.Default.Equals(named.OriginalDefinition, valueTask)))
                {
                    returnType = named.TypeArguments[0];
                }

                var shapeOk = method.Parameters.Length == 1
                    && SymbolEqualityComparer.Default.Equals(method.Parameters[0].Type, props)
                    && !method.IsGenericMethod
                    && compilation.ClassifyConversion(returnType, enumerable).IsImplicit
                    && returnType.SpecialType != SpecialType.System_Object;
                if (shapeOk)
                {
                    return true;
                }
            }

            var location = methods[0].Locations[0];
            diagnostics.Add(Convert(location, "error", "EF0002",
                $"{name} must take (OrchestratorProps param) and return List<OrchestratorTune>, IEnumerable<OrchestratorTune> or a Task of one of them"));
            return false;
        }

        var flow = Find(FlowMethod);
        var pipeline = Find(PipelineMethod);
        if (!flow && !pipeline && !isTransformer && !diagnostics.Any(d => d.Id is "EF0002" or "EF0003"))
        {
            diagnostics.Add(new HookDiagnostic(mainPath, 1, 1, "warning", "EF0001",
                $"declares neither {FlowMethod} nor {PipelineMethod}(OrchestratorProps param) nor {TransformMethod}(RowView row, DocumentWriter doc), so it serves no level; a helper file must be #load-ed by a hook"));
        }

        return (flow, pipeline);
    }

    private static string RuntimeSource(bool flow, bool pipeline, TransformShape transform, IReadOnlyList<BatchMethod> batch)
    {
        const string Tunes = "global::System.Collections.Generic.IEnumerable<global::EtlFunnel.Execution.Models.OrchestratorTune>";
        const string TaskOfTunes = "global::System.Threading.Tasks.Task<" + Tunes + ">";
        var sb = new StringBuilder();
        sb.Append('\n');
        if (flow)
        {
            sb.Append("public ").Append(TaskOfTunes).Append(' ').Append(FlowInvoker)
              .Append("(global::EtlFunnel.Execution.Models.OrchestratorProps p) => ").Append(RuntimeClassName).Append(".Adapt(").Append(FlowMethod).Append("(p));\n");
        }

        if (pipeline)
        {
            sb.Append("public ").Append(TaskOfTunes).Append(' ').Append(PipelineInvoker)
              .Append("(global::EtlFunnel.Execution.Models.OrchestratorProps p) => ").Append(RuntimeClassName).Append(".Adapt(").Append(PipelineMethod).Append("(p));\n");
        }

        if (transform.HasFlag(TransformShape.Transform))
        {
            sb.Append("public void ").Append(TransformInvoker)
              .Append("(global::EtlFunnel.Execution.Models.RowView r, global::EtlFunnel.Execution.Models.DocumentWriter d) { ").Append(TransformMethod).Append("(r, d); }\n");
        }

        foreach (var m in batch)
        {
            sb.Append("public object ").Append(BatchInvokerPrefix).Append(m.Name).Append("(object a) { return ").Append(m.Name)
              .Append("((global::").Append(m.Parameter).Append(")a); }\n");
        }

        if (batch.Count > 0)
        {
            // Where each batch hook is declared: a bad value it returns is reported there.
            var locations = string.Join(";", batch.Select(m => $"{m.Name}={m.Line}:{m.Column}"));
            sb.Append("public static string ").Append(BatchLocations).Append("() { return ").Append(SymbolDisplay.FormatLiteral(locations, quote: true)).Append("; }\n");
        }

        if (transform.HasFlag(TransformShape.Transform) || batch.Count > 0)
        {
            sb.Append("public string ").Append(AppliesToInvoker).Append("() { return ")
              .Append(transform.HasFlag(TransformShape.AppliesToMethod) ? AppliesToMember + "()" : transform.HasFlag(TransformShape.AppliesToValue) ? AppliesToMember : "null")
              .Append("; }\n");
        }

        sb.Append($$"""
            public static class {{RuntimeClassName}}
            {
                private static readonly global::System.Threading.AsyncLocal<global::System.Threading.CancellationToken> s_token = new global::System.Threading.AsyncLocal<global::System.Threading.CancellationToken>();
                // Thread statics hold plain numbers only: a reference there would outlive the call on a pooled thread.
                [global::System.ThreadStatic] private static nint t_stackBase;
                [global::System.ThreadStatic] private static long t_stackCall;
                private static readonly global::System.Threading.AsyncLocal<long> s_call = new global::System.Threading.AsyncLocal<long>();
                private static long s_calls;
                public static void Begin(global::System.Threading.CancellationToken token) { s_token.Value = token; var call = global::System.Threading.Interlocked.Increment(ref s_calls); s_call.Value = call; byte here = 0; t_stackBase = Address(ref here); t_stackCall = call; }
                private static nint Address(ref byte b) { return global::System.Runtime.CompilerServices.Unsafe.ByteOffset(ref global::System.Runtime.CompilerServices.Unsafe.NullRef<byte>(), ref b); }
                public static bool Stopping { get { return s_token.Value.IsCancellationRequested; } }
                public static void Loop() { var t = s_token.Value; if (t.IsCancellationRequested) throw new global::System.TimeoutException("The hook ran past its time budget."); }
                public static void Enter()
                {
                    Loop();
                    global::System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
                    // Cap the hook's own stack well before the thread's end: unwinding a maximal recursion takes seconds.
                    byte here = 0;
                    if (t_stackCall == s_call.Value && t_stackBase - Address(ref here) > MaxStackBytes) throw new global::System.InsufficientExecutionStackException("The hook recursed too deeply (over " + MaxStackBytes / 1024 + " KB of stack).");
                }
                private const int MaxStackBytes = 256 * 1024;
                public static {{TaskOfTunes}} Adapt({{Tunes}} result) { return global::System.Threading.Tasks.Task.FromResult(result); }
                public static async {{TaskOfTunes}} Adapt<T>(global::System.Threading.Tasks.Task<T> task) where T : {{Tunes}} { if (task == null) return null; return await task.ConfigureAwait(false); }
                public static async {{TaskOfTunes}} Adapt<T>(global::System.Threading.Tasks.ValueTask<T> task) where T : {{Tunes}} { return await task.ConfigureAwait(false); }
            }

            """);
        return sb.ToString();
    }

    internal static HookDiagnostic Convert(Diagnostic diagnostic)
        => Convert(diagnostic.Location, diagnostic.Severity == DiagnosticSeverity.Error ? "error" : "warning", diagnostic.Id,
            diagnostic.GetMessage(System.Globalization.CultureInfo.InvariantCulture));

    internal static HookDiagnostic Convert(Location location, string severity, string id, string message)
    {
        if (location.IsInSource || location.Kind == LocationKind.ExternalFile)
        {
            var span = location.GetMappedLineSpan();
            return new HookDiagnostic(span.Path, span.StartLinePosition.Line + 1, span.StartLinePosition.Character + 1, severity, id, message);
        }

        return new HookDiagnostic("", 0, 0, severity, id, message);
    }

    /// <summary>The allow-list of reference assemblies hooks compile against, plus the contract.</summary>
    private static class References
    {
        public static readonly ImmutableArray<MetadataReference> All = Build();

        /// <summary>For <c>*.test.csx</c> cases: the hooks' references plus EtlFunnel.Contracts.Testing.</summary>
        public static readonly ImmutableArray<MetadataReference> WithTesting =
            All.Add(MetadataReference.CreateFromFile(typeof(EtlFunnel.Execution.Testing.Check).Assembly.Location));

        private static ImmutableArray<MetadataReference> Build()
        {
            // Assemblies with forbidden APIs (network, processes, threads, emit, loader, interop) are referenced on
            // purpose: the policy then names the forbidden API instead of the compiler reporting an unknown type.
            return
            [
                Net100.References.SystemRuntime,
                Net100.References.SystemCollections,
                Net100.References.SystemCollectionsConcurrent,
                Net100.References.SystemCollectionsImmutable,
                Net100.References.SystemLinq,
                Net100.References.SystemMemory,
                Net100.References.SystemRuntimeNumerics,
                Net100.References.SystemTextRegularExpressions,
                Net100.References.SystemObjectModel,
                Net100.References.SystemConsole,
                Net100.References.SystemThreading,
                Net100.References.SystemThreadingThread,
                Net100.References.SystemThreadingThreadPool,
                Net100.References.SystemThreadingTasksParallel,
                Net100.References.SystemDiagnosticsProcess,
                Net100.References.SystemComponentModelPrimitives,
                Net100.References.SystemNetHttp,
                Net100.References.SystemNetPrimitives,
                Net100.References.SystemNetSockets,
                Net100.References.SystemReflectionEmit,
                Net100.References.SystemReflectionEmitLightweight,
                Net100.References.SystemRuntimeLoader,
                Net100.References.SystemRuntimeInteropServices,
                Net100.References.SystemLinqExpressions,
                MetadataReference.CreateFromFile(typeof(OrchestratorProps).Assembly.Location),
            ];
        }
    }
}
