using EtlFunnel.Service;

namespace EtlFunnel.Service.Tests;

public sealed class IntervalTests
{
    [Theory]
    [InlineData("30s", 30)]
    [InlineData("5m", 300)]
    [InlineData("1h", 3600)]
    [InlineData("1h30m", 5400)]
    [InlineData("1h30m15s", 5415)]
    [InlineData("2m30s", 150)]
    [InlineData(" 90s ", 90)]
    [InlineData("1H", 3600)]
    public void Valid_intervals_parse_to_their_duration(string text, int seconds)
    {
        Interval.Parse(text, "--interval").Should().Be(TimeSpan.FromSeconds(seconds));
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("30", "has no unit")]
    [InlineData("5x", "unknown unit 'x'")]
    [InlineData("m5", "expected a number at position 1")]
    [InlineData("5m1h", "repeated or out of order")]
    [InlineData("1m1m", "repeated or out of order")]
    [InlineData("0s", "longer than zero")]
    [InlineData("-5m", "expected a number")]
    [InlineData("1.5h", "fractions are not accepted, combine units instead (1h30m, not 1.5h)")]
    [InlineData("9999999999h", "too large")]
    public void Invalid_intervals_are_refused_with_a_message_that_says_what_to_write(string text, string reason)
    {
        var act = () => Interval.Parse(text, "flows.yaml(7,15)");

        var message = act.Should().Throw<FormatException>().Which.Message;
        message.Should().StartWith("flows.yaml(7,15): ").And.Contain(reason);
        if (reason != "too large")
        {
            message.Should().Contain("e.g. 30s, 5m, 1h, 1h30m", "the message shows the accepted forms");
        }
    }

    [Theory]
    [InlineData(30, "30s")]
    [InlineData(5400, "1h30m")]
    [InlineData(3600, "1h")]
    [InlineData(3661, "1h1m1s")]
    public void Format_writes_what_parse_reads(int seconds, string text)
    {
        Interval.Format(TimeSpan.FromSeconds(seconds)).Should().Be(text);
        Interval.Parse(text, "x").Should().Be(TimeSpan.FromSeconds(seconds));
    }
}
