using System.Runtime.CompilerServices;
using EtlFunnel.Execution.Models;
using EtlFunnel.Scripting.Tests.Support;

namespace EtlFunnel.Scripting.Tests;

public sealed class ReloadTests
{
    private static string Hook(string tag) => $$"""
        // version {{tag}}
        List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param)
            => param.Entity.Select(e => new OrchestratorTune { ParentEntityName = e.Name, NewEntityName = e.Name + "_{{tag}}" }).ToList();
        """;

    private static async Task<string> FirstName(HookHost host)
        => (await host.FlowHooks.Single().InvokeAsync(Props.Of(1, Props.Entity("a")))).Single().NewEntityName;

    [Fact]
    public async Task Reload_of_a_broken_hook_keeps_the_last_good_version_and_a_fix_activates()
    {
        using var hooks = new TempHooks();
        var file = hooks.Write("flow.csx", Hook("good"));
        await using var host = await HookHost.LoadAsync(Fixtures.Options(hooks.Path, hooks.Cache));

        hooks.Write("flow.csx", "List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param)\n{\n    return undefinedThing;\n}\n");
        var broken = await host.ReloadAsync();

        broken.Succeeded.Should().BeFalse();
        broken.ChangedFiles.Should().Equal(file);
        broken.Diagnostics.Select(d => d.ToString()).Should().Equal($"{file}(3,12): error CS0103: The name 'undefinedThing' does not exist in the current context");
        host.Diagnostics.Should().Equal(broken.Diagnostics);
        (await FirstName(host)).Should().Be("a_good");

        var unchanged = await host.ReloadAsync();
        unchanged.ChangedFiles.Should().BeEmpty("nothing changed since, and the broken version is not recompiled");
        unchanged.Diagnostics.Should().Equal(broken.Diagnostics, "the file is still broken");

        hooks.Write("flow.csx", Hook("fixed"));
        var fixedReload = await host.ReloadAsync();

        fixedReload.Succeeded.Should().BeTrue();
        host.Diagnostics.Should().BeEmpty();
        (await FirstName(host)).Should().Be("a_fixed");
    }

    [Fact]
    public async Task Watch_mode_picks_up_edits_rename_and_replace_saves_additions_and_deletions()
    {
        using var hooks = new TempHooks();
        var flow = hooks.Write("flow.csx", Hook("one"));
        await using var host = await HookHost.LoadAsync(Fixtures.Options(hooks.Path, hooks.Cache) with { Watch = true, ReloadDebounce = TimeSpan.FromMilliseconds(50) });
        var reloads = new System.Collections.Concurrent.BlockingCollection<HookReloadedEventArgs>();
        host.Reloaded += (_, e) => reloads.Add(e);

        async Task<HookReloadedEventArgs> Next(Func<HookReloadedEventArgs, bool> until)
        {
            while (true)
            {
                var next = await Task.Run(() => reloads.TryTake(out var e, TimeSpan.FromSeconds(60)) ? e : throw new TimeoutException("no reload event within 60 s"));
                if (until(next))
                {
                    return next;
                }
            }
        }

        File.WriteAllText(flow, Hook("two"));
        (await Next(e => e.ChangedFiles.Contains(flow) && e.Succeeded)).Diagnostics.Should().BeEmpty();
        (await FirstName(host)).Should().Be("a_two");

        // Editors that save by writing a temporary file and renaming it over the original.
        var temp = Path.Combine(hooks.Path, "flow.csx.tmp~");
        File.WriteAllText(temp, Hook("three"));
        File.Move(temp, flow, overwrite: true);
        await Next(_ => host.FlowHooks.Count == 1 && FirstName(host).Result == "a_three");

        var second = hooks.Write("zz-second.csx", Hook("second"));
        await Next(_ => host.FlowHooks.Count == 2);
        host.FlowHooks.Select(h => h.Name).Should().Equal("flow.csx", "zz-second.csx");

        File.Delete(second);
        await Next(_ => host.FlowHooks.Count == 1);
        host.FlowHooks.Single().Name.Should().Be("flow.csx");
    }

