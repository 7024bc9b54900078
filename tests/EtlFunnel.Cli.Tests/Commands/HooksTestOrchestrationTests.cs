using EtlFunnel.Cli.Tests.Support;
using EtlFunnel.Orchestration.Tests.Support;

namespace EtlFunnel.Cli.Tests.Commands;

/// <summary>
/// <c>etlfunnel hooks test</c> without <c>--table</c>: the real hook host plans offline on a machine profile and a stats file,
/// then runs the folder's <c>*.test.csx</c> cases in the worker.
/// </summary>
public sealed class HooksTestOrchestrationTests
{
    private const string Usings = "using EtlFunnel.Execution.Models;\n";

    private static string Stats => Repo.Path("samples", "hook-tests", "stats.yaml");

    private static string Folder(params (string Name, string Text)[] files)
    {
        var dir = Directory.CreateTempSubdirectory("etlfunnel-hooktest-").FullName;
        foreach (var (name, text) in files)
        {
            File.WriteAllText(Path.Combine(dir, name), text);
        }

        return dir;
    }

    [Fact]
    public async Task The_shipped_hooks_plan_the_stats_on_the_EU_machine_and_their_cases_pass()
    {
        var result = await CliRunner.RunAsync(["hooks", "test", "--hooks", Repo.Path("hooks"), "--machine", CliRunner.Region("eu"), "--stats", Stats]);

        result.ExitCode.Should().Be(0, result.Err);
        result.Out.Should().Contain("Plan for EU / eu-west: 8 cores")
            .And.Contain("shop: 8 flow replica(s)")
            .And.Contain("PASS flow-by-cores.test.csx TestOneReplicaPerCore")
            .And.Contain("PASS pipeline-by-rows.test.csx TestBigTablesAreSplitByRows")
            .And.Contain("Test cases: 5 passed, 0 failed (2 file(s)");
        // sales.events (40M rows) is split in 4 by pipeline-by-rows in each of the 8 flow replicas.
        result.Out.Should().Contain("sales.events_partition_3");
    }

    [Fact]
    public async Task A_failing_check_is_reported_at_its_file_line_and_column_and_exits_1()
    {
        var dir = Folder(
            ("cores.csx", Usings + "List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps p)\n    => p.Entity.Select(e => new OrchestratorTune { ParentEntityName = e.Name, NewEntityName = e.Name }).ToList();\n"),
            ("cores.test.csx", "#load \"cores.csx\"\n\nvoid TestOneReplicaEach()\n{\n    Check.Count(1, GetFlowOrchestration(Props.Flow().Entity(\"a\").Build()));\n}\n\nvoid TestTwoReplicas()\n{\n    var tunes = GetFlowOrchestration(Props.Flow().Entity(\"a\").Build());\n    Check.Count(2, tunes, \"two per flow\");\n}\n"));

        var result = await CliRunner.RunAsync(["hooks", "test", "--hooks", dir]);

        result.ExitCode.Should().Be(1, result.Out + result.Err);
        result.Out.Should().Contain("PASS cores.test.csx TestOneReplicaEach").And.Contain("FAIL cores.test.csx TestTwoReplicas").And.Contain("1 passed, 1 failed");
        result.Err.Should().MatchRegex(@"cores\.test\.csx\(11,5\): FAIL cores\.test\.csx TestTwoReplicas: expected 2 item\(s\) but got 1: two per flow");
    }

    [Fact]
    public async Task A_hook_that_throws_in_a_case_fails_it_at_the_hooks_own_line()
    {
        var dir = Folder(
            ("throws.csx", Usings + "List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps p)\n{\n    if (p.Machine.LogicalCores > 4)\n        throw new InvalidOperationException(\"too many cores\");\n    return new();\n}\n"),
            ("throws.test.csx", "#load \"throws.csx\"\nGetFlowOrchestration(Props.Flow(Machines.With(cores: 16)).Build());\n"));

        var result = await CliRunner.RunAsync(["hooks", "test", "--hooks", dir]);

        result.ExitCode.Should().Be(1, result.Out + result.Err);
        result.Out.Should().Contain("FAIL throws.test.csx (top-level)");
        result.Err.Should().MatchRegex(@"throws\.csx\(5,9\): FAIL throws\.test\.csx \(top-level\): System\.InvalidOperationException: too many cores");
    }

    [Fact]
    public async Task A_hook_that_throws_on_every_input_passes_hooks_check_but_fails_hooks_test()
    {
        var dir = Folder(
            ("always.csx", Usings + "List<OrchestratorTune> GetPipelineOrchestration(OrchestratorProps p)\n{\n    var rows = p.Entity[0].SourceDBConn.GetTableStats().TotalRows;\n    throw new InvalidOperationException($\"cannot split {rows} rows\");\n}\n"),
            // A test file #loads the hook: it must neither be loaded as a hook nor turn the hook into a helper.
            ("always.test.csx", "#load \"always.csx\"\nvoid TestNothing() { }\n"));

        var check = await CliRunner.RunAsync(["hooks", "check", "--hooks", dir]);
        check.ExitCode.Should().Be(0, check.Err);
        check.Out.Should().Contain("0 flow hook(s), 1 pipeline hook(s)").And.NotContain("always.test.csx");

        var test = await CliRunner.RunAsync(["hooks", "test", "--hooks", dir, "--machine", CliRunner.Region("eu"), "--stats", Stats]);
        test.ExitCode.Should().Be(1, test.Out + test.Err);
        test.Err.Should().MatchRegex(@"always\.csx\(5\): error: pipeline hook 'always\.csx' failed.*cannot split \d+ rows").And.Contain("fix the hook at the line above");
    }

