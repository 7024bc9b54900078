using System.Globalization;
using EtlFunnel.Destinations;
using EtlFunnel.Sync.Tests.Support;
using EtlFunnel.Testing.Elasticsearch;

namespace EtlFunnel.Sync.Tests;

/// <summary>Full runs into Elasticsearch write a physical index of the run and swap the alias to it, so deleted rows leave.</summary>
public sealed class ElasticsearchAliasSwapTests
{
    private const string Items =
        "CREATE TABLE items(id int PRIMARY KEY, name text, changed timestamptz NOT NULL DEFAULT '2024-01-01'); " +
        "INSERT INTO items(id, name) SELECT g, 'item ' || g FROM generate_series(1, 3000) g;";

    private static readonly Dictionary<string, object?> SmallBatches = new() { ["batch_size"] = 300, ["max_in_flight"] = 2 };

    private static HashSet<string> Ids(IEnumerable<int> ids) => [.. ids.Select(i => i.ToString(CultureInfo.InvariantCulture))];

    [Fact]
    public async Task A_second_full_run_leaves_only_the_remaining_rows_behind_the_alias_and_deletes_the_old_index()
    {
        await using var bed = await SyncTestBed.CreateAsync("esswap", Items);
        await using var es = await ElasticsearchTestServer.StartAsync();
        var job = bed.Job("items", 1, 2, destination: new ElasticsearchDestination(es.Uri), props: SmallBatches);

        (await new SyncEngine().RunAsync(job)).Outcome.Should().Be(SyncOutcome.Succeeded);
        var first = es.AliasTargets("idx").Should().ContainSingle().Subject;
        first.Should().StartWith("idx-");
        es.Documents("idx").Should().HaveCount(3000);

        await bed.ExecuteAsync("DELETE FROM items WHERE id % 3 = 0 OR id > 2900;");
        var second = await new SyncEngine().RunAsync(job);

        second.Outcome.Should().Be(SyncOutcome.Succeeded);
        var now = es.AliasTargets("idx").Should().ContainSingle().Subject;
        now.Should().NotBe(first);
        es.IndexNames.Should().Equal(now);
        var expected = Ids(Enumerable.Range(1, 2900).Where(i => i % 3 != 0));
        es.Documents("idx").Keys.ToHashSet().SetEquals(expected).Should().BeTrue("exactly the remaining rows are documents");

        var count = await es.CreateClient().CountAsync(c => c.Indices("idx"));
        count.Count.Should().Be(expected.Count, "a count through the alias sees the new index");
    }

    [Fact]
    public async Task A_failed_full_run_leaves_the_alias_on_the_previous_complete_index_and_its_rerun_swaps()
    {
        await using var bed = await SyncTestBed.CreateAsync("esswapfail", Items);
        await using var es = await ElasticsearchTestServer.StartAsync();
        var job = bed.Job("items", 1, 2, bed.Options() with { MaxBulkRetries = 1 }, new ElasticsearchDestination(es.Uri), props: SmallBatches);
        (await new SyncEngine().RunAsync(job)).Outcome.Should().Be(SyncOutcome.Succeeded);
        var first = es.AliasTargets("idx").Single();

        await bed.ExecuteAsync("DELETE FROM items WHERE id <= 1000;");
        es.Faults.FailNextBulkCalls(1000, 503);
        var failed = await new SyncEngine().RunAsync(job);

        failed.Outcome.Should().Be(SyncOutcome.Failed);
        es.AliasTargets("idx").Should().Equal(first);
        es.Documents("idx").Should().HaveCount(3000, "readers keep the previous complete index");
        var partial = es.IndexNames.Should().HaveCount(2).And.Subject.Single(n => n != first);

        es.Faults.Clear();
        var rerun = await new SyncEngine().RunAsync(job);
        rerun.Outcome.Should().Be(SyncOutcome.Succeeded);
        rerun.Replicas.Should().OnlyContain(r => r.Resumed);
        es.AliasTargets("idx").Should().Equal(partial);
        es.IndexNames.Should().Equal(partial);
        es.Documents("idx").Keys.ToHashSet().SetEquals(Ids(Enumerable.Range(1001, 2000))).Should().BeTrue();
    }

    [Fact]
    public async Task A_concrete_index_of_an_earlier_version_is_replaced_by_the_alias_in_one_request_keeping_its_mappings()
    {
        await using var bed = await SyncTestBed.CreateAsync("esswapmig", Items);
        await using var es = await ElasticsearchTestServer.StartAsync();
        var client = es.CreateClient();
        var created = await client.Indices.CreateAsync("idx", c => c.Mappings(m => m.Properties(new Elastic.Clients.Elasticsearch.Mapping.Properties { ["name"] = new Elastic.Clients.Elasticsearch.Mapping.KeywordProperty() })));
        created.IsValidResponse.Should().BeTrue(created.DebugInformation);
        (await client.IndexAsync(new { name = "deleted long ago" }, i => i.Index("idx").Id("999999"))).IsValidResponse.Should().BeTrue();
        es.IndexNames.Should().Equal("idx");

        var report = await new SyncEngine().RunAsync(bed.Job("items", 1, 1, destination: new ElasticsearchDestination(es.Uri), props: SmallBatches));

        report.Outcome.Should().Be(SyncOutcome.Succeeded);
        var physical = es.AliasTargets("idx").Should().ContainSingle().Subject;
        es.IndexNames.Should().Equal(physical);
        es.Documents("idx").Should().HaveCount(3000).And.NotContainKey("999999");
        es.Requests.Count(r => r.Method == "POST" && r.Path == "/_aliases").Should().Be(1);
        using var mappings = System.Text.Json.JsonDocument.Parse(es.Mappings("idx"));
        mappings.RootElement.GetProperty("properties").GetProperty("name").GetProperty("type").GetString().Should().Be("keyword", "the new index takes the mappings of the one it replaces");
    }

    [Fact]
    public async Task An_incremental_run_after_a_full_run_writes_into_the_aliased_index()
    {
        await using var bed = await SyncTestBed.CreateAsync("esswapinc", Items);
        await using var es = await ElasticsearchTestServer.StartAsync();
        var destination = new ElasticsearchDestination(es.Uri);
        (await new SyncEngine().RunAsync(bed.Job("items", 1, 1, destination: destination, incremental: "changed", props: SmallBatches))).Outcome.Should().Be(SyncOutcome.Succeeded);
        var physical = es.AliasTargets("idx").Single();
        var swaps = es.Requests.Count(r => r.Path == "/_aliases");

        await bed.ExecuteAsync("INSERT INTO items(id, name, changed) VALUES (5000, 'new', '2024-06-01'); UPDATE items SET name = 'renamed', changed = '2024-06-01' WHERE id = 7;");
        var incremental = await new SyncEngine().RunAsync(bed.Job("items", 1, 1, bed.Options(SyncMode.Incremental), destination, incremental: "changed", props: SmallBatches));

        incremental.Outcome.Should().Be(SyncOutcome.Succeeded);
        es.AliasTargets("idx").Should().Equal(physical);
        es.IndexNames.Should().Equal(physical);
        var docs = es.Documents(physical);
        docs.Should().HaveCount(3001);
        docs["7"].Should().Contain("renamed");
        es.Requests.Count(r => r.Path == "/_aliases").Should().Be(swaps, "incremental runs do not swap");
    }
}
