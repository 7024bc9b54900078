using EtlFunnel.Orchestration.Config;
using EtlFunnel.Runtime.State;

namespace EtlFunnel.Runtime.Tests.State;

public sealed class StateLocationTests
{
    private static EtlConfig Config(string state) => ConfigLoader.Parse(
        $"""
        state: {state}
        flows:
          - name: shop
            source:
              postgres: "Host=127.0.0.1;Database=shop"
            destination:
              files: out
            pipelines:
              - schema: public
        """,
        "flows.yaml",
        "/srv/etl",
        _ => null);

    [Fact]
    public void A_state_option_folder_overrides_the_configured_folder()
    {
        var location = StateLocation.Resolve("/tmp/elsewhere", Config("checkpoints"));

        location.Directory.Should().Be("/tmp/elsewhere");
        location.Table.Should().BeNull();
    }

    [Fact]
    public void A_state_option_url_keeps_the_config_folder_for_dead_letters_and_names_the_flag()
    {
        var location = StateLocation.Resolve("postgres://etl@127.0.0.1:5432/state", Config("checkpoints"));

        location.Directory.Should().Be("/srv/etl/checkpoints");
        location.Table.Should().NotBeNull();
        location.Table!.ConfiguredAt.Should().Be("--state");
        location.ToString().Should().NotContain("password");
    }

    [Fact]
    public void Watched_flows_get_one_folder_each()
    {
        var root = StateLocation.Resolve(null, Config("checkpoints"));

        root.ForWatchedFlow("shop").Directory.Should().Be("/srv/etl/checkpoints/watch/shop");
        root.ForWatchedFlow("crm").Directory.Should().NotBe(root.ForWatchedFlow("shop").Directory);
    }

    [Fact]
    public void A_malformed_state_url_names_the_flag()
    {
        var act = () => StateLocation.Resolve("postgres://[::1", Config("checkpoints"));

        act.Should().Throw<FormatException>().WithMessage("--state:*");
    }
}
