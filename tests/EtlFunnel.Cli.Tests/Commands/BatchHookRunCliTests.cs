using EtlFunnel.Cli.Tests.Support;
using EtlFunnel.Testing.Postgres;

namespace EtlFunnel.Cli.Tests.Commands;

/// <summary><c>etlfunnel run</c> with a real <c>.csx</c> termination rule in the hooks folder: the run prints the stop, and the next run resumes.</summary>
public sealed class BatchHookRunCliTests
{
    [Fact]
    public async Task Run_prints_the_replica_a_termination_rule_stopped_exits_3_and_the_next_run_resumes_it_exactly_once()
    {
        var cs = await (await PostgresServer.GetAsync()).CreateDatabaseAsync("batch_hook_run");
        // About 7 rows per block: 16,000 rows are some 2,300 blocks, three checkpointed chunks of 1,024 blocks.
        await PostgresServer.ExecuteAsync(cs, """
            CREATE TABLE items (id int PRIMARY KEY, pad text); INSERT INTO items SELECT g, repeat('x', 1000) FROM generate_series(1, 16000) g;
            ANALYZE;
            """);
        var root = Directory.CreateTempSubdirectory("etlfunnel-batch-run-").FullName;
        var hooks = Path.Combine(root, "hooks");
        Directory.CreateDirectory(hooks);
        var rule = Path.Combine(hooks, "limits.csx");
        await File.WriteAllTextAsync(rule, """
            string AppliesTo => "shop/public.items";
            TerminationRule Termination(PipelineInfo p) => new TerminationRule { MaxRecords = 1 };
            """);
        var config = CliRunner.WriteConfig($"""
            state: {Path.Combine(root, "state")}
            flows:
              - name: shop
                source: {"{"}postgres: "{cs}"{"}"}
                destination: {"{"}files: {Path.Combine(root, "out")}{"}"}
                pipelines:
                  - table: items
            """);
        var wide = new Dictionary<string, string> { ["COLUMNS"] = "2000" };

        var first = await CliRunner.RunAsync(["run", "--config", config, "--hooks", hooks], env: wide);

        first.ExitCode.Should().Be(3, first.Out + first.Err);
        first.Out.Should().MatchRegex(@"Stopped shop/\S+ \(\S+\) by " + System.Text.RegularExpressions.Regex.Escape(rule) + @": termination rule MaxRecords 1 reached \(\d+ rows read in this run\)");
        first.Err.Should().Contain("Stopped by hooks: checkpoints are saved");
        var written = Ids(root);
        written.Should().NotBeEmpty().And.HaveCountLessThan(16000, "the replica stopped after its first checkpoint");

        File.Delete(rule);
        var second = await CliRunner.RunAsync(["run", "--config", config, "--hooks", hooks], env: wide);

        second.ExitCode.Should().Be(0, second.Out + second.Err);
        second.Out.Should().NotContain("Stopped ");
        var ids = Ids(root);
        ids.Should().OnlyHaveUniqueItems().And.BeEquivalentTo(Enumerable.Range(1, 16000), "the resume wrote the rest, nothing twice");
    }

    private static List<int> Ids(string root) => Directory.EnumerateFiles(Path.Combine(root, "out"), "*.ndjson", SearchOption.AllDirectories)
        .SelectMany(File.ReadLines).Where((_, i) => i % 2 == 0)
        .Select(l => int.Parse(System.Text.Json.JsonDocument.Parse(l).RootElement.GetProperty("index").GetProperty("_id").GetString()!, System.Globalization.CultureInfo.InvariantCulture))
        .ToList();
}
