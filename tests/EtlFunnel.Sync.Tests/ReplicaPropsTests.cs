using System.Text.Json;
using EtlFunnel.Execution.Models;
using EtlFunnel.Sync.Runtime;

namespace EtlFunnel.Sync.Tests;

/// <summary>The engine reads batch props with the same parser the planner validates them with (ReplicaPropValues).</summary>
public sealed class ReplicaPropsTests
{
    public static TheoryData<object?> Refused => new() { "lots", 0L, -5L, 2.5, true, 3_000_000_000L, "1e3" };

    [Theory]
    [MemberData(nameof(Refused))]
    public void A_prop_the_planner_refuses_is_refused_by_the_engine_naming_the_replica(object? value)
    {
        foreach (var key in ReplicaPropValues.EngineKeys)
        {
            var act = () => ReplicaProps.From(new Dictionary<string, object?> { [key] = value }, "f/r");
            act.Should().Throw<SyncConfigurationException>().Which.Message.Should().StartWith($"Replica 'f/r': prop '{key}' must be a positive whole number");
        }
    }

    [Fact]
    public void Props_as_the_plan_json_carries_them_are_read_and_defaults_fill_the_rest()
    {
        // The CLI hands the engine JSON numbers as long/double and strings as string; hooks may hand JsonElements.
        var props = ReplicaProps.From(new Dictionary<string, object?>
        {
            [ReplicaPropKeys.BatchSize] = 100L,
            [ReplicaPropKeys.BatchBytes] = JsonDocument.Parse("1048576.0").RootElement,
            [ReplicaPropKeys.MaxInFlight] = "4",
            [ReplicaPropKeys.FetchSize] = null,
        }, "f/r");
        props.Should().Be(new ReplicaProps(100, 1 << 20, 4));
        ReplicaProps.From(new Dictionary<string, object?>(), "f/r").Should().Be(new ReplicaProps(ReplicaProps.DefaultBatchSize, ReplicaProps.DefaultBatchBytes, ReplicaProps.DefaultMaxInFlight));
    }
}
