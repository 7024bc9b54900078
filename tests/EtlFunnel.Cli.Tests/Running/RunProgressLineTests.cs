using EtlFunnel.Cli.Running;
using EtlFunnel.Runtime.Jobs;

namespace EtlFunnel.Cli.Tests.Running;

/// <summary>The progress line of <c>etlfunnel run</c>: queued flows, resumed rows apart from rows read now, and the width of piped output.</summary>
public sealed class RunProgressLineTests
{
    [Fact]
    public void A_flow_whose_replicas_have_not_started_shows_as_queued_not_as_running_at_zero()
    {
        var line = RunExecution.Line(new FlowProgress("shop", 0, 0, 20_000, 0, 8), seconds: 3, withEta: true);

        line.Should().Be("shop: queued (8 replicas)");
    }

    [Fact]
    public void Rows_resumed_from_the_checkpoint_are_shown_apart_and_the_rate_counts_only_rows_read_now()
    {
        var line = RunExecution.Line(new FlowProgress("shop", 20_000, 20_000, 40_000, 1, 4) { Resumed = 12_000, ReplicasStarted = 4 }, seconds: 2, withEta: false);

        line.Should().Be("shop: 12,000 resumed + 8,000 read, 4,000 rows/s, 1/4 replicas done");
    }

    [Fact]
    public void Replicas_not_yet_started_are_counted_as_queued_beside_the_running_ones()
    {
        var line = RunExecution.Line(new FlowProgress("shop", 5_000, 5_000, 20_000, 0, 8) { ReplicasStarted = 3 }, seconds: 5, withEta: true);

        line.Should().Be("shop: 5,000 rows, 1,000 rows/s, 0/8 replicas done, 5 queued, 25% of ~20,000, ETA 00:00:15");
    }

    [Theory]
    [InlineData("132", 132)]
    [InlineData(null, 240)]
    [InlineData("wide", 240)]
    [InlineData("0", 240)]
    public void Piped_output_takes_its_width_from_COLUMNS(string? columns, int width)
    {
        CliApp.PipedWidth(n => n == "COLUMNS" ? columns : null).Should().Be(width);
    }
}
