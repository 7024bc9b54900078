using EtlFunnel.Scripting.Tests.Support;

namespace EtlFunnel.Scripting.Tests;

/// <summary>Holes the hostile-hook review found in the semantic policy, each refused at its file(line,col).</summary>
public sealed class PolicyFixesTests
{
    private const string Hook = "List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param) => new List<OrchestratorTune>();\n";

    private static async Task<IReadOnlyList<HookDiagnostic>> CheckAsync(TempHooks hooks)
    {
        await using var host = await HookHost.LoadAsync(Fixtures.Options(hooks.Path, hooks.Cache) with { CompileOnly = true });
        return host.Diagnostics;
    }

    [Fact]
    public async Task A_line_directive_is_refused()
    {
        using var hooks = new TempHooks();
        var file = hooks.Write("line.csx", "#line 1 \"/etc/passwd\"\n" + Hook);

        (await CheckAsync(hooks)).Should().Contain(d => d.Id == "EF1023" && d.Line == 1 && d.File == file);
    }

    [Fact]
    public async Task Declaring_a_class_named_like_the_injected_budget_runtime_is_refused()
    {
        using var hooks = new TempHooks();
        var file = hooks.Write("shadow.csx", Hook + "public static class __EtlFunnelHookRuntime { public static void Loop() { } }\n");

        (await CheckAsync(hooks)).Should().Contain(d => d.Id == "EF1024" && d.Line == 2 && d.Column == 21 && d.File == file);
    }

    [Fact]
    public async Task A_load_directive_with_a_trailing_comment_loads_its_file()
    {
        using var hooks = new TempHooks();
        hooks.Write("lib/names.csx", "static string Suffix() => \"_x\";\n");
        hooks.Write("flow.csx", "#load \"lib/names.csx\" // shared naming\n" +
            "List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param) => new List<OrchestratorTune> { new OrchestratorTune { ParentEntityName = \"a\", NewEntityName = \"a\" + Suffix() } };\n");
        await using var host = await HookHost.LoadAsync(Fixtures.Options(hooks.Path, hooks.Cache));

        host.Diagnostics.Should().BeEmpty();
        (await host.FlowHooks.Single().InvokeAsync(Props.Of(1, Props.Entity("a"))))[0].NewEntityName.Should().Be("a_x");
    }

    [Fact]
    public async Task A_load_through_a_symlinked_parent_folder_outside_the_hooks_folder_is_refused()
    {
        using var hooks = new TempHooks();
        var outside = Directory.CreateTempSubdirectory("etlfunnel-outside-").FullName;
        try
        {
            await File.WriteAllTextAsync(Path.Combine(outside, "secret.csx"), "// not a hook\n");
            Directory.CreateSymbolicLink(Path.Combine(hooks.Path, "lib"), outside);
            var file = hooks.Write("flow.csx", "#load \"lib/secret.csx\"\n" + Hook);

            (await CheckAsync(hooks)).Should().Contain(d => d.Id == "EF1001" && d.Line == 1 && d.File == file);
        }
        finally
        {
            Directory.Delete(outside, recursive: true);
        }
    }

    [Fact]
    public async Task An_async_void_method_and_a_finalizer_are_refused_at_their_names()
    {
        using var hooks = new TempHooks();
        var file = hooks.Write("av.csx", Hook + "async void Later() { await Task.Yield(); }\nclass C { ~C() { } }\n");

        var found = await CheckAsync(hooks);

        found.Should().Contain(d => d.Id == "EF1025" && d.Line == 2 && d.Column == 12 && d.File == file);
        found.Should().Contain(d => d.Id == "EF1022" && d.Line == 3 && d.File == file);
    }
}
