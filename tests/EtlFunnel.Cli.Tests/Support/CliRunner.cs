using EtlFunnel.Cli.Hosting;
using EtlFunnel.Orchestration.Tests.Support;
using EtlFunnel.Runtime.Hooks;
using EtlFunnel.Scripting;

namespace EtlFunnel.Cli.Tests.Support;

internal sealed record CliResult(int ExitCode, string Out, string Err);

/// <summary>Hand-written hooks handed to the CLI in place of the script host.</summary>
internal sealed class TestLoadedHooks : ILoadedHooks
{
    public TestLoadedHooks(IOrchestrationHooks hooks, params HookDiagnostic[] diagnostics)
    {
        Hooks = hooks;
        Diagnostics = diagnostics;
    }

    public IOrchestrationHooks Hooks { get; }

    public IReadOnlyList<HookDiagnostic> Diagnostics { get; }

    public bool Disposed { get; private set; }

    public ValueTask DisposeAsync()
    {
        Disposed = true;
        return ValueTask.CompletedTask;
    }
}

/// <summary>Runs the command in-process with captured output.</summary>
internal static class CliRunner
{
    /// <summary>An existing, empty folder to pass as --hooks when the hooks themselves are hand-written.</summary>
    public static string HooksDir { get; } = Directory.CreateTempSubdirectory("etlfunnel-cli-hooks-").FullName;

    public static async Task<CliResult> RunAsync(string[] args, ILoadedHooks? hooks = null, IReadOnlyDictionary<string, string>? env = null, CancellationToken cancellationToken = default)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        HookLoader? loader = hooks is null ? null : (_, _) => Task.FromResult(hooks);
        var code = await CliApp.RunAsync(args, stdout, stderr, loader, name => env?.GetValueOrDefault(name), cancellationToken);
        return new CliResult(code, stdout.ToString(), stderr.ToString());
    }

    public static Task<CliResult> RunAsync(string[] args, IOrchestrationHooks hooks, IReadOnlyDictionary<string, string>? env = null) =>
        RunAsync(args, new TestLoadedHooks(hooks), env);

    public static string QuickstartConfig => Repo.Path("samples", "quickstart", "flows.yaml");

    public static string Region(string name) => Repo.Path("samples", "regions", name + ".yaml");

    public static string WriteConfig(string yaml)
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("etlfunnel-cli-").FullName, "flows.yaml");
        File.WriteAllText(path, yaml);
        return path;
    }
}
