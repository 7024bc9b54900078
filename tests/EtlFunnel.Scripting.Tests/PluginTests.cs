using EtlFunnel.Scripting.Tests.Support;

namespace EtlFunnel.Scripting.Tests;

public sealed class PluginTests
{
    [Fact]
    public async Task A_plugin_is_loaded_invoked_replaced_on_disk_and_the_new_version_answers()
    {
        using var hooks = new TempHooks();
        var dll = TestPlugins.Deploy("CpuFlowPlugin", hooks.Path);
        await using var host = await HookHost.LoadAsync(Fixtures.Options(hooks.Path, hooks.Cache));

        host.Diagnostics.Should().BeEmpty();
        var v1 = host.FlowHooks.Should().ContainSingle().Subject;
        v1.Name.Should().Be("CpuFlowPlugin.dll:CpuFlowPlugin.CpuFlows");
        v1.SourcePath.Should().Be(dll);
        (await v1.InvokeAsync(Props.Of(2, Props.Entity("catalog")))).Select(t => t.NewEntityName).Should().Equal("catalog_v1_core_0", "catalog_v1_core_1");

        TestPlugins.Deploy("CpuFlowPlugin.V2", hooks.Path);
        var reload = await host.ReloadAsync();

        reload.Succeeded.Should().BeTrue();
        reload.ChangedFiles.Should().Equal(dll);
        var v2 = host.FlowHooks.Should().ContainSingle().Subject;
        (await v2.InvokeAsync(Props.Of(2, Props.Entity("catalog")))).Select(t => t.NewEntityName).Should().Equal("catalog_v2_core_0", "catalog_v2_core_1");
    }

    [Fact]
    public async Task Contract_types_are_shared_so_plugin_tunes_are_the_hosts_types()
    {
        using var hooks = new TempHooks();
        TestPlugins.Deploy("CpuFlowPlugin", hooks.Path);
        await using var host = await HookHost.LoadAsync(Fixtures.Options(hooks.Path, hooks.Cache));

        var tune = (await host.FlowHooks[0].InvokeAsync(Props.Of(1, Props.Entity("a")))).Single();

        tune.GetType().Should().BeSameAs(typeof(Execution.Models.OrchestratorTune));
        tune.ReplicaProps.Should().ContainKey(Execution.Models.ReplicaPropKeys.TotalReplicas).WhoseValue.Should().Be(1);
    }

    [Fact]
    public async Task A_plugin_exception_reports_the_plugins_source_file_and_line()
    {
        using var hooks = new TempHooks();
        TestPlugins.Deploy("CpuFlowPlugin", hooks.Path);
        await using var host = await HookHost.LoadAsync(Fixtures.Options(hooks.Path, hooks.Cache));

        var act = () => host.FlowHooks[0].InvokeAsync(Props.Of(1, Props.Entity("explode")));

        var failure = (await act.Should().ThrowAsync<HookInvocationException>()).Which;
        failure.HookName.Should().Be("CpuFlowPlugin.dll:CpuFlowPlugin.CpuFlows");
        failure.File.Should().EndWith(Path.Combine("CpuFlowPlugin", "CpuFlows.cs"));
        failure.Line.Should().Be(21);
        failure.InnerException.Should().BeOfType<HookWorkerException>().Which.TypeName.Should().Be(typeof(InvalidOperationException).FullName);
    }

    [Fact]
    public async Task A_plugin_using_a_forbidden_api_is_refused_with_the_api_named()
    {
        using var hooks = new TempHooks();
        var dll = TestPlugins.Deploy("FileReadingPlugin", hooks.Path);
        await using var host = await HookHost.LoadAsync(Fixtures.Options(hooks.Path, hooks.Cache));

        host.PipelineHooks.Should().BeEmpty();
        host.Diagnostics.Select(d => d.ToString()).Should().Contain(
            $"{dll}(1,1): error EF1010: 'System.IO.File.ReadAllText' (file system access) is not allowed in hooks; plugin 'FileReadingPlugin' is refused (add \"FileReadingPlugin\" to TrustedPlugins only if you trust it)");
    }

    [Fact]
    public async Task A_trusted_plugin_may_use_forbidden_apis()
    {
        using var hooks = new TempHooks();
        TestPlugins.Deploy("FileReadingPlugin", hooks.Path);
        await using var host = await HookHost.LoadAsync(Fixtures.Options(hooks.Path, hooks.Cache) with { TrustedPlugins = ["FileReadingPlugin"] });

        host.Diagnostics.Should().BeEmpty();
        var tunes = await host.PipelineHooks.Should().ContainSingle().Subject.InvokeAsync(Props.Of(1, Props.Entity("public.t")));
        tunes.Should().HaveCount(2);
    }
}
