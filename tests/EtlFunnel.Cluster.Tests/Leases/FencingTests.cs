using EtlFunnel.Cluster.Leases;
using EtlFunnel.Cluster.Worker;
using EtlFunnel.Sync;
using EtlFunnel.Sync.State;
using EtlFunnel.Testing.Postgres;
using Npgsql;

namespace EtlFunnel.Cluster.Tests.Leases;

/// <summary>The lease and its fencing epoch against real PostgreSQL: a stale owner can neither checkpoint, renew nor complete.</summary>
public sealed class FencingTests
{
    private static readonly TimeSpan Short = TimeSpan.FromMilliseconds(200);

    private static async Task<(NpgsqlDataSource Data, LeaseStore Leases, string ConnectionString)> CreateAsync()
    {
        var server = await PostgresServer.GetAsync();
        var cs = await server.CreateDatabaseAsync("cluster");
        var settings = new ClusterSettings(cs);
        var data = ClusterData.Open(settings);
        await ClusterSchema.EnsureAsync(data, settings.Server, CancellationToken.None);
        // A second apply is harmless (workers starting together each apply it).
        await ClusterSchema.EnsureAsync(data, settings.Server, CancellationToken.None);
        return (data, new LeaseStore(data), cs);
    }

    private static Task<PostgresStateStore> OpenStoreAsync(string cs, Lease lease) => PostgresStateStore.OpenAsync(
        new PostgresStateTable(cs) { Scope = "default/cluster/shop/items_0", Fence = lease.Fence }, new SyncOptions(), CancellationToken.None);

    private static ReplicaState Checkpoint(long rows) => new() { RowsRead = rows };

    [Fact]
    public async Task A_stale_owners_late_checkpoint_is_refused_and_the_new_owners_is_kept()
    {
        var (data, leases, cs) = await CreateAsync();
        await using var _ = data;
        await leases.CreateAsync("run1", [("shop", "items_0")], CancellationToken.None);
        var key = LeaseStore.KeyOf("run1", "shop", "items_0");

        var first = await leases.TryAcquireAsync(key, "worker-a", Short, CancellationToken.None);
        first.Should().NotBeNull();
        first!.Epoch.Should().Be(1);
        (await leases.TryAcquireAsync(key, "worker-b", Short, CancellationToken.None)).Should().BeNull("the lease of worker-a is still live");

        await using var staleStore = await OpenStoreAsync(cs, first);
        await staleStore.SaveAsync("shop", "items_0", Checkpoint(100), CancellationToken.None);

        // worker-a stops renewing (a pause, a partition); its lease lapses and worker-b takes over with the next epoch.
        await Task.Delay(Short * 2);
        var second = await leases.TryAcquireAsync(key, "worker-b", TimeSpan.FromMinutes(1), CancellationToken.None);
        second.Should().NotBeNull();
        second!.Epoch.Should().Be(2);

        await using var newStore = await OpenStoreAsync(cs, second);
        newStore.Load("shop", "items_0")!.RowsRead.Should().Be(100, "the new owner resumes from the last checkpoint");
        await newStore.SaveAsync("shop", "items_0", Checkpoint(200), CancellationToken.None);

        var late = () => staleStore.SaveAsync("shop", "items_0", Checkpoint(150), CancellationToken.None);
        (await late.Should().ThrowAsync<StaleEpochException>()).Which.Message.Should().Contain("epoch 1 is stale");
        var manifest = () => staleStore.SaveManifestAsync(new RunManifest { RunId = "stale" }, CancellationToken.None);
        await manifest.Should().ThrowAsync<StaleEpochException>();

        (await leases.RenewAsync(first, Short, CancellationToken.None)).Should().BeFalse("a stale owner cannot renew");
        (await leases.CompleteAsync(first, "succeeded", null, null, null, CancellationToken.None)).Should().BeFalse("a stale owner's result is dropped");

        await using (var reread = await OpenStoreAsync(cs, second))
        {
            reread.Load("shop", "items_0")!.RowsRead.Should().Be(200, "the stale write changed nothing");
            reread.LoadManifest().Should().BeNull();
        }

        (await leases.RenewAsync(second, TimeSpan.FromMinutes(1), CancellationToken.None)).Should().BeTrue();
        (await leases.CompleteAsync(second, "succeeded", null, null, null, CancellationToken.None)).Should().BeTrue();
        var rows = await leases.ReadRunAsync("run1", CancellationToken.None);
        rows.Should().ContainSingle().Which.Should().Match<LeaseRow>(r => r.Status == "succeeded" && r.Epoch == 2 && r.Takeovers == 1 && r.Owner == "worker-b");
        (await leases.TryAcquireAsync(key, "worker-c", Short, CancellationToken.None)).Should().BeNull("a finished replica is not run again");
    }

    [Fact]
    public async Task Two_fenced_owners_of_different_replicas_share_a_scope_table_without_the_scope_lock()
    {
        var (data, leases, cs) = await CreateAsync();
        await using var _ = data;
        await leases.CreateAsync("run2", [("shop", "a"), ("shop", "b")], CancellationToken.None);
        var a = await leases.TryAcquireAsync(LeaseStore.KeyOf("run2", "shop", "a"), "w1", TimeSpan.FromMinutes(1), CancellationToken.None);
        var b = await leases.TryAcquireAsync(LeaseStore.KeyOf("run2", "shop", "b"), "w2", TimeSpan.FromMinutes(1), CancellationToken.None);

        // The same scope twice at once: unfenced this is refused (advisory lock); fenced, each owner writes under its own lease.
        await using var storeA = await PostgresStateStore.OpenAsync(new PostgresStateTable(cs) { Scope = "same", Fence = a!.Fence }, new SyncOptions(), CancellationToken.None);
        await using var storeB = await PostgresStateStore.OpenAsync(new PostgresStateTable(cs) { Scope = "same", Fence = b!.Fence }, new SyncOptions(), CancellationToken.None);
        await storeA.SaveAsync("shop", "a", Checkpoint(1), CancellationToken.None);
        await storeB.SaveAsync("shop", "b", Checkpoint(2), CancellationToken.None);

        await using var unfenced = await PostgresStateStore.OpenAsync(new PostgresStateTable(cs) { Scope = "other" }, new SyncOptions(), CancellationToken.None);
        var second = () => PostgresStateStore.OpenAsync(new PostgresStateTable(cs) { Scope = "other" }, new SyncOptions(), CancellationToken.None);
        await second.Should().ThrowAsync<SyncConfigurationException>().WithMessage("*in use by another etlfunnel run*");
    }
}
