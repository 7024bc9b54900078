using System.Diagnostics;
using EtlFunnel.Orchestration.Config;
using EtlFunnel.Orchestration.Discovery;
using EtlFunnel.Orchestration.Machines;
using EtlFunnel.Orchestration.Planning;
using EtlFunnel.Orchestration.Plans;
using EtlFunnel.Orchestration.Tests.Support;
using EtlFunnel.Testing.Postgres;
using Xunit.Abstractions;

namespace EtlFunnel.Orchestration.Tests.Planning;

/// <summary>The seed's US region at scale (200 schemas × 10 tables, 32 cores) against the real server; prints timings, asserts only the plan.</summary>
public sealed class UsScaleTests
{
    private readonly ITestOutputHelper _output;

    public UsScaleTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public async Task Planning_the_US_region_over_2000_tables_discovers_them_in_one_catalog_query_and_plans_every_partition()
    {
        var cs = await (await PostgresServer.GetAsync()).CreateDatabaseAsync("usscale");
        var started = Stopwatch.GetTimestamp();
        await PostgresServer.ExecuteAsync(cs, await File.ReadAllTextAsync(Repo.Path("samples", "quickstart", "us-scale.sql")));
        var loaded = Stopwatch.GetElapsedTime(started);

        started = Stopwatch.GetTimestamp();
        var config = await ConfigLoader.LoadAsync(Repo.Path("samples", "quickstart", "us-scale.yaml"), n => n == "QUICKSTART_PG" ? cs : null);
        var machine = await MachineProfiles.LoadAsync(Repo.Path("samples", "regions", "us.yaml"));
        await using var workload = await WorkloadDiscovery.DiscoverAsync(config);
        var discovered = Stopwatch.GetElapsedTime(started);
        var plan = await new Planner(SeedHooks.Both()).PlanAsync(workload, machine, config.Limits);
        var planned = Stopwatch.GetElapsedTime(started);
        var json = PlanJson.Serialize(plan);
        var serialised = Stopwatch.GetElapsedTime(started);

        _output.WriteLine($"load 2000 tables: {loaded.TotalSeconds:0.00} s; discovery: {discovered.TotalMilliseconds:0} ms; discovery+planning: {planned.TotalMilliseconds:0} ms; +JSON ({json.Length / 1_000_000.0:0.0} MB): {serialised.TotalMilliseconds:0} ms");
        workload.Flows.Sum(f => f.Pipelines.Length).Should().Be(2000);
        plan.Flows.Should().HaveCount(10 * 32);
        plan.AllPipelines().Should().HaveCount(2000 * 32);
        plan.AllPipelines().Where(x => x.Pipeline.Table.ToString() == "tenant_3_07.table_4").Select(x => x.Pipeline.Partition.Start.ToString())
            .Should().Equal(Enumerable.Range(0, 32).Select(i => new Fraction(i, 32).ToString()));
    }
}
