using EtlFunnel.Orchestration.Plans;
using EtlFunnel.Runtime.Jobs;

namespace EtlFunnel.Runtime.Tests.Jobs;

public sealed class SyncJobBuilderTests
{
    [Fact]
    public void Plan_fractions_become_one_range_over_their_common_denominator()
    {
        var range = SyncJobBuilder.Range(new PlanPartition(new Fraction(1, 4), new Fraction(1, 3), 1, 4));

        // [1/4, 1/3) = [3/12, 4/12)
        range.Should().Be(new EtlFunnel.Sync.PartitionRange(3, 4, 12));
    }
}
