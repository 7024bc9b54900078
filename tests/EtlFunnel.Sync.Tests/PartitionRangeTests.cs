namespace EtlFunnel.Sync.Tests;

public sealed class PartitionRangeTests
{
    [Fact]
    public void Nested_replica_ranges_tile_the_unit_interval_in_order()
    {
        for (var flows = 1; flows <= 8; flows++)
        {
            for (var pipes = 1; pipes <= 8; pipes++)
            {
                var ranges = Enumerable.Range(0, flows)
                    .SelectMany(f => Enumerable.Range(0, pipes).Select(p => PartitionRange.ForReplica(f, flows).Split(p, pipes)))
                    .ToList();
                ranges[0].StartNumerator.Should().Be(0);
                ranges[^1].IsOpenEnded.Should().BeTrue();
                ranges.Count(r => r.IsOpenEnded).Should().Be(1);
                for (var i = 1; i < ranges.Count; i++)
                {
                    ((Int128)ranges[i].StartNumerator * ranges[i - 1].Denominator)
                        .Should().Be((Int128)ranges[i - 1].EndNumerator * ranges[i].Denominator, "adjacent ranges share their boundary");
                }
            }
        }
    }

    [Theory]
    [InlineData(0L)]
    [InlineData(1L)]
    [InlineData(7L)]
    [InlineData(1000L)]
    [InlineData(4_294_967_295L)]
    public void Block_boundaries_of_siblings_are_disjoint_and_cover_every_block(long blocks)
    {
        var ranges = Enumerable.Range(0, 7).SelectMany(f => Enumerable.Range(0, 5).Select(p => PartitionRange.ForReplica(f, 7).Split(p, 5))).ToList();
        ranges[0].StartBlock(blocks).Should().Be(0);
        for (var i = 1; i < ranges.Count; i++)
        {
            ranges[i].StartBlock(blocks).Should().Be(ranges[i - 1].EndBlock(blocks)!.Value);
        }

        ranges[^1].EndBlock(blocks).Should().BeNull("the last range is open-ended so rows in blocks added later are read too");
    }

    [Fact]
    public void Replica_id_outside_the_total_is_refused_with_a_clear_message()
    {
        var act = () => PartitionRange.ForReplica(3, 3);
        act.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*replica_id 3*total_replicas = 3*");
    }
}
