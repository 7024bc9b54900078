using EtlFunnel.Cli.Tests.Support;
using EtlFunnel.Orchestration.Tests.Support;

namespace EtlFunnel.Cli.Tests.Commands;

/// <summary>Ctrl-C during <c>etlfunnel run</c> on the quickstart data (1.58M rows, several seconds), then the resumed run.</summary>
[Collection(QuickstartCollection.Name)]
public sealed class RunInterruptTests
{
    private readonly QuickstartDatabase _db;

    public RunInterruptTests(QuickstartDatabase db) => _db = db;

    [Fact]
    public async Task An_interrupted_run_exits_130_saying_run_again_and_the_next_run_completes_every_row_once()
    {
        var root = Directory.CreateTempSubdirectory("etlfunnel-interrupt-").FullName;
        var config = CliRunner.WriteConfig($$"""
            state: {{Path.Combine(root, "state")}}
            flows:
              - name: shop
                source: {postgres: "{{_db.ConnectionString}}"}
                destination: {files: {{Path.Combine(root, "out")}}}
                pipelines:
                  - schema: sales
                    table: orders
            """);
        string[] args = ["run", "--config", config, "--hooks", CliRunner.HooksDir, "--machine", CliRunner.Region("eu")];

        // Ctrl-C arrives as the token; the whole run needs several seconds, so this lands in planning or mid-sync.
        using var ctrlC = new CancellationTokenSource(TimeSpan.FromSeconds(1));
        var interrupted = await CliRunner.RunAsync(args, new TestLoadedHooks(SeedHooks.Both()), cancellationToken: ctrlC.Token);

        interrupted.ExitCode.Should().Be(130, interrupted.Err);
        interrupted.Err.Should().Contain("run again");

        var resumed = await CliRunner.RunAsync(args, SeedHooks.Both());

        resumed.ExitCode.Should().Be(0, resumed.Err);
        var sources = Directory.GetFiles(Path.Combine(root, "out", "sales_orders"), "*.ndjson").Sum(f => File.ReadLines(f).Count()) / 2;
        sources.Should().Be(1_200_000, "every row of sales.orders is in the output exactly once after the resume");
    }
}
