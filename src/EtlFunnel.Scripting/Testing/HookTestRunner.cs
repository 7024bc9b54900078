using System.Collections.Immutable;
using System.Diagnostics;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;
using EtlFunnel.Execution.Testing;
using EtlFunnel.Scripting.Compiling;
using EtlFunnel.Scripting.Loading;

namespace EtlFunnel.Scripting.Testing;

/// <summary>
/// Runs a hooks folder's test cases: every top-level <c>*.test.csx</c> is compiled like a hook (policy, budget checks,
/// portable PDB) against the contract plus EtlFunnel.Contracts.Testing, loaded into its own collectible context and
/// run case by case. A case is a top-level method <c>Test…()</c> (void, Task or ValueTask; the file's top-level code
/// runs afresh before each, like a hook call), or the file's top-level code when it declares none. Runs where the
/// hooks run: in the worker (or in-process under <c>isolation: none</c>).
/// </summary>
internal static partial class HookTestRunner
{
    /// <summary>How long a case that ran past its budget gets to stop before the worker gives its thread up.</summary>
    private static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(2);

    /// <summary>True for a test-case file (<c>name.test.csx</c>), which the loader never treats as a hook.</summary>
    public static bool IsTestFile(string path) => path.EndsWith(".test.csx", StringComparison.OrdinalIgnoreCase);

    [GeneratedRegex("^Test([A-Z0-9_].*)?$", RegexOptions.CultureInvariant)]
    private static partial Regex CaseName();

    /// <summary>Runs every case of every test file of <paramref name="root"/>, ordinal by file name; <c>Abandoned</c> when a case could not be stopped.</summary>
    public static async Task<(IReadOnlyList<HookTestResult> Results, bool Abandoned)> RunAsync(string root, TimeSpan budget, bool policy, CancellationToken cancellationToken)
    {
        var results = new List<HookTestResult>();
        if (!Directory.Exists(root))
        {
            return (results, false);
        }

        var files = Directory.EnumerateFiles(root, "*.csx", SearchOption.TopDirectoryOnly).Where(IsTestFile)
            .Select(Path.GetFullPath).Order(StringComparer.Ordinal).ToList();
        foreach (var file in files)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var (fileResults, abandoned) = await RunFileAsync(root, file, budget, policy, cancellationToken).ConfigureAwait(false);
            results.AddRange(fileResults);
            if (abandoned)
            {
                return (results, true);
            }
        }

        return (results, false);
    }

    private static async Task<(IReadOnlyList<HookTestResult> Results, bool Abandoned)> RunFileAsync(string root, string file, TimeSpan budget, bool policy, CancellationToken cancellationToken)
    {
        var name = Path.GetRelativePath(root, file).Replace('\\', '/');
        ScriptSources sources;
        try
        {
            sources = ScriptSources.Read(root, file);
        }
        catch (IOException ex)
        {
            return ([new HookTestResult(name, "(read)", false, file, 0, 0, $"cannot read the test file: {ex.Message}", TimeSpan.Zero)], false);
        }

        var compiled = Compile(sources, policy);
        var errors = compiled.Diagnostics.Where(d => d.Severity == "error").ToList();
        if (!compiled.Succeeded || errors.Count > 0)
        {
            return (errors.Select(d => new HookTestResult(name, "(compile)", false, d.File, d.Line, d.Column, $"{d.Id}: {d.Message}", TimeSpan.Zero)).ToList(), false);
        }

        var context = new HookLoadContext("hook-test:" + name);
        try
        {
            var loaded = context.LoadFromStream(new MemoryStream(compiled.Assembly!, writable: false), new MemoryStream(compiled.Pdb!, writable: false));
            var scriptType = loaded.GetType(ScriptCompiler.ScriptClassName, throwOnError: true)!;
            var runtimeType = loaded.GetType(ScriptCompiler.ScriptClassName + "+" + ScriptCompiler.RuntimeClassName, throwOnError: true)!;
            var factory = scriptType.GetMethod("<Factory>", BindingFlags.Public | BindingFlags.Static)!.CreateDelegate<Func<object[], Task<object>>>();
            var begin = runtimeType.GetMethod("Begin", BindingFlags.Public | BindingFlags.Static)!.CreateDelegate<Action<CancellationToken>>();
            var pdb = ImmutableArray.Create(compiled.Pdb!);
            var cases = scriptType.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.DeclaredOnly)
                .Where(m => CaseName().IsMatch(m.Name) && m.GetParameters().Length == 0 && !m.IsGenericMethodDefinition
                    && (m.ReturnType == typeof(void) || m.ReturnType == typeof(Task) || m.ReturnType == typeof(ValueTask)))
                .OrderBy(m => m.MetadataToken)
                .ToList();

            var results = new List<HookTestResult>();
            foreach (var method in cases.Count == 0 ? [null] : cases.Cast<MethodInfo?>())
            {
                cancellationToken.ThrowIfCancellationRequested();
                var caseName = method?.Name ?? "(top-level)";
                var started = Stopwatch.GetTimestamp();
                using var scope = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                scope.CancelAfter(budget);
                var run = Task.Run(async () =>
                {
                    begin(scope.Token);
                    var submissions = new object[2];
                    await factory(submissions).ConfigureAwait(false);
                    await InvokeAsync(method, submissions[1]).ConfigureAwait(false);
                }, CancellationToken.None);
                try
                {
                    await run.WaitAsync(budget + StopGrace, CancellationToken.None).ConfigureAwait(false);
                    results.Add(new HookTestResult(name, caseName, true, file, 0, 0, "", Stopwatch.GetElapsedTime(started)));
                }
                catch (TimeoutException) when (!run.IsCompleted)
                {
                    results.Add(new HookTestResult(name, caseName, false, file, 0, 0,
                        $"ran past its time budget of {budget.TotalSeconds:0.###} s and did not stop (a blocking call?); the remaining cases were not run", Stopwatch.GetElapsedTime(started)));
                    return (results, true);
                }
#pragma warning disable CA1031 // Whatever the case or the hook threw is the case's failure.
                catch (Exception ex)
#pragma warning restore CA1031
                {
                    var (where, line, column) = SourceLocator.FromPdbWithColumn(ex, loaded, pdb, file);
                    var message = ex switch
                    {
                        CheckFailedException => ex.Message,
                        TimeoutException when scope.IsCancellationRequested && !cancellationToken.IsCancellationRequested => $"ran past its time budget of {budget.TotalSeconds:0.###} s",
                        _ => $"{ex.GetType().FullName}: {ex.Message}",
                    };
                    results.Add(new HookTestResult(name, caseName, false, where ?? file, line ?? 0, column ?? 0, message, Stopwatch.GetElapsedTime(started)));
                }
            }

            return (results, false);
        }
        finally
        {
            context.Unload();
        }
    }

    private static async Task InvokeAsync(MethodInfo? method, object instance)
    {
        if (method is null)
        {
            return; // the case is the top-level code, which the factory ran
        }

        if (method.ReturnType == typeof(Task))
        {
            await method.CreateDelegate<Func<Task>>(instance)().ConfigureAwait(false);
        }
        else if (method.ReturnType == typeof(ValueTask))
        {
            await method.CreateDelegate<Func<ValueTask>>(instance)().ConfigureAwait(false);
        }
        else
        {
            method.CreateDelegate<Action>(instance)();
        }
    }

    // Out of line: like the hooks' compile, so that loading this type does not load Roslyn.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static CompiledScript Compile(ScriptSources sources, bool policy)
        => ScriptCompiler.Compile(sources, "EtlFunnelHookTest_" + sources.Key[..16], policy, testCase: true);
}
