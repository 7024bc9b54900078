using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using EtlFunnel.Cli.Running;
using EtlFunnel.Cli.Tests.Support;
using EtlFunnel.Cluster;
using EtlFunnel.Cluster.Leases;
using EtlFunnel.Cluster.Members;
using EtlFunnel.Cluster.Worker;
using EtlFunnel.Execution.Models;
using EtlFunnel.Testing.Prometheus;
using EtlFunnel.Testing.Postgres;

namespace EtlFunnel.Cli.Tests.Commands;

/// <summary>
/// <c>etlfunnel cluster status</c> against a real state database whose members and leases are written by the cluster's own
/// registry and lease store (as workers write them); the end-to-end run with worker processes is in EtlFunnel.Cluster.Tests.
/// </summary>
public sealed class ClusterStatusCliTests
{
    private static readonly TimeSpan Ttl = TimeSpan.FromSeconds(30);

    private static Member Member(string silo, string name, int cores, string? region, Dictionary<string, string> labels) => new(silo,
        new MachineInfo { HostName = name, LogicalCores = cores, TotalMemoryBytes = 8L << 30, Region = region, Labels = labels }, "sha256:x");

    /// <summary>Two members alive, one gone; a run of three replicas: one on each live member, one taken over from the gone member by w2.</summary>
    private static async Task<string> ClusterAsync(string clusterId)
    {
        var server = await PostgresServer.GetAsync();
        var state = await server.CreateDatabaseAsync("clstate");
        var settings = new ClusterSettings(state) { ClusterId = clusterId };
        await using var dataSource = ClusterData.Open(settings);
        await ClusterSchema.EnsureAsync(dataSource, settings.Server, CancellationToken.None);
        var members = new MemberRegistry(dataSource, clusterId);
        await members.AnnounceAsync(Member("127.0.0.1:1001@1", "w1", 4, "EU", new() { ["disk"] = "ssd" }), CancellationToken.None);
        await members.AnnounceAsync(Member("127.0.0.1:1002@1", "w2", 2, null, []), CancellationToken.None);
        await members.AnnounceAsync(Member("127.0.0.1:1003@1", "w3", 1, null, []), CancellationToken.None);
        // Another cluster in the same database is not shown.
        await new MemberRegistry(dataSource, "other").AnnounceAsync(Member("127.0.0.1:2001@1", "elsewhere", 8, null, []), CancellationToken.None);
        await PostgresServer.ExecuteAsync(state, "UPDATE etlfunnel_cluster.members SET seen_at = now() - interval '1 hour' WHERE silo = '127.0.0.1:1003@1'");

        var leases = new LeaseStore(dataSource);
        await leases.CreateAsync("run1", [("shop", "items_0"), ("shop", "items_1"), ("shop", "items_2")], CancellationToken.None);
        (await leases.TryAcquireAsync(LeaseStore.KeyOf("run1", "shop", "items_0"), "127.0.0.1:1001@1 g0", Ttl, CancellationToken.None)).Should().NotBeNull();
        (await leases.TryAcquireAsync(LeaseStore.KeyOf("run1", "shop", "items_1"), "127.0.0.1:1002@1 g1", Ttl, CancellationToken.None)).Should().NotBeNull();
        // w3 took items_2, then died: its lease lapsed and w2 took it over (epoch 2, one takeover).
        (await leases.TryAcquireAsync(LeaseStore.KeyOf("run1", "shop", "items_2"), "127.0.0.1:1003@1 g2", Ttl, CancellationToken.None)).Should().NotBeNull();
        await PostgresServer.ExecuteAsync(state, "UPDATE etlfunnel_cluster.leases SET expires_at = now() - interval '1 second' WHERE replica = 'items_2'");
        (await leases.TryAcquireAsync(LeaseStore.KeyOf("run1", "shop", "items_2"), "127.0.0.1:1002@1 g2b", Ttl, CancellationToken.None))!.Epoch.Should().Be(2);
        return state;
    }

