using EtlFunnel.Cli.Tests.Support;
using EtlFunnel.Testing.Postgres;

namespace EtlFunnel.Cli.Tests.Commands;

/// <summary>How the CLI chooses the cluster: <c>--cluster</c>, else <c>cluster:</c> in flows.yaml, else none; the wrong combinations say what to do.</summary>
public sealed class ClusterConfigCliTests
{
    private const string Flows = """
        flows:
          - name: shop
            source: {postgres: "Host=127.0.0.1;Port=1;Database=shop;Username=app"}
            destination: {files: out}
            pipelines: [{schema: public}]
        """;

    [Fact]
    public async Task A_worker_without_cluster_option_nor_cluster_key_says_how_to_name_one()
    {
        var config = CliRunner.WriteConfig(Flows);

        var result = await CliRunner.RunAsync(["worker", "--config", config]);

        result.ExitCode.Should().Be(2, result.Err);
        result.Err.Should().Contain("no cluster named: pass --cluster <CONN>").And.Contain($"add 'cluster: postgres://…' to {config}");
    }

    [Fact]
    public async Task Local_and_cluster_together_are_refused()
    {
        var config = CliRunner.WriteConfig(Flows);

        var result = await CliRunner.RunAsync(["run", "--config", config, "--local", "--cluster", "postgres://etl@127.0.0.1:1/state"]);

        result.ExitCode.Should().NotBe(0);
        (result.Err + result.Out).Should().Contain("--local and --cluster contradict each other");
    }

    [Fact]
    public async Task A_config_error_of_a_cluster_run_is_reported_at_once_instead_of_after_waiting_for_workers()
    {
        // A reachable cluster database without workers: the member lookup (which runs beside planning) would wait 60 s and then
        // say "no worker"; the planning error stops it instead.
        var state = await (await PostgresServer.GetAsync()).CreateDatabaseAsync("cluster_noworkers");
        var config = CliRunner.WriteConfig(Flows.Replace("pipelines:", "pipelinez:", StringComparison.Ordinal));

        var result = await CliRunner.RunAsync(["run", "--config", config, "--cluster", state]);

        result.ExitCode.Should().Be(2, result.Err);
        result.Err.Should().Contain("pipelinez").And.NotContain("no worker of cluster");
    }

    [Fact]
    public async Task A_bad_cluster_key_stops_the_worker_at_its_line()
    {
        var config = CliRunner.WriteConfig("cluster: {id: eu}\n" + Flows);

        var result = await CliRunner.RunAsync(["worker", "--config", config]);

        result.ExitCode.Should().Be(2, result.Err);
        result.Err.Should().Contain("(1,10): 'cluster:' needs 'postgres:', the cluster's state database");
    }
}
