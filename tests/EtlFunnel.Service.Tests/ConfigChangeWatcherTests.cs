using System.Text;
using EtlFunnel.Service;
using EtlFunnel.Service.Tests.Support;

namespace EtlFunnel.Service.Tests;

public sealed class ConfigChangeWatcherTests : IDisposable
{
    private const string Loaded = "flows:\n  - name: orders\n    interval: 5m\n";

    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("etlfunnel-config-");
    private readonly ServiceState _state = new(new ManualTimeProvider());
    private readonly CollectingSink _log = new();

    private string ConfigPath => Path.Combine(_dir.FullName, "flows.yaml");

    public void Dispose() => _dir.Delete(recursive: true);

    private ConfigChangeWatcher CreateSut()
    {
        File.WriteAllText(ConfigPath, Loaded);
        return ConfigChangeWatcher.ForCurrentContent(ConfigPath, _state, _log.CreateLogger());
    }

    [Fact]
    public async Task Editing_flows_yaml_says_a_restart_is_needed_and_reverting_it_clears_that()
    {
        using var sut = CreateSut();

        File.WriteAllText(ConfigPath, Loaded.Replace("5m", "1m", StringComparison.Ordinal));
        var changed = await _state.WaitUntilAsync(s => s.RestartNeeded is not null, "the file watcher to notice the edit");

        changed.RestartNeeded.Should().Contain(ConfigPath).And.Contain("changed on disk").And.Contain("Restart etlfunnel watch");
        changed.Health.Healthy.Should().BeTrue("the service keeps running fine on the configuration it loaded");
        _log.Lines.Should().Contain(l => l.StartsWith("Warning: ", StringComparison.Ordinal) && l.Contains("changed on disk", StringComparison.Ordinal));

        File.WriteAllText(ConfigPath, Loaded);
        await _state.WaitUntilAsync(s => s.RestartNeeded is null, "the file watcher to notice the revert");
    }

    [Fact]
    public void Saving_the_same_bytes_again_needs_no_restart()
    {
        using var sut = CreateSut();

        File.WriteAllText(ConfigPath, Loaded);
        sut.Recheck();

        _state.Snapshot.RestartNeeded.Should().BeNull();
    }

    [Fact]
    public void Deleting_flows_yaml_is_reported_once()
    {
        using var sut = CreateSut();

        File.Delete(ConfigPath);
        sut.Recheck();
        sut.Recheck();

        _state.Snapshot.RestartNeeded.Should().Contain("was deleted");
        _log.Lines.Count(l => l.Contains("was deleted", StringComparison.Ordinal)).Should().Be(1);
    }
}