    [Fact]
    public async Task Json_shows_the_members_the_replicas_each_owns_and_the_failovers()
    {
        var clusterId = "c" + Guid.NewGuid().ToString("n")[..8];
        var state = await ClusterAsync(clusterId);

        var result = await CliRunner.RunAsync(["cluster", "status", "--cluster", state, "--cluster-id", clusterId, "--format", "json"]);

        result.ExitCode.Should().Be(0, result.Err);
        using var json = JsonDocument.Parse(result.Out);
        var root = json.RootElement;
        root.GetProperty("clusterId").GetString().Should().Be(clusterId);
        root.GetProperty("aliveMembers").GetInt32().Should().Be(2);
        root.GetProperty("failovers").GetInt64().Should().Be(1);
        var members = root.GetProperty("members").EnumerateArray().ToDictionary(m => m.GetProperty("name").GetString()!);
        members.Keys.Should().BeEquivalentTo(["w1", "w2", "w3"]);
        members["w1"].GetProperty("alive").GetBoolean().Should().BeTrue();
        members["w1"].GetProperty("cores").GetInt32().Should().Be(4);
        members["w1"].GetProperty("region").GetString().Should().Be("EU");
        members["w1"].GetProperty("labels").GetProperty("disk").GetString().Should().Be("ssd");
        members["w1"].GetProperty("replicas").GetInt32().Should().Be(1);
        members["w2"].GetProperty("replicas").GetInt32().Should().Be(2);
        members["w3"].GetProperty("alive").GetBoolean().Should().BeFalse();
        members["w3"].GetProperty("replicas").GetInt32().Should().Be(0);
        var replicas = root.GetProperty("replicas").EnumerateArray()
            .Select(r => (Silo: r.GetProperty("silo").GetString(), Replica: r.GetProperty("replica").GetString(), Epoch: r.GetProperty("epoch").GetInt64(),
                Since: r.GetProperty("since").ValueKind)).ToList();
        replicas.Should().BeEquivalentTo([
            ("127.0.0.1:1001@1", "items_0", 1L, JsonValueKind.String),
            ("127.0.0.1:1002@1", "items_1", 1L, JsonValueKind.String),
            ("127.0.0.1:1002@1", "items_2", 2L, JsonValueKind.String),
        ]);
        var failedOver = root.GetProperty("failedOver").EnumerateArray().Single();
        failedOver.GetProperty("replica").GetString().Should().Be("items_2");
        failedOver.GetProperty("takeovers").GetInt32().Should().Be(1);
        failedOver.GetProperty("silo").GetString().Should().Be("127.0.0.1:1002@1");
    }

    [Fact]
    public async Task The_table_names_every_member_its_state_and_the_failovers()
    {
        var clusterId = "c" + Guid.NewGuid().ToString("n")[..8];
        var state = await ClusterAsync(clusterId);

        var result = await CliRunner.RunAsync(["cluster", "status", "--cluster", state, "--cluster-id", clusterId]);

        result.ExitCode.Should().Be(0, result.Err);
        result.Out.Should().Contain($"Cluster {clusterId}").And.Contain("2 of 3 members alive, 3 replicas running, 1 failovers");
        result.Out.Should().Contain("w1").And.Contain("w2").And.Contain("w3").And.Contain("not seen").And.Contain("disk=ssd");
        result.Out.Should().Contain("shop/items_2").And.NotContain("elsewhere");
    }

