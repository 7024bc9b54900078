using EtlFunnel.Service;
using EtlFunnel.Service.Tests.Support;

namespace EtlFunnel.Service.Tests;

/// <summary>The status page in a real headless chromium: scripts run, fetch the JSON endpoints and render.</summary>
public sealed class StatusPageBrowserTests
{
    private const string Markup = "hooks/vendor.csx(2,3): error EF0201: '<b>injected</b>' is not allowed";

    private const string Diagnostic = "hooks/flow-scale.csx(7,21): error EF0101: The name 'Corez' does not exist in the current context";

    [Fact]
    public async Task The_page_shows_the_plan_and_the_last_runs_and_after_a_bad_edit_the_broken_hook_diagnostic()
    {
        var time = new ManualTimeProvider();
        var state = new ServiceState(time);
        state.SetHooksOk();
        state.SetPlan(SamplePlans.Plan(("orders_flow", 2, ["orders", "order_lines"]), ("customers_flow", 1, ["customers"])), ["orders_flow: + orders_flow#1"]);
        var t = time.GetUtcNow();
        state.RecordRun("customers_flow", t, t.AddSeconds(2), new FlowRunResult(RunOutcome.Succeeded, 4321, 4321, 0, 0), 1);
        await using var server = await StatusServer.StartAsync(new Uri("http://127.0.0.1:0"), state, CancellationToken.None);

        var dom = await HeadlessChromium.DumpDomAsync(server.BoundUrl);

        dom.Should().Contain("flow orders_flow#0 (replica of orders_flow)")
            .And.Contain("flow orders_flow#1 (replica of orders_flow)")
            .And.Contain("flow customers_flow")
            .And.Contain("orders_flow#0/order_lines")
            .And.Contain("public.order_lines")
            .And.Contain("customers_flow/customers")
            .And.Contain("4321", "the last run is listed")
            .And.Contain("orders_flow: + orders_flow#1", "the plan diff is listed")
            .And.Contain(">healthy<");
        dom.Should().NotContain(Diagnostic);

        state.SetHooksBroken([Diagnostic, Markup]);
        var brokenDom = await HeadlessChromium.DumpDomAsync(server.BoundUrl);

        brokenDom.Should().Contain(">unhealthy<")
            .And.Contain("<pre class=\"diag\" id=\"hook-diagnostics\">" + Diagnostic + "\nhooks/vendor.csx(2,3): error EF0201: '&lt;b&gt;injected&lt;/b&gt;' is not allowed</pre>")
            .And.Contain("running on the last good plan")
            .And.Contain("flow orders_flow#0", "the last good plan is still shown")
            .And.NotContain("<b>injected</b>", "text from hooks never becomes markup");
    }
}
