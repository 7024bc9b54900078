using EtlFunnel.Cli.Tests.Support;
using EtlFunnel.Orchestration.Plans;
using EtlFunnel.Orchestration.Tests.Support;

namespace EtlFunnel.Cli.Tests.Commands;

/// <summary>The shipped .csx hooks through the real hook host (compiled by Roslyn); the same scenarios run above with hand-written mirrors.</summary>
[Collection(QuickstartCollection.Name)]
public sealed class RealHookHostTests
{
    private readonly Dictionary<string, string> _env;

    public RealHookHostTests(QuickstartDatabase db) => _env = new() { ["QUICKSTART_PG"] = db.ConnectionString };

    [Fact]
    public async Task The_sample_hooks_pass_hooks_check()
    {
        var result = await CliRunner.RunAsync(["hooks", "check", "--hooks", Repo.Path("hooks")]);

        result.ExitCode.Should().Be(0, result.Err);
        result.Out.Should().Contain("1 flow hook(s), 1 pipeline hook(s)");
    }

    [Fact]
    public async Task A_broken_hook_is_reported_at_file_line_col_and_exits_1()
    {
        var dir = Directory.CreateTempSubdirectory("etlfunnel-broken-").FullName;
        await File.WriteAllTextAsync(Path.Combine(dir, "broken.csx"), "using EtlFunnel.Execution.Models;\nList<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param)\n{\n    return nope;\n}\n");
        var result = await CliRunner.RunAsync(["hooks", "check", "--hooks", dir]);

        result.ExitCode.Should().Be(1);
        result.Err.Should().MatchRegex(@"broken\.csx\(4,12\): error CS0103: ");
    }

    [Fact]
    public async Task Quickstart_plans_with_the_shipped_hooks_differ_per_region()
    {
        var counts = new Dictionary<string, int>();
        foreach (var region in new[] { "us", "eu", "apac" })
        {
            var result = await CliRunner.RunAsync(["plan", "--config", CliRunner.QuickstartConfig, "--machine", CliRunner.Region(region), "--format", "json"], env: _env);
            result.ExitCode.Should().Be(0, result.Err);
            var plan = PlanJson.Deserialize(result.Out);
            counts[region] = plan.Flows.Length;
            plan.AllPipelines().Count(x => x.Pipeline.Table.ToString() == "sales.orders").Should().Be(2 * plan.Flows.Count(f => f.Parent == "shop"));
        }

        counts.Should().Equal(new Dictionary<string, int> { ["us"] = 64, ["eu"] = 16, ["apac"] = 32 });
    }

    [Fact]
    public async Task Hooks_test_with_a_config_plans_the_discovered_tables_and_runs_the_shipped_cases()
    {
        var result = await CliRunner.RunAsync(["hooks", "test", "--config", CliRunner.QuickstartConfig, "--hooks", Repo.Path("hooks"), "--machine", CliRunner.Region("eu")], env: _env);

        result.ExitCode.Should().Be(0, result.Out + result.Err);
        result.Out.Should().Contain("Plan for EU / eu-west: 8 cores").And.Contain("sales.orders_partition_1").And.Contain("Test cases: 5 passed, 0 failed");
    }

    [Fact]
    public async Task Hooks_check_verbose_names_the_isolation_layers_of_the_worker()
    {
        var result = await CliRunner.RunAsync(["hooks", "check", "-v", "--hooks", Repo.Path("hooks")]);

        result.ExitCode.Should().Be(0, result.Err);
        result.Out.Should().Contain("isolation on  worker: hooks run in process").And.Contain("isolation on  network: own network namespace")
            .And.Contain("isolation on  filesystem: minimal read-only root").And.Contain("isolation on  rlimits: RLIMIT_AS=");
    }

    [Fact]
    public async Task Hooks_check_never_runs_a_module_initializer_even_one_the_policy_lets_through()
    {
        // The policy refuses [ModuleInitializer] at its line; checking compiles only, so nothing of the hook runs.
        var dir = Directory.CreateTempSubdirectory("etlfunnel-modinit-").FullName;
        await File.WriteAllTextAsync(Path.Combine(dir, "init.csx"),
            "using System.Runtime.CompilerServices;\nstatic class I { [ModuleInitializer] public static void Run() => System.Console.WriteLine(\"MODULE INITIALIZER RAN\"); }\n" +
            "List<EtlFunnel.Execution.Models.OrchestratorTune> GetFlowOrchestration(EtlFunnel.Execution.Models.OrchestratorProps param) => new();\n");
        var result = await CliRunner.RunAsync(["hooks", "check", "--hooks", dir]);

        result.ExitCode.Should().Be(1);
        result.Err.Should().MatchRegex(@"init\.csx\(2,\d+\): error EF1021: ").And.NotContain("MODULE INITIALIZER RAN");
    }
}
