using EtlFunnel.Service;

namespace EtlFunnel.Service.Tests;

public sealed class FlowSchedulesTests
{
    [Fact]
    public void A_flow_s_own_interval_wins_over_the_global_one_which_wins_over_the_default()
    {
        var withGlobal = FlowSchedules.Resolve([("orders", "1h30m", "flows.yaml(3,15)"), ("customers", null, "flows.yaml(9,5)")], "30s");
        var withoutGlobal = FlowSchedules.Resolve([("customers", null, "flows.yaml(9,5)")], null);

        withGlobal.Should().Equal(new FlowSchedule("orders", TimeSpan.FromMinutes(90)), new FlowSchedule("customers", TimeSpan.FromSeconds(30)));
        withoutGlobal.Should().Equal(new FlowSchedule("customers", FlowSchedules.DefaultInterval));
    }

    [Fact]
    public void A_bad_interval_names_where_it_was_written()
    {
        var inConfig = () => FlowSchedules.Resolve([("orders", "5 minutes", "flows.yaml(3,15)")], null);
        var onCommandLine = () => FlowSchedules.Resolve([("orders", null, "flows.yaml(3,15)")], "soon");

        inConfig.Should().Throw<FormatException>().WithMessage("flows.yaml(3,15): flow 'orders' interval: invalid interval '5 minutes'*e.g. 30s, 5m, 1h, 1h30m*");
        onCommandLine.Should().Throw<FormatException>().WithMessage("--interval: invalid interval 'soon'*");
    }
}
