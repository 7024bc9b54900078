using System.Text.Json;
using EtlFunnel.Cluster.Members;
using EtlFunnel.Cluster.Running;
using EtlFunnel.Execution.Models;

namespace EtlFunnel.Cluster.Tests.Placement;

public sealed class ReplicaPlacementTests
{
    private static Member MemberIn(string silo, string? region, int cores = 2) =>
        new(silo, new MachineInfo { LogicalCores = cores, TotalMemoryBytes = 1L << 30, Region = region, HostName = silo }, "sha256:x");

    private static JsonElement Props(string json) => JsonDocument.Parse(json).RootElement.Clone();

    private static readonly JsonElement None = Props("{}");

    [Theory]
    [InlineData("{}")]
    [InlineData("""{"cluster_region": ""}""")]
    [InlineData("""{"cluster_region": "  "}""")]
    [InlineData("""{"cluster_region": null}""")]
    public void A_replica_with_an_empty_or_absent_region_runs_on_any_member(string props)
    {
        var placement = ReplicaPlacement.From(Props(props), None);
        placement.Region.Should().BeNull();
        var members = new[] { MemberIn("eu", "EU"), MemberIn("none", null), MemberIn("us", "US") };
        members.Should().OnlyContain(m => placement.Allows(m));
    }

    [Fact]
    public void A_region_pins_the_replica_to_members_of_that_region_case_insensitively()
    {
        var placement = ReplicaPlacement.From(Props("""{"cluster_region": "eu"}"""), None);
        placement.Allows(MemberIn("eu", "EU")).Should().BeTrue();
        placement.Allows(MemberIn("us", "US")).Should().BeFalse();
        placement.Allows(MemberIn("none", null)).Should().BeFalse();
    }

    [Fact]
    public void An_empty_region_of_the_pipeline_replica_overrides_its_flow_replicas_region()
    {
        ReplicaPlacement.From(Props("""{"cluster_region": ""}"""), Props("""{"cluster_region": "EU"}""")).Region.Should().BeNull();
        ReplicaPlacement.From(None, Props("""{"cluster_region": "EU"}""")).Region.Should().Be("EU");
    }

    [Fact]
    public void An_unpinned_replica_goes_to_the_member_with_the_most_free_cores()
    {
        var placement = ReplicaPlacement.From(Props("""{"cluster_region": ""}"""), None);
        var members = new[] { MemberIn("a", "EU", cores: 4), MemberIn("b", null, cores: 4) };
        placement.Choose(members, new Dictionary<string, int> { ["a"] = 3, ["b"] = 1 }).Should().Be(members[1]);
        placement.Choose(members, new Dictionary<string, int> { ["a"] = 4, ["b"] = 4 }).Should().BeNull("no member has a free core: the replica waits");
    }
}
