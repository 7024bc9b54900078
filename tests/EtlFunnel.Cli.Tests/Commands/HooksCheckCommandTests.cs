using EtlFunnel.Cli.Tests.Support;
using EtlFunnel.Orchestration.Tests.Support;
using EtlFunnel.Scripting;

namespace EtlFunnel.Cli.Tests.Commands;

public sealed class HooksCheckCommandTests
{
    [Fact]
    public async Task Every_diagnostic_is_printed_as_file_line_col_and_errors_exit_1()
    {
        var hooks = new TestLoadedHooks(new TestHooks(),
            new HookDiagnostic("hooks/a.csx", 3, 9, "error", "EF0002", "'System.IO.File' is not allowed in hooks"),
            new HookDiagnostic("hooks/b.csx", 7, 1, "error", "CS1002", "; expected"));
        var result = await CliRunner.RunAsync(["hooks", "check", "--hooks", CliRunner.HooksDir], hooks);

        result.ExitCode.Should().Be(1);
        result.Err.Should().Contain("hooks/a.csx(3,9): error EF0002: 'System.IO.File' is not allowed in hooks")
            .And.Contain("hooks/b.csx(7,1): error CS1002: ; expected")
            .And.Contain("2 errors in");
    }

    [Fact]
    public async Task A_clean_folder_lists_its_hooks_and_exits_0()
    {
        var result = await CliRunner.RunAsync(["hooks", "check", "--hooks", CliRunner.HooksDir], SeedHooks.Both());

        result.ExitCode.Should().Be(0, result.Err);
        result.Out.Should().Contain("flow-by-cores.csx").And.Contain("pipeline-by-rows.csx").And.Contain("1 flow hook(s), 1 pipeline hook(s)");
    }

    [Fact]
    public async Task A_missing_folder_exits_2()
    {
        var result = await CliRunner.RunAsync(["hooks", "check", "--hooks", "/no/such/folder"], SeedHooks.Both());

        result.ExitCode.Should().Be(2);
        result.Err.Should().Contain("the hooks folder '/no/such/folder' does not exist");
    }
}
