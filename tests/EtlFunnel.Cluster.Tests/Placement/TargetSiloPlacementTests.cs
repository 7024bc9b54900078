using EtlFunnel.Cluster.Placement;

namespace EtlFunnel.Cluster.Tests.Placement;

public sealed class TargetSiloPlacementTests
{
    [Fact]
    public void The_target_of_a_grain_key_is_the_whole_silo_address_whose_generation_follows_an_at_sign_of_its_own()
    {
        var key = TargetSiloPlacementDirector.GrainKey("run/shop/shop.items_0", 3, "127.0.0.1:33055@155246831");
        TargetSiloPlacementDirector.TargetOf(key).Should().Be("127.0.0.1:33055@155246831");
        TargetSiloPlacementDirector.LeaseKeyOf(key).Should().Be("run/shop/shop.items_0");
        TargetSiloPlacementDirector.TargetOf("no-target").Should().BeNull();
    }
}
