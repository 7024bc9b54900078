using System.Text.Json.Nodes;
using EtlFunnel.Cli.Tests.Support;
using EtlFunnel.Orchestration.Tests.Support;

namespace EtlFunnel.Cli.Tests.Commands;

/// <summary><c>etlfunnel hooks init</c>, verified the way an editor uses it: csharp-ls over LSP on the folder it set up.</summary>
public sealed class HooksInitCommandTests
{
    private static string CopyOfShippedHooks()
    {
        var dir = Directory.CreateTempSubdirectory("etlfunnel-init-").FullName;
        foreach (var file in Directory.GetFiles(Repo.Path("hooks"), "*.csx"))
        {
            File.Copy(file, Path.Combine(dir, Path.GetFileName(file)));
        }

        return dir;
    }

    [Fact]
    public async Task Init_writes_the_editor_project_and_the_contract_with_its_docs_and_the_folder_still_checks_and_tests()
    {
        var dir = CopyOfShippedHooks();

        var init = await CliRunner.RunAsync(["hooks", "init", dir]);

        init.ExitCode.Should().Be(0, init.Err);
        File.ReadAllText(Path.Combine(dir, "hooks.csproj")).Should().Contain("<Compile Include=\"**/*.csx\"").And.Contain("EtlFunnel.Contracts.dll");
        File.Exists(Path.Combine(dir, ".etlfunnel", "EtlFunnel.Contracts.xml")).Should().BeTrue("hover shows the contract's XML docs");
        File.ReadAllText(Path.Combine(dir, ".etlfunnel", "EtlFunnel.Contracts.xml")).Should().Contain("What a hook is given");

        // The project and the copied DLLs change nothing for the host: same hooks, #load and test cases still work.
        var check = await CliRunner.RunAsync(["hooks", "check", "--hooks", dir]);
        check.ExitCode.Should().Be(0, check.Err);
        check.Out.Should().Contain("1 flow hook(s), 1 pipeline hook(s)");
        var test = await CliRunner.RunAsync(["hooks", "test", "--hooks", dir]);
        test.ExitCode.Should().Be(0, test.Out + test.Err);
        test.Out.Should().Contain("5 passed, 0 failed");
    }

    [CsharpLsFact]
    public async Task Csharp_ls_hovers_and_completes_the_contract_in_a_hook_after_init()
    {
        var dir = CopyOfShippedHooks();
        (await CliRunner.RunAsync(["hooks", "init", dir])).ExitCode.Should().Be(0);
        var hook = Path.Combine(dir, "flow-by-cores.csx");
        var lines = await File.ReadAllLinesAsync(hook);
        var signature = Array.FindIndex(lines, l => l.Contains("GetFlowOrchestration(OrchestratorProps param)", StringComparison.Ordinal));
        var usage = Array.FindIndex(lines, l => l.Contains("param.Machine.LogicalCores", StringComparison.Ordinal));
        var uri = new Uri(hook).AbsoluteUri;

        await using var ls = LspClient.Start(CsharpLs.Path ?? throw new InvalidOperationException($"csharp-ls is required ({CsharpLs.RequireVariable}=1) but not installed; .ci/run installs it"), dir);
        await ls.RequestAsync("initialize", new
        {
            processId = Environment.ProcessId,
            rootUri = new Uri(dir).AbsoluteUri,
            capabilities = new { textDocument = new { hover = new { contentFormat = new[] { "markdown", "plaintext" } }, completion = new { } } },
        }, TimeSpan.FromMinutes(2));
        await ls.NotifyAsync("initialized", new { });
        await ls.NotifyAsync("textDocument/didOpen", new { textDocument = new { uri, languageId = "csharp", version = 1, text = string.Join('\n', lines) } });

        // The server answers an empty hover until it has loaded the project (a design-time build): ask until it knows.
        var at = new { line = signature, character = lines[signature].IndexOf("OrchestratorProps", StringComparison.Ordinal) + 3 };
        string? hover = null;
        for (var attempt = 0; attempt < 60 && string.IsNullOrEmpty(hover); attempt++)
        {
            var reply = await ls.RequestAsync("textDocument/hover", new { textDocument = new { uri }, position = at }, TimeSpan.FromMinutes(2));
            hover = (string?)reply?["contents"]?["value"];
            if (string.IsNullOrEmpty(hover))
            {
                await Task.Delay(TimeSpan.FromSeconds(2));
            }
        }

        hover.Should().Contain("OrchestratorProps").And.Contain("What a hook is given: the entities of one level and the machine the plan is made for.", ls.Log);

        var dot = lines[usage].IndexOf("param.", StringComparison.Ordinal) + "param.".Length;
        var completion = await ls.RequestAsync("textDocument/completion",
            new { textDocument = new { uri }, position = new { line = usage, character = dot }, context = new { triggerKind = 2, triggerCharacter = "." } }, TimeSpan.FromMinutes(2));
        var items = (completion as JsonObject)?["items"]?.AsArray() ?? completion?.AsArray() ?? [];
        items.Select(i => (string?)i?["label"]).Should().Contain(["Entity", "Machine", "ClusterMachines", "Parent", "CancellationToken"], ls.Log);
    }
}
