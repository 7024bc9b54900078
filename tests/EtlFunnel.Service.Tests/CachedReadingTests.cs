using EtlFunnel.Service;
using EtlFunnel.Service.Tests.Support;

namespace EtlFunnel.Service.Tests;

/// <summary>The cluster's status read on request with a short cache: nothing reads while nobody asks; a failure keeps the last view.</summary>
public sealed class CachedReadingTests
{
    private static ClusterView View(int replicas) =>
        new("c1", "db:5432/state", [new ClusterMemberView("w1", "127.0.0.1:1@1", 2, "EU", true, replicas)], 0);

    [Fact]
    public async Task Reads_only_when_asked_and_at_most_once_per_cache_period()
    {
        var time = new ManualTimeProvider();
        var reads = 0;
        using var source = new CachedReading<ClusterView>(_ => Task.FromResult(View(Interlocked.Increment(ref reads))), TimeSpan.FromSeconds(1), time);

        time.Advance(TimeSpan.FromMinutes(5));
        reads.Should().Be(0, "nobody asked");

        (await source.GetAsync(CancellationToken.None)).View!.Members[0].Replicas.Should().Be(1);
        (await Task.WhenAll(Enumerable.Range(0, 5).Select(_ => source.GetAsync(CancellationToken.None)))).Should().OnlyContain(r => r.View!.Members[0].Replicas == 1);
        reads.Should().Be(1, "within the cache period every request shares the reading");

        time.Advance(TimeSpan.FromSeconds(1));
        (await source.GetAsync(CancellationToken.None)).View!.Members[0].Replicas.Should().Be(2);
        reads.Should().Be(2);
    }

    [Fact]
    public async Task A_failed_read_keeps_the_last_view_and_says_why_until_a_read_works_again()
    {
        var time = new ManualTimeProvider();
        var fail = false;
        using var source = new CachedReading<ClusterView>(
            _ => fail ? throw new InvalidOperationException("cannot reach the cluster's state database") : Task.FromResult(View(3)), TimeSpan.FromSeconds(1), time);
        (await source.GetAsync(CancellationToken.None)).Error.Should().BeNull();

        fail = true;
        time.Advance(TimeSpan.FromSeconds(2));
        var failed = await source.GetAsync(CancellationToken.None);
        failed.Error.Should().Contain("cannot reach");
        failed.View!.Members[0].Replicas.Should().Be(3, "the last good view stays");

        fail = false;
        time.Advance(TimeSpan.FromSeconds(2));
        (await source.GetAsync(CancellationToken.None)).Error.Should().BeNull();
    }
}