    [Fact]
    public async Task A_test_file_that_does_not_compile_is_a_failed_case_at_its_line()
    {
        var dir = Folder(("broken.test.csx", "void TestX()\n{\n    Check.Equal(1, nope);\n}\n"));

        var result = await CliRunner.RunAsync(["hooks", "test", "--hooks", dir]);

        result.ExitCode.Should().Be(1, result.Out + result.Err);
        result.Err.Should().MatchRegex(@"broken\.test\.csx\(3,20\): FAIL broken\.test\.csx \(compile\): CS0103: ");
    }

    [Fact]
    public async Task Test_cases_run_in_the_hook_worker_not_in_the_host()
    {
        // The worker starts with an empty environment (docs/hooks.md, isolation layers); this process has a PATH.
        Environment.GetEnvironmentVariable("PATH").Should().NotBeNullOrEmpty();
        var dir = Folder(("where.test.csx", "Check.Equal(null, Environment.GetEnvironmentVariable(\"PATH\"), \"the case runs in the worker\");\n"));

        var result = await CliRunner.RunAsync(["hooks", "test", "--hooks", dir]);

        result.ExitCode.Should().Be(0, result.Out + result.Err);
        result.Out.Should().Contain("PASS where.test.csx (top-level)");
    }

    [Fact]
    public async Task Param_log_lines_reach_the_host_log_on_stderr_with_the_hooks_file_and_line_not_stdout()
    {
        var dir = Folder(("logs.csx", Usings + "List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param)\n{\n    param.Log.Info($\"planning {param.Entity.Count} flows on {param.Machine.LogicalCores} cores\");\n" +
            "    param.Log.Warning(\"no region\");\n    return param.Entity.Select(e => new OrchestratorTune { ParentEntityName = e.Name, NewEntityName = e.Name, ReplicaProps = new Dictionary<string, object> { [\"replica_id\"] = 0, [\"total_replicas\"] = 1 } }).ToList();\n}\n"));

        var result = await CliRunner.RunAsync(["hooks", "test", "--hooks", dir, "--machine", CliRunner.Region("eu"), "--stats", Stats]);

        result.ExitCode.Should().Be(0, result.Out + result.Err);
        result.Err.Should().MatchRegex(@"\[INF\] \S*logs\.csx\(4\): planning 2 flows on 8 cores").And.MatchRegex(@"\[WRN\] \S*logs\.csx\(5\): no region");
        result.Out.Should().NotContain("planning 2 flows");
    }

    [Fact]
    public async Task Param_log_in_a_test_case_can_be_recorded_and_asserted()
    {
        var dir = Folder(
            ("logs.csx", Usings + "List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param)\n{\n    param.Log.Info(\"hello\");\n    return new();\n}\n"),
            ("logs.test.csx", "#load \"logs.csx\"\nvar log = new RecordingHookLog();\nGetFlowOrchestration(Props.Flow().LoggingTo(log).Build());\nCheck.Equal(\"hello\", log.Lines.Single().Message);\nCheck.Equal(4, log.Lines.Single().Line);\n"));

        var result = await CliRunner.RunAsync(["hooks", "test", "--hooks", dir]);

        result.ExitCode.Should().Be(0, result.Out + result.Err);
        result.Out.Should().Contain("PASS logs.test.csx (top-level)");
    }

    [Fact]
    public async Task Wait_for_debugger_prints_the_workers_pid_waits_and_goes_on_without_one()
    {
        var dir = Folder(("ok.test.csx", "Check.True(true);\n"));

        var result = await CliRunner.RunAsync(["hooks", "test", "--hooks", dir, "--wait-for-debugger", "1"]);

        result.ExitCode.Should().Be(0, result.Out + result.Err);
        var waiting = System.Text.RegularExpressions.Regex.Match(result.Err, @"hook worker: process (\d+) is waiting up to 1 s for a debugger to attach");
        waiting.Success.Should().BeTrue(result.Err);
        int.Parse(waiting.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture).Should().NotBe(Environment.ProcessId, "the worker is its own process");
        result.Err.Should().Contain($"hook worker: no debugger attached to process {waiting.Groups[1].Value} after 1 s; going on without one");
        result.Err.IndexOf("is waiting up to", StringComparison.Ordinal).Should().BeLessThan(result.Err.IndexOf("going on without one", StringComparison.Ordinal));
        result.Out.Should().Contain("PASS ok.test.csx (top-level)");
    }

    [Fact]
    public async Task Stats_and_config_together_are_a_usage_error()
    {
        var result = await CliRunner.RunAsync(["hooks", "test", "--stats", Stats, "--config", CliRunner.QuickstartConfig]);

        result.ExitCode.Should().Be(2);
        result.Err.Should().Contain("--stats and --config both say what to plan over");
    }

    [Fact]
    public async Task A_stats_file_error_names_its_line()
    {
        var stats = Path.Combine(Folder(), "stats.yaml");
        await File.WriteAllTextAsync(stats, "flows:\n  - name: shop\n    tables:\n      - {name: orders, rows: lots}\n");

        var result = await CliRunner.RunAsync(["hooks", "test", "--hooks", Folder(), "--stats", stats]);

        result.ExitCode.Should().Be(2);
        result.Err.Should().Contain("stats.yaml(4,").And.Contain("rows 'lots' is not a whole number");
    }
}
