using System.Text.Json;
using EtlFunnel.Cli.Tests.Support;
using EtlFunnel.Orchestration.Plans;
using EtlFunnel.Orchestration.Tests.Support;
using EtlFunnel.Testing.Postgres;

namespace EtlFunnel.Cli.Tests.Commands;

/// <summary>Dotted and quoted identifiers go from the catalog through the plan JSON to the run without being split again.</summary>
public sealed class IdentifierRunTests
{
    [Fact]
    public async Task Dotted_and_quoted_identifiers_survive_plan_to_run()
    {
        var cs = await (await PostgresServer.GetAsync()).CreateDatabaseAsync("idents");
        await PostgresServer.ExecuteAsync(cs, """
            CREATE SCHEMA "a.b"; CREATE SCHEMA a;
            CREATE TABLE "a.b".c (id int PRIMARY KEY, v text); INSERT INTO "a.b".c SELECT g, 'ab.c' FROM generate_series(1, 30) g;
            CREATE TABLE a."b.c" (id int PRIMARY KEY, v text); INSERT INTO a."b.c" SELECT g, 'a.bc' FROM generate_series(1, 20) g;
            CREATE TABLE a."UPPER" (id int PRIMARY KEY, v text); INSERT INTO a."UPPER" SELECT g, 'UPPER' FROM generate_series(1, 10) g;
            ANALYZE;
            """);
        var root = Directory.CreateTempSubdirectory("etlfunnel-idents-").FullName;
        var config = CliRunner.WriteConfig($"""
            state: {Path.Combine(root, "state")}
            flows:
              - name: f
                source: {"{"}postgres: "{cs}"{"}"}
                destination: {"{"}files: {Path.Combine(root, "out")}{"}"}
                pipelines:
                  - schema: "a*"
            """);

        var plan = await CliRunner.RunAsync(["plan", "--config", config, "--hooks", CliRunner.HooksDir, "--machine", CliRunner.Region("eu"), "--format", "json"], SeedHooks.Both());
        plan.ExitCode.Should().Be(0, plan.Err);
        PlanJson.Deserialize(plan.Out).AllPipelines().Select(x => (x.Pipeline.Table.Schema, x.Pipeline.Table.Name, x.Pipeline.Index)).Distinct()
            .Should().BeEquivalentTo([("a.b", "c", "a.b_c"), ("a", "b.c", "a_b.c"), ("a", "UPPER", "a_upper")]);

        var run = await CliRunner.RunAsync(["run", "--config", config, "--hooks", CliRunner.HooksDir, "--machine", CliRunner.Region("eu")], SeedHooks.Both());
        run.ExitCode.Should().Be(0, run.Err);
        int Documents(string index, string value) => Directory.EnumerateFiles(Path.Combine(root, "out", index), "*.ndjson")
            .SelectMany(File.ReadLines).Where((_, i) => i % 2 == 1)
            .Count(line => JsonDocument.Parse(line).RootElement.GetProperty("v").GetString() == value);
        Documents("a.b_c", "ab.c").Should().Be(30);
        Documents("a_b.c", "a.bc").Should().Be(20);
        Documents("a_upper", "UPPER").Should().Be(10);
    }
}
