using EtlFunnel.Scripting.Loading;
using EtlFunnel.Scripting.Tests.Support;

namespace EtlFunnel.Scripting.Tests;

public sealed class NativeMemoryTests
{
    private static string Hook(string tag) => $$"""
        // version {{tag}}
        List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param)
            => param.Entity.Select(e => new OrchestratorTune { ParentEntityName = e.Name, NewEntityName = e.Name + "_{{tag}}" }).ToList();
        """;

    [Fact]
    public void Trimming_is_available_wherever_the_process_runs_on_glibc()
    {
        // Debian (the development and CI machines) runs on glibc: were this false there, the trim would silently do nothing.
        var onGlibc = OperatingSystem.IsLinux() && File.ReadLines("/proc/self/maps").Any(l => l.EndsWith("/libc.so.6", StringComparison.Ordinal));
        NativeHeap.CanTrim.Should().Be(onGlibc);
    }

    [Fact]
    public async Task A_reload_that_compiles_returns_freed_native_memory_and_one_that_does_not_compile_leaves_it()
    {
        using var hooks = new TempHooks();
        hooks.Write("flow.csx", Hook("one"));
        await using var host = await HookHost.LoadAsync(Fixtures.InProcess(hooks.Path, hooks.Cache));
        var expected = NativeHeap.CanTrim ? 1 : 0;
        host.NativeTrims.Should().Be(expected, "the first load compiled");

        (await host.ReloadAsync()).ChangedFiles.Should().BeEmpty();
        host.NativeTrims.Should().Be(expected, "nothing changed, nothing compiled");

        hooks.Write("flow.csx", Hook("two"));
        (await host.ReloadAsync()).Succeeded.Should().BeTrue();
        host.NativeTrims.Should().Be(2 * expected, "the edit compiled");

        hooks.Write("flow.csx", Hook("one"));
        (await host.ReloadAsync()).Succeeded.Should().BeTrue();
        host.NativeTrims.Should().Be(2 * expected, "going back to the first version is a cache hit: no compile");
    }

    [Fact]
    public async Task With_trimming_off_a_compiling_reload_never_trims()
    {
        using var hooks = new TempHooks();
        hooks.Write("flow.csx", Hook("a"));
        await using var host = await HookHost.LoadAsync(Fixtures.InProcess(hooks.Path, hooks.Cache) with { TrimNativeMemory = false });
        hooks.Write("flow.csx", Hook("b"));
        (await host.ReloadAsync()).Succeeded.Should().BeTrue();

        host.NativeTrims.Should().Be(0);
    }
}
