using EtlFunnel.Sync.State;
using EtlFunnel.Testing.Postgres;

namespace EtlFunnel.Sync.Tests.State;

/// <summary>One writer per checkpoint scope: a second concurrent run on the same folder or (table, scope) is refused with a clear error.</summary>
public sealed class OneWriterTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("etlfunnel-onewriter-");

    public void Dispose() => _dir.Delete(recursive: true);

    [Fact]
    public async Task A_second_run_on_the_same_checkpoint_folder_is_refused_until_the_first_one_closes()
    {
        var options = new SyncOptions { StateDirectory = _dir.FullName };
        var first = await StateStores.OpenAsync(options, CancellationToken.None);

        var second = () => StateStores.OpenAsync(options, CancellationToken.None);

        (await second.Should().ThrowAsync<SyncConfigurationException>()).Which.Message.Should()
            .Contain($"The checkpoint folder {_dir.FullName} is in use by another etlfunnel run or watch").And.Contain("--state");
        await first.DisposeAsync();
        await using var again = await StateStores.OpenAsync(options, CancellationToken.None);
        again.Description.Should().Be(_dir.FullName);
    }

    [Fact]
    public async Task Checkpoints_of_a_locked_folder_still_save_and_load()
    {
        await using var store = await StateStores.OpenAsync(new SyncOptions { StateDirectory = _dir.FullName }, CancellationToken.None);
        var manifest = new RunManifest { RunId = "r1", Fingerprint = "f" };

        await store.SaveManifestAsync(manifest, CancellationToken.None);

        store.LoadManifest()!.RunId.Should().Be("r1");
        File.Exists(Path.Combine(_dir.FullName, "run.json.tmp")).Should().BeFalse();
    }

    [Fact]
    public async Task A_second_run_on_the_same_table_scope_is_refused_naming_the_holder_and_another_scope_is_not()
    {
        var db = await (await PostgresServer.GetAsync()).CreateDatabaseAsync("onewriter");
        SyncOptions Options(string scope) => new() { StateTable = new PostgresStateTable(db) { Scope = scope, ConfiguredAt = "flows.yaml(2,8)" } };
        var first = await StateStores.OpenAsync(Options("eu"), CancellationToken.None);

        var second = () => StateStores.OpenAsync(Options("eu"), CancellationToken.None);

        var refused = (await second.Should().ThrowAsync<SyncConfigurationException>()).Which.Message;
        refused.Should().StartWith("flows.yaml(2,8): scope 'eu' of the checkpoint table").And.Contain("is in use by another etlfunnel run or watch (server process ")
            .And.Contain("etlfunnel-state");
        await using (var other = await StateStores.OpenAsync(Options("us"), CancellationToken.None))
        {
            other.Description.Should().Contain("scope 'us'");
        }

        await first.DisposeAsync();
        await using var again = await StateStores.OpenAsync(Options("eu"), CancellationToken.None);
        again.LoadManifest().Should().BeNull();
    }
}
