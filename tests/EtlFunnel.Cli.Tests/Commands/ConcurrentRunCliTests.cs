using EtlFunnel.Cli.Tests.Support;
using EtlFunnel.Orchestration.Tests.Support;

namespace EtlFunnel.Cli.Tests.Commands;

/// <summary>One writer per checkpoint folder, seen from the command line.</summary>
[Collection(SmallShopCollection.Name)]
public sealed class ConcurrentRunCliTests
{
    private readonly SmallShopDatabase _db;
    private readonly string _root = Directory.CreateTempSubdirectory("etlfunnel-concurrent-").FullName;

    public ConcurrentRunCliTests(SmallShopDatabase db) => _db = db;

    [Fact]
    public async Task A_second_concurrent_run_on_the_same_checkpoint_folder_is_refused_with_a_clear_error_and_moves_no_data()
    {
        var state = Directory.CreateDirectory(Path.Combine(_root, "state")).FullName;
        var output = Path.Combine(_root, "out");
        var config = CliRunner.WriteConfig($$"""
            state: {{state}}
            flows:
              - name: shop
                source: {postgres: "{{_db.ConnectionString}}"}
                destination: {files: {{output}}}
                pipelines:
                  - schema: shop
                    table: customers
            """);
        string[] args = ["run", "--config", config, "--machine", CliRunner.Region("eu"), "--hooks", CliRunner.HooksDir];

        CliResult refused;
        // What the first run holds while it runs: the folder's lock file, exclusively (the same OS lock another process would hold).
        await using (new FileStream(Path.Combine(state, ".lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None))
        {
            refused = await CliRunner.RunAsync(args, SeedHooks.Both());
        }

        refused.ExitCode.Should().Be(1);
        refused.Err.Should().Contain($"The checkpoint folder {state} is in use by another etlfunnel run or watch").And.Contain("(nothing was synced)");
        Directory.Exists(output).Should().BeFalse("the refused run moved no data");

        var after = await CliRunner.RunAsync(args, SeedHooks.Both());
        after.ExitCode.Should().Be(0, after.Err);
    }
}