    [Fact]
    public async Task The_worker_endpoint_serves_the_cluster_on_metrics_and_the_page_and_promtool_accepts_it()
    {
        var clusterId = "c" + Guid.NewGuid().ToString("n")[..8];
        var state = await ClusterAsync(clusterId);
        var settings = new ClusterSettings(state) { ClusterId = clusterId, MemberTtl = Ttl };
        await using var dataSource = ClusterData.Open(settings);
        await using var executor = new ReplicaExecutor(new WorkerOptions
        {
            Settings = settings,
            ConfigPath = "flows.yaml",
            HooksHash = "sha256:x",
            Machine = new MachineInfo { HostName = "w2", LogicalCores = 2, TotalMemoryBytes = 8L << 30 },
            WorkDirectory = Path.GetTempPath(),
            Environment = _ => null,
        }, new LeaseStore(dataSource), Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance);
        await using var server = await WorkerStatusServer.StartAsync(IPAddress.Loopback, 0, settings, executor, "127.0.0.1:1002@1", CancellationToken.None);
        using var http = new HttpClient { BaseAddress = server.BoundUrl, Timeout = TimeSpan.FromSeconds(30) };

        // The first reading of the state database lands within a second of the start.
        string text;
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        do
        {
            await Task.Delay(100);
            text = await http.GetStringAsync("/metrics");
        }
        while (Sample(text, "etlfunnel_cluster_status_up") != "1" && DateTime.UtcNow < until);

        Sample(text, "etlfunnel_cluster_members").Should().Be("2", text);
        Sample(text, "etlfunnel_cluster_failovers_total").Should().Be("1", text);
        Sample(text, "etlfunnel_cluster_replicas_running").Should().Be("0", text);
        Sample(text, "etlfunnel_cluster_replicas", "w1").Should().Be("1", text);
        Sample(text, "etlfunnel_cluster_replicas", "w2").Should().Be("2", text);
        Sample(text, "etlfunnel_cluster_replicas", "w3").Should().BeNull("a member not seen and owning nothing has no series");
        text.Should().Contain("process_", "the runtime and process metrics of watch's endpoint are there too");
        var (exitCode, output) = await Promtool.CheckMetricsAsync(text);
        exitCode.Should().Be(0, $"promtool check metrics must accept the worker's /metrics:\n{output}\n{text}");

        (await http.GetStringAsync("/livez")).Should().Contain("alive");
        var page = await http.GetStringAsync("/");
        page.Should().StartWith("<!DOCTYPE html>").And.NotContain("<script");
        page.Should().Contain("<tr class=\"here\"><td>w2</td>").And.Contain("<td>w1</td>").And.Contain("not seen").And.Contain("<td>shop/items_2</td>")
            .And.Contain("2 members alive, 3 replicas running, 1 failovers");
    }

    /// <summary>The value of a sample of <paramref name="name"/> (with member label <paramref name="member"/>), null when absent.</summary>
    private static string? Sample(string exposition, string name, string? member = null) => exposition.Split('\n')
        .Where(l => l.StartsWith(name + "{", StringComparison.Ordinal) || l.StartsWith(name + " ", StringComparison.Ordinal))
        .Where(l => member is null || l.Contains($"member=\"{member}\"", StringComparison.Ordinal))
        .Select(l => l[(l.LastIndexOf(' ') + 1)..]).FirstOrDefault();

    [Fact]
    public async Task A_database_without_cluster_tables_says_to_point_cluster_at_the_workers_database()
    {
        var server = await PostgresServer.GetAsync();
        var empty = await server.CreateDatabaseAsync("clempty");

        var result = await CliRunner.RunAsync(["cluster", "status", "--cluster", empty]);

        result.ExitCode.Should().Be(1, result.Out);
        result.Err.Should().Contain("--cluster").And.Contain("no cluster tables").And.Contain("start a worker there first");
    }

    [Fact]
    public async Task An_unreachable_state_database_names_cluster_and_what_to_do()
    {
        var port = FreePort();

        var result = await CliRunner.RunAsync(["cluster", "status", "--cluster", $"postgres://etl:secret@127.0.0.1:{port}/etlstate"]);

        result.ExitCode.Should().Be(1, result.Out);
        result.Err.Should().Contain($"--cluster 127.0.0.1:{port}/etlstate: cannot reach the cluster's state database").And.Contain("fix --cluster").And.NotContain("secret");
    }

    [Fact]
    public async Task Cluster_is_required()
    {
        var result = await CliRunner.RunAsync(["cluster", "status"]);

        result.ExitCode.Should().Be(2);
        (result.Out + result.Err).Should().Contain("--cluster <CONN> is required");
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
