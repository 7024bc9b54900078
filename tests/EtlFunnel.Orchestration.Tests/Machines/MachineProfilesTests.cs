using EtlFunnel.Orchestration.Config;
using EtlFunnel.Orchestration.Machines;

namespace EtlFunnel.Orchestration.Tests.Machines;

public sealed class MachineProfilesTests
{
    private static string Sample(string name)
    {
        var dir = AppContext.BaseDirectory;
        while (!Directory.Exists(Path.Combine(dir, "samples", "regions")))
        {
            dir = Path.GetDirectoryName(dir) ?? throw new InvalidOperationException("samples/regions not found above the test folder");
        }

        return Path.Combine(dir, "samples", "regions", name);
    }

    [Theory]
    [InlineData("us.yaml", "US", 32, 128L << 30)]
    [InlineData("eu.yaml", "EU", 8, 32L << 30)]
    [InlineData("apac.yaml", "APAC", 16, 64L << 30)]
    public async Task The_shipped_region_profiles_describe_the_seed_machines(string file, string region, int cores, long memory)
    {
        var machine = await MachineProfiles.LoadAsync(Sample(file));
        machine.Region.Should().Be(region);
        machine.LogicalCores.Should().Be(cores);
        machine.TotalMemoryBytes.Should().Be(memory);
    }

    [Fact]
    public void A_profile_with_labels_and_name_loads()
    {
        var m = MachineProfiles.Parse("name: eu-west-1a\nregion: EU\ncores: 8\nmemory: 1.5GiB\nlabels: {tier: prod, zone: a}", "p.yaml");
        m.HostName.Should().Be("eu-west-1a");
        m.TotalMemoryBytes.Should().Be(3L << 29);
        m.Labels.Should().Equal(new Dictionary<string, string> { ["tier"] = "prod", ["zone"] = "a" });
    }

    [Theory]
    [InlineData("cores: 8\nmemory: lots", "p.yaml(2,9): memory 'lots' is not a size")]
    [InlineData("cores: 8", "p.yaml(1,1): the machine profile has no 'memory:'")]
    [InlineData("cores: 0\nmemory: 1GB", "p.yaml(1,8): cores must be a positive whole number")]
    [InlineData("cores: 8\nmemory: 1GB\ncpus: 3", "p.yaml(3,1): unknown key 'cpus' in the machine profile")]
    public void A_bad_profile_names_the_line(string yaml, string expected)
    {
        var act = () => MachineProfiles.Parse(yaml, "p.yaml");
        act.Should().Throw<ConfigException>().Which.Message.Should().StartWith(expected);
    }

    [Fact]
    public void The_real_machine_is_detected_with_the_region_from_the_environment()
    {
        var m = MachineProfiles.Detect(n => n == MachineProfiles.RegionVariable ? "EU" : null);
        m.LogicalCores.Should().Be(Environment.ProcessorCount);
        m.TotalMemoryBytes.Should().BePositive();
        m.Region.Should().Be("EU");
    }
}