    [Fact]
    public async Task An_in_flight_call_finishes_on_the_version_it_started_with_which_is_then_unloaded()
    {
        using var hooks = new TempHooks();
        hooks.Write("flow.csx", """
            async Task<List<OrchestratorTune>> GetFlowOrchestration(OrchestratorProps param)
            {
                var stats = await param.Entity[0].SourceDBConn.GetTableStatsAsync(param.CancellationToken);
                return new List<OrchestratorTune> { new OrchestratorTune { ParentEntityName = "a", NewEntityName = "old_" + stats.TotalRows } };
            }
            """);
        await using var host = await HookHost.LoadAsync(Fixtures.InProcess(hooks.Path, hooks.Cache));

        var (oldVersion, oldContext) = await ReloadDuringACall(host, hooks);

        // The call's completion ran this test's continuation inline on the hook's thread; leave that stack first.
        await Task.Yield();
        oldVersion.IsUnloaded.Should().BeTrue("the old version's context is unloaded once its last call has finished");
        WaitUntilCollected([oldContext]).Should().Be(0);
    }

    // Out of line so the test's own (debug-built) state machine does not keep the old hook reachable.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static async Task<(Loading.HookFileVersion, WeakReference)> ReloadDuringACall(HookHost host, TempHooks hooks)
    {
        var oldVersion = ((Loading.GuardedHook)host.FlowHooks.Single()).Version;
        var oldContext = host.ActiveScriptContexts.Single();
        var stats = new TaskCompletionSource<TableStats>(TaskCreationOptions.RunContinuationsAsynchronously);
        var entity = new OrchestratorEntityDef { Name = "a", SourceDBConn = new PendingDatabaseEngine(stats.Task), DestDBConn = new StaticDatabaseEngine(new TableStats()) };

        var inFlight = host.FlowHooks.Single().InvokeAsync(Props.Of(1, entity));
        hooks.Write("flow.csx", Hook("new"));
        (await host.ReloadAsync()).Succeeded.Should().BeTrue();
        (await FirstName(host)).Should().Be("a_new");
        oldVersion.IsUnloaded.Should().BeFalse("a call is still running on it");
        stats.SetResult(new TableStats { TotalRows = 42 });

        (await inFlight).Single().NewEntityName.Should().Be("old_42");
        return (oldVersion, oldContext);
    }

    [Fact]
    public async Task Two_hundred_reload_cycles_leave_no_old_load_context_alive()
    {
        using var hooks = new TempHooks();
        var file = hooks.Write("flow.csx", Hook("even"));
        await using var host = await HookHost.LoadAsync(Fixtures.InProcess(hooks.Path, hooks.Cache));
        var contexts = new List<WeakReference>();

        for (var cycle = 1; cycle <= 200; cycle++)
        {
            // Two alternating sources: after the first two compiles every reload is a cache hit in a fresh context.
            File.WriteAllText(file, Hook(cycle % 2 == 0 ? "even" : "odd"));
            await ReloadAndInvoke(host, contexts, cycle % 2 == 0 ? "a_even" : "a_odd");
        }

        var current = host.ActiveScriptContexts.Single();
        contexts.Should().HaveCount(200);
        WaitUntilCollected(contexts.Where(c => c.Target != current.Target).ToList()).Should().Be(0);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static async Task ReloadAndInvoke(HookHost host, List<WeakReference> contexts, string expected)
    {
        (await host.ReloadAsync()).Succeeded.Should().BeTrue();
        contexts.Add(host.ActiveScriptContexts.Single());
        (await FirstName(host)).Should().Be(expected);
    }

    /// <summary>Collects until the contexts are gone (or gives up); returns how many are still alive.</summary>
    private static int WaitUntilCollected(IReadOnlyCollection<WeakReference> references)
    {
        for (var attempt = 0; attempt < 50 && references.Any(r => r.IsAlive); attempt++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            Thread.Sleep(20);
        }

        return references.Count(r => r.IsAlive);
    }

    private sealed class PendingDatabaseEngine(Task<TableStats> stats) : IDatabaseEngine
    {
        public string Kind => "postgres";

        public string Name => "pending";

        public TableStats GetTableStats() => stats.GetAwaiter().GetResult();

        public Task<TableStats> GetTableStatsAsync(CancellationToken cancellationToken = default) => stats.WaitAsync(cancellationToken);

        public ConnectionStats MeasureConnection() => new();

        public Task<ConnectionStats> MeasureConnectionAsync(CancellationToken cancellationToken = default) => Task.FromResult(new ConnectionStats());
    }
}
