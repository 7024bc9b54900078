using EtlFunnel.Scripting.Compiling;
using EtlFunnel.Scripting.Tests.Support;

namespace EtlFunnel.Scripting.Tests;

/// <summary>Counts compilations, so nothing else may compile at the same time.</summary>
[CollectionDefinition(nameof(CompilerCounting), DisableParallelization = true)]
public sealed class CompilerCounting;

[Collection(nameof(CompilerCounting))]
public sealed class CacheTests
{
    private const string Flow = """
        #load "lib/names.csx"
        List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param)
            => param.Entity.Select(e => new OrchestratorTune { ParentEntityName = e.Name, NewEntityName = Names.Of(e.Name) }).ToList();
        """;

    private static async Task<string> FirstName(HookHost host)
        => (await host.FlowHooks.Single().InvokeAsync(Props.Of(1, Props.Entity("a")))).Single().NewEntityName;

    [Fact]
    public async Task A_second_load_is_a_cache_hit_that_does_not_compile()
    {
        using var hooks = new TempHooks();
        hooks.Write("lib/names.csx", "static class Names { public static string Of(string n) => n + \"_cached\"; }");
        hooks.Write("flow.csx", Flow);
        var before = ScriptCompiler.Compilations;
        await (await HookHost.LoadAsync(Fixtures.InProcess(hooks.Path, hooks.Cache))).DisposeAsync();
        ScriptCompiler.Compilations.Should().Be(before + 1);

        await using var host = await HookHost.LoadAsync(Fixtures.InProcess(hooks.Path, hooks.Cache));

        ScriptCompiler.Compilations.Should().Be(before + 1, "the compiled hook came from the cache");
        (await FirstName(host)).Should().Be("a_cached");
        Directory.GetFiles(hooks.Cache).Should().ContainSingle().Which.Should().EndWith(".hook", "writes go through a temporary file that is moved into place");
    }

    [Fact]
    public async Task A_change_in_a_loaded_file_changes_the_key_and_recompiles()
    {
        using var hooks = new TempHooks();
        hooks.Write("lib/names.csx", "static class Names { public static string Of(string n) => n + \"_one\"; }");
        hooks.Write("flow.csx", Flow);
        await using var host = await HookHost.LoadAsync(Fixtures.InProcess(hooks.Path, hooks.Cache));
        var before = ScriptCompiler.Compilations;

        hooks.Write("lib/names.csx", "static class Names { public static string Of(string n) => n + \"_two\"; }");
        (await host.ReloadAsync()).ChangedFiles.Should().Equal(Path.Combine(hooks.Path, "flow.csx"));

        ScriptCompiler.Compilations.Should().Be(before + 1);
        (await FirstName(host)).Should().Be("a_two");
        Directory.GetFiles(hooks.Cache, "*.hook").Should().HaveCount(2);
    }

    [Theory]
    [InlineData("truncated")]
    [InlineData("flipped")]
    public async Task A_corrupt_cache_entry_is_recompiled(string damage)
    {
        using var hooks = new TempHooks();
        hooks.Write("lib/names.csx", "static class Names { public static string Of(string n) => n + \"_healed\"; }");
        hooks.Write("flow.csx", Flow);
        await (await HookHost.LoadAsync(Fixtures.InProcess(hooks.Path, hooks.Cache))).DisposeAsync();
        var entry = Directory.GetFiles(hooks.Cache, "*.hook").Single();
        var good = File.ReadAllBytes(entry);
        var bytes = (byte[])good.Clone();
        if (damage == "truncated")
        {
            bytes = bytes[..(bytes.Length / 2)];
            File.WriteAllBytes(entry, bytes);
        }
        else
        {
            bytes[bytes.Length / 2] ^= 0xFF;
            File.WriteAllBytes(entry, bytes);
        }

        var before = ScriptCompiler.Compilations;
        await using var host = await HookHost.LoadAsync(Fixtures.InProcess(hooks.Path, hooks.Cache));

        ScriptCompiler.Compilations.Should().Be(before + 1);
        host.Diagnostics.Should().BeEmpty();
        (await FirstName(host)).Should().Be("a_healed");
        File.ReadAllBytes(entry).Should().Equal(good, "the damaged entry was replaced by the (deterministic) recompiled one");
    }
}

public sealed class OrderTests
{
    [Fact]
    public async Task Hooks_of_one_level_are_ordered_ordinally_by_name_scripts_and_plugins_together()
    {
        using var hooks = new TempHooks();
        hooks.Write("b-second.csx", "List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param) => new List<OrchestratorTune>();");
        hooks.Write("a-first.csx", "List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param) => new List<OrchestratorTune>();");
        TestPlugins.Deploy("CpuFlowPlugin", hooks.Path);

        await using var host = await HookHost.LoadAsync(Fixtures.Options(hooks.Path, hooks.Cache));

        host.FlowHooks.Select(h => h.Name).Should().Equal("CpuFlowPlugin.dll:CpuFlowPlugin.CpuFlows", "a-first.csx", "b-second.csx");
    }

    [Fact]
    public async Task A_missing_hooks_folder_loads_no_hooks_and_says_so()
    {
        var missing = Path.Combine(Path.GetTempPath(), "etlfunnel-no-such-hooks-" + Guid.NewGuid().ToString("N"));

        await using var host = await HookHost.LoadAsync(Fixtures.Options(missing));

        host.FlowHooks.Should().BeEmpty();
        host.PipelineHooks.Should().BeEmpty();
        host.Diagnostics.Should().ContainSingle().Which.ToString().Should().Be(
            $"{missing}(0,0): warning EF0004: the hooks folder does not exist; no hooks are loaded (create it, or pass another folder)");
    }
}
