using EtlFunnel.Orchestration.Config;
using EtlFunnel.Scripting;

namespace EtlFunnel.Orchestration.Tests.Config;

public sealed class HooksConfigTests
{
    private const string Flow = "flows:\n  - name: a\n    source: {postgres: \"Host=h\"}\n    destination: {files: x}\n    pipelines: [{}]\n";

    private static EtlConfig Parse(string yaml) => ConfigLoader.Parse(yaml, "flows.yaml", "/etc/etl", _ => null);

    [Fact]
    public void A_plain_hooks_path_keeps_meaning_the_folder_with_the_sandbox_default()
    {
        var config = Parse("hooks: ./hooks\n" + Flow);

        config.HooksDirectory.Should().Be("/etc/etl/hooks");
        config.HooksIsolation.Should().Be(HookIsolation.Sandbox);
        config.HooksEnvironment.Should().BeEmpty();
    }

    [Theory]
    [InlineData("sandbox", HookIsolation.Sandbox)]
    [InlineData("process", HookIsolation.Process)]
    [InlineData("none", HookIsolation.None)]
    public void The_mapping_form_sets_the_isolation(string value, HookIsolation expected)
    {
        var config = Parse($"hooks: {{path: ./h, isolation: {value}, env: [REGION, TZ]}}\n" + Flow);

        config.HooksDirectory.Should().Be("/etc/etl/h");
        config.HooksIsolation.Should().Be(expected);
        config.HooksEnvironment.Should().Equal("REGION", "TZ");
    }

    [Theory]
    [InlineData("hooks: {path: ./h, isolation: off}\n", "flows.yaml(1,31): hooks.isolation 'off' is not one of sandbox")]
    [InlineData("hooks: {isolation: none}\n", "flows.yaml(1,8): 'hooks:' needs 'path:'")]
    [InlineData("hooks: {path: ./h, isolaton: none}\n", "flows.yaml(1,20): unknown key 'isolaton'")]
    [InlineData("hooks: {path: ./h, env: [\"A=1\"]}\n", "flows.yaml(1,25): hooks.env lists 'A=1'")]
    [InlineData("hooks: [./h]\n", "flows.yaml(1,8): 'hooks:' must be a folder path")]
    public void Bad_hooks_values_are_errors_that_name_the_line(string hooks, string expectedStart)
    {
        var act = () => Parse(hooks + Flow);

        act.Should().Throw<ConfigException>().Which.Message.Should().StartWith(expectedStart);
    }
}
