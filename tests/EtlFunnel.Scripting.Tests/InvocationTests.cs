using EtlFunnel.Scripting.Tests.Support;

namespace EtlFunnel.Scripting.Tests;

/// <summary>Loads the Runtime fixture folder once, with a short budget so runaway hooks are stopped quickly.</summary>
public sealed class RuntimeFixture : IAsyncLifetime
{
    public HookHost Host { get; private set; } = null!;

    public async Task InitializeAsync()
        => Host = await HookHost.LoadAsync(Fixtures.Options(Fixtures.Folder("Runtime")) with { TimeBudget = TimeSpan.FromMilliseconds(300) });

    public async Task DisposeAsync() => await Host.DisposeAsync();

    public IOrchestrationHook Flow(string name) => Host.FlowHooks.Single(h => h.Name == name);

    public static string File(string name) => Path.Combine(Fixtures.Folder("Runtime"), name);
}

public sealed class InvocationTests(RuntimeFixture fixture) : IClassFixture<RuntimeFixture>
{
    [Fact]
    public void The_runtime_fixtures_all_load()
        => fixture.Host.Diagnostics.Should().BeEmpty();

    [Fact]
    public async Task An_infinite_loop_is_stopped_within_its_budget_at_its_line_and_the_host_keeps_working()
    {
        var act = () => fixture.Flow("infinite-loop.csx").InvokeAsync(Props.Of(1, Props.Entity("a")));

        var failure = (await act.Should().ThrowAsync<HookInvocationException>()).Which;
        failure.HookName.Should().Be("infinite-loop.csx");
        failure.File.Should().Be(RuntimeFixture.File("infinite-loop.csx"));
        // Line 5 is the loop's back-edge check; on a loaded machine the budget can run out before the hook's
        // body starts, and then the method-entry check on line 3 stops it. Both are this hook's own lines.
        failure.Line.Should().BeOneOf(3, 5);
        failure.Message.Should().Contain("ran past its time budget of 0.3 s").And.NotContain("abandoned");

        (await fixture.Flow("both-levels.csx").InvokeAsync(Props.Of(1, Props.Entity("a")))).Should().ContainSingle();
    }

    [Fact]
    public async Task A_loop_that_swallows_every_exception_is_still_stopped()
    {
        var act = () => fixture.Flow("swallow.csx").InvokeAsync(Props.Of(1, Props.Entity("a")));

        (await act.Should().ThrowAsync<HookInvocationException>()).Which.Message.Should().Contain("time budget");
    }

    [Fact]
    public async Task An_endless_lazy_result_is_stopped_while_it_is_enumerated()
    {
        var act = () => fixture.Flow("lazy-forever.csx").InvokeAsync(Props.Of(1, Props.Entity("a")));

        var failure = (await act.Should().ThrowAsync<HookInvocationException>()).Which;
        failure.Message.Should().Contain("time budget");
        failure.Line.Should().BeOneOf(5, 6, 7);
    }

    [Fact]
    public async Task Unbounded_recursion_is_reported_instead_of_crashing_the_process()
    {
        var act = () => fixture.Flow("recursion.csx").InvokeAsync(Props.Of(1, Props.Entity("a")));

        var failure = (await act.Should().ThrowAsync<HookInvocationException>()).Which;
        failure.InnerException.Should().BeOfType<HookWorkerException>().Which.TypeName.Should().Be(typeof(InsufficientExecutionStackException).FullName, "the exception stays in the worker; its type and message come back");
        failure.File.Should().Be(RuntimeFixture.File("recursion.csx"));
        failure.Line.Should().Be(2);
    }

    [Fact]
    public async Task A_throwing_hook_reports_its_file_and_line()
    {
        var act = () => fixture.Flow("throws.csx").InvokeAsync(Props.Of(1, Props.Entity("catalog")));

        var failure = (await act.Should().ThrowAsync<HookInvocationException>()).Which;
        failure.File.Should().Be(RuntimeFixture.File("throws.csx"));
        failure.Line.Should().Be(6);
        failure.InnerException.Should().BeOfType<HookWorkerException>().Which.TypeName.Should().Be(typeof(InvalidOperationException).FullName);
        failure.InnerException!.Message.Should().Be("no stats for catalog");
        failure.Message.Should().Be($"Hook 'throws.csx' threw InvalidOperationException at {RuntimeFixture.File("throws.csx")}(6): no stats for catalog");
    }

    [Fact]
    public async Task A_throw_inside_a_loaded_helper_reports_the_helpers_file_and_line()
    {
        using var hooks = new TempHooks();
        var helper = hooks.Write("lib/guard.csx", "// helper\nstatic class Guard\n{\n    public static void Fail(string why) => throw new InvalidOperationException(why);\n}\n");
        hooks.Write("flow.csx", "#load \"lib/guard.csx\"\nList<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param)\n{\n    Guard.Fail(\"no\");\n    return null;\n}\n");
        await using var host = await HookHost.LoadAsync(Fixtures.Options(hooks.Path, hooks.Cache));

        var act = () => host.FlowHooks.Single().InvokeAsync(Props.Of(1, Props.Entity("a")));

        var failure = (await act.Should().ThrowAsync<HookInvocationException>()).Which;
        failure.File.Should().Be(helper);
        failure.Line.Should().Be(4);
    }

    [Fact]
    public async Task A_null_result_is_reported()
    {
        var act = () => fixture.Flow("returns-null.csx").InvokeAsync(Props.Of(1, Props.Entity("a")));

        (await act.Should().ThrowAsync<HookInvocationException>()).Which.Message.Should().Contain("returned null");
    }

    [Fact]
    public async Task The_caller_cancelling_is_a_cancellation_not_a_hook_failure()
    {
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();

        var act = () => fixture.Flow("infinite-loop.csx").InvokeAsync(Props.Of(1, Props.Entity("a")), cancelled.Token);

        await act.Should().ThrowAsync<OperationCanceledException>();
    }
}
