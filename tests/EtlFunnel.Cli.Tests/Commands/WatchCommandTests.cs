using EtlFunnel.Cli.Tests.Support;

namespace EtlFunnel.Cli.Tests.Commands;

/// <summary>What <c>etlfunnel watch</c> refuses before it starts anything.</summary>
public sealed class WatchCommandTests
{
    private static string Config(string flowExtra = "", string top = "") => CliRunner.WriteConfig($$"""
        {{top}}
        flows:
          - name: shop
            source: {postgres: "Host=127.0.0.1;Port=1;Database=none"}
            destination: {files: ./out}
        {{flowExtra}}
            pipelines:
              - schema: public
        """);

    [Fact]
    public async Task A_bad_interval_option_exits_2_and_says_what_to_write()
    {
        var result = await CliRunner.RunAsync(["watch", "--config", Config(), "--interval", "1.5h", "--hooks", CliRunner.HooksDir], SeedHooks());

        result.ExitCode.Should().Be(2);
        result.Err.Should().Contain("--interval").And.Contain("1h30m");
    }

    [Fact]
    public async Task A_bad_flow_interval_in_the_config_names_the_file_line_and_column()
    {
        var result = await CliRunner.RunAsync(["watch", "--config", Config(flowExtra: "    interval: 5x"), "--hooks", CliRunner.HooksDir], SeedHooks());

        result.ExitCode.Should().Be(2);
        result.Err.Should().MatchRegex(@"flows\.yaml\(6,15\): flow 'shop' interval");
    }

    [Fact]
    public async Task A_bad_global_interval_in_the_config_names_the_file_line_and_column()
    {
        var result = await CliRunner.RunAsync(["watch", "--config", Config(top: "interval: 0s"), "--hooks", CliRunner.HooksDir], SeedHooks());

        result.ExitCode.Should().Be(2);
        result.Err.Should().MatchRegex(@"flows\.yaml\(1,11\): interval");
    }

    [Fact]
    public async Task A_status_url_off_loopback_exits_2()
    {
        var result = await CliRunner.RunAsync(["watch", "--config", Config(), "--status-url", "http://0.0.0.0:9464", "--hooks", CliRunner.HooksDir], SeedHooks());

        result.ExitCode.Should().Be(2);
        result.Err.Should().Contain("--status-url");
    }

    private static Orchestration.Tests.Support.TestHooks SeedHooks() => Orchestration.Tests.Support.SeedHooks.None();
}
