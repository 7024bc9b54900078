using EtlFunnel.Scripting.Tests.Support;

namespace EtlFunnel.Scripting.Tests;

/// <summary>Loads the Policy fixture folder once; every fixture marks the lines it expects a refusal on.</summary>
public sealed class PolicyFixture : IAsyncLifetime
{
    public HookHost Host { get; private set; } = null!;

    public async Task InitializeAsync() => Host = await HookHost.LoadAsync(Fixtures.Options(Fixtures.Folder("Policy")));

    public async Task DisposeAsync() => await Host.DisposeAsync();
}

public sealed class PolicyTests(PolicyFixture fixture) : IClassFixture<PolicyFixture>
{
    [Theory]
    [InlineData("files.csx", "file system access")]
    [InlineData("processes.csx", "processes and debuggers")]
    [InlineData("network.csx", "network access")]
    [InlineData("threads.csx", "threads")]
    [InlineData("reflection.csx", "reflection")]
    [InlineData("loadcontext.csx", "assembly loading")]
    [InlineData("interop.csx", "interop")]
    [InlineData("unsafe.csx", "unsafe code")]
    [InlineData("dynamic.csx", "'dynamic'")]
    [InlineData("environment.csx", "process control")]
    [InlineData("reference.csx", "'#r'")]
    public void Each_forbidden_api_family_is_refused_at_its_line(string fixtureFile, string what)
    {
        var file = Path.Combine(Fixtures.Folder("Policy"), fixtureFile);
        var expected = Fixtures.Expectations(file);
        var policy = fixture.Host.Diagnostics.Where(d => d.File == file && d.Id.StartsWith("EF1", StringComparison.Ordinal)).ToList();

        expected.Should().NotBeEmpty();
        policy.Select(d => (d.Line, d.Id)).Distinct().Should().BeEquivalentTo(expected, "every marked line, and only those, is refused");
        policy.Should().OnlyContain(d => d.Severity == "error" && d.Message.EndsWith("is not allowed in hooks", StringComparison.Ordinal));
        policy.Should().Contain(d => d.Message.Contains(what, StringComparison.Ordinal));
        fixture.Host.FlowHooks.Should().NotContain(h => h.SourcePath == file, "a refused hook is not loaded");
    }

    [Fact]
    public void Refusals_print_like_compiler_errors_with_file_line_and_column()
    {
        var file = Path.Combine(Fixtures.Folder("Policy"), "files.csx");

        fixture.Host.Diagnostics.Select(d => d.ToString()).Should().Contain(
            $"{file}(6,18): error EF1010: 'System.IO.File.ReadAllText' (file system access) is not allowed in hooks");
    }

    [Fact]
    public void A_hook_using_only_allowed_apis_loads_without_diagnostics()
    {
        var file = Path.Combine(Fixtures.Folder("Policy"), "clean.csx");

        fixture.Host.Diagnostics.Should().NotContain(d => d.File == file);
        fixture.Host.FlowHooks.Should().ContainSingle(h => h.SourcePath == file);
    }

    [Fact]
    public async Task Compiler_errors_name_the_real_file_and_line_including_loaded_files()
    {
        using var hooks = new TempHooks();
        hooks.Write("lib/broken.csx", "static class Helper\n{\n    public static int Value => \"not an int\";\n}\n");
        var main = hooks.Write("main.csx", "#load \"lib/broken.csx\"\n\nList<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param)\n{\n    return Helper.Missing();\n}\n");

        await using var host = await HookHost.LoadAsync(Fixtures.Options(hooks.Path, hooks.Cache));

        var helper = Path.Combine(hooks.Path, "lib", "broken.csx");
        host.Diagnostics.Select(d => d.ToString()).Should().Contain(
            $"{helper}(3,32): error CS0029: Cannot implicitly convert type 'string' to 'int'",
            $"{main}(5,19): error CS0117: 'Helper' does not contain a definition for 'Missing'");
        host.FlowHooks.Should().BeEmpty();
    }

    [Fact]
    public async Task A_hook_method_with_the_wrong_shape_is_reported_with_what_to_write()
    {
        using var hooks = new TempHooks();
        var file = hooks.Write("wrong.csx", "// wrong return type\nstring GetFlowOrchestration(OrchestratorProps param) => \"x\";\n");

        await using var host = await HookHost.LoadAsync(Fixtures.Options(hooks.Path, hooks.Cache));

        host.Diagnostics.Should().ContainSingle().Which.ToString().Should().Be(
            $"{file}(2,8): error EF0002: GetFlowOrchestration must take (OrchestratorProps param) and return List<OrchestratorTune>, IEnumerable<OrchestratorTune> or a Task of one of them");
    }
}
