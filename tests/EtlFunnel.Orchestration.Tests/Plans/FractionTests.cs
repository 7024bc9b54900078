using EtlFunnel.Orchestration.Plans;

namespace EtlFunnel.Orchestration.Tests.Plans;

public sealed class FractionTests
{
    [Theory]
    [InlineData(2, 8, "1/4")]
    [InlineData(0, 12, "0")]
    [InlineData(12, 12, "1")]
    [InlineData(6, 9, "2/3")]
    public void Fractions_are_kept_reduced_and_print_as_n_over_d(long n, long d, string expected)
    {
        var f = new Fraction(n, d);
        f.ToString().Should().Be(expected);
        Fraction.Parse(expected).Should().Be(f);
    }

    [Fact]
    public void Comparison_is_exact_where_doubles_would_round()
    {
        var a = new Fraction(1_000_000_000_000, 3_000_000_000_001);
        var b = new Fraction(1, 3);
        (a < b).Should().BeTrue();
        a.Should().NotBe(b);
    }

    [Theory]
    [InlineData(1, 4, 100, 25)]
    [InlineData(1, 3, 10, 3)]
    [InlineData(2, 3, 10, 6)]
    [InlineData(1, 1, 10, 10)]
    public void A_bound_maps_to_block_floor_of_fraction_times_blocks(long n, long d, long blocks, long expected) =>
        new Fraction(n, d).ToBlock(blocks).Should().Be(expected);

    [Fact]
    public void A_bound_outside_the_unit_interval_is_refused()
    {
        var act = () => new Fraction(5, 4);
        act.Should().Throw<ArgumentOutOfRangeException>();
    }
}
