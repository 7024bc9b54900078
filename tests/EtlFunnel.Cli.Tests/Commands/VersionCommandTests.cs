using EtlFunnel.Cli.Tests.Support;

namespace EtlFunnel.Cli.Tests.Commands;

public sealed class VersionCommandTests
{
    [Fact]
    public async Task Version_prints_the_package_version_and_exits_0()
    {
        var result = await CliRunner.RunAsync(["--version"]);

        result.ExitCode.Should().Be(0, result.Err);
        result.Out.Trim().Should().MatchRegex(@"^0\.1\.0(\+[0-9a-f]+)?$");
    }
}
