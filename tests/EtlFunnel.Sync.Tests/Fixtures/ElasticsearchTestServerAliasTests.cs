using Elastic.Clients.Elasticsearch;
using Elastic.Clients.Elasticsearch.IndexManagement;
using EtlFunnel.Testing.Elasticsearch;

namespace EtlFunnel.Sync.Tests.Fixtures;

/// <summary>Aliases in the Elasticsearch test server, driven only through the official 9.x client.</summary>
public sealed class ElasticsearchTestServerAliasTests
{
    private static IndexUpdateAliasesAction Add(string index, string alias) => new() { Add = new AddAction { Index = index, Alias = alias } };

    private static IndexUpdateAliasesAction Remove(string index, string alias) => new() { Remove = new RemoveAction { Index = index, Alias = alias } };

    private static IndexUpdateAliasesAction RemoveIndex(string index) => new() { RemoveIndex = new RemoveIndexAction { Index = index } };

    private static async Task<ElasticsearchClient> WithIndicesAsync(ElasticsearchTestServer es, params string[] indices)
    {
        var client = es.CreateClient();
        foreach (var index in indices)
        {
            var bulk = await client.BulkAsync(b => b.Index(index).IndexMany(new[] { new { name = index + " 1" }, new { name = index + " 2" } }, (d, _) => d.Id(index + "-doc")).Refresh(Elastic.Clients.Elasticsearch.Refresh.True));
            bulk.Errors.Should().BeFalse(bulk.DebugInformation);
        }

        return client;
    }

    [Fact]
    public async Task A_swap_moves_the_alias_in_one_request_and_reads_go_through_it()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        var client = await WithIndicesAsync(es, "i1", "i2");
        (await client.Indices.UpdateAliasesAsync(new UpdateAliasesRequest { Actions = [Add("i1", "live")] })).IsValidResponse.Should().BeTrue();

        var swap = await client.Indices.UpdateAliasesAsync(new UpdateAliasesRequest { Actions = [Remove("i1", "live"), Add("i2", "live")] });

        swap.IsValidResponse.Should().BeTrue(swap.DebugInformation);
        swap.Acknowledged.Should().BeTrue();
        var aliases = await client.Indices.GetAliasAsync(new GetAliasRequest(Names.Parse("live")));
        aliases.IsValidResponse.Should().BeTrue(aliases.DebugInformation);
        aliases.Aliases!.Keys.Should().Equal("i2");
        (await client.Indices.ExistsAsync("live")).Exists.Should().BeTrue();
        (await client.CountAsync(c => c.Indices("live"))).Count.Should().Be(1);
        var doc = await client.GetAsync<System.Text.Json.JsonElement>("live", "i2-doc");
        doc.Found.Should().BeTrue(doc.DebugInformation);
        doc.Index.Should().Be("i2", "reads through an alias answer with the concrete index");
        var search = await client.SearchAsync<System.Text.Json.JsonElement>(s => s.Indices("live"));
        search.Hits.Should().ContainSingle().Which.Index.Should().Be("i2");
        (await client.Indices.GetAliasAsync(new GetAliasRequest(Indices.Parse("i1")))).Aliases!["i1"].Aliases.Should().BeEmpty();
    }

    [Fact]
    public async Task Alias_actions_are_all_or_nothing()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        var client = await WithIndicesAsync(es, "i1");

        var missing = await client.Indices.UpdateAliasesAsync(new UpdateAliasesRequest { Actions = [Add("i1", "live"), Add("nope", "live")] });

        missing.IsValidResponse.Should().BeFalse();
        missing.ApiCallDetails.HttpStatusCode.Should().Be(404);
        missing.ElasticsearchServerError?.Error?.Type.Should().Be("index_not_found_exception");
        es.AliasTargets("live").Should().BeEmpty("the valid first action was not applied either");
        var unknown = await client.Indices.GetAliasAsync(new GetAliasRequest(Names.Parse("live")));
        unknown.ApiCallDetails.HttpStatusCode.Should().Be(404);

        var removeMissing = await client.Indices.UpdateAliasesAsync(new UpdateAliasesRequest { Actions = [Remove("i1", "live")] });
        removeMissing.ApiCallDetails.HttpStatusCode.Should().Be(404);
        removeMissing.ElasticsearchServerError?.Error?.Type.Should().Be("aliases_not_found_exception");
    }

    [Fact]
    public async Task An_alias_cannot_take_the_name_of_an_index_unless_the_same_request_removes_that_index()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        var client = await WithIndicesAsync(es, "old", "new");

        var clash = await client.Indices.UpdateAliasesAsync(new UpdateAliasesRequest { Actions = [Add("new", "old")] });
        clash.ApiCallDetails.HttpStatusCode.Should().Be(400);
        clash.ElasticsearchServerError?.Error?.Type.Should().Be("invalid_alias_name_exception");
        es.IndexNames.Should().Equal("new", "old");

        var migrate = await client.Indices.UpdateAliasesAsync(new UpdateAliasesRequest { Actions = [Add("new", "old"), RemoveIndex("old")] });

        migrate.IsValidResponse.Should().BeTrue(migrate.DebugInformation);
        es.IndexNames.Should().Equal("new");
        es.AliasTargets("old").Should().Equal("new");
        es.Documents("old").Keys.Should().Equal("new-doc");
    }

    [Fact]
    public async Task Writes_through_an_alias_go_to_its_one_index_and_are_refused_for_several_without_a_write_index()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        var client = await WithIndicesAsync(es, "i1", "i2");
        (await client.Indices.PutAliasAsync("i1", "one")).IsValidResponse.Should().BeTrue();

        var one = await client.BulkAsync(b => b.Index("one").Index(new { name = "x" }, d => d.Id("via-alias")));
        one.Errors.Should().BeFalse(one.DebugInformation);
        one.Items.Single().Index.Should().Be("i1", "the bulk item names the concrete index");
        es.Documents("i1").Should().ContainKey("via-alias");
        es.IndexNames.Should().Equal("i1", "i2");

        (await client.Indices.UpdateAliasesAsync(new UpdateAliasesRequest { Actions = [Add("i1", "both"), Add("i2", "both")] })).IsValidResponse.Should().BeTrue();
        var several = await client.BulkAsync(b => b.Index("both").Index(new { name = "x" }, d => d.Id("nowhere")));

        several.Errors.Should().BeTrue();
        var item = several.Items.Should().ContainSingle().Subject;
        item.Status.Should().Be(400);
        item.Error!.Type.Should().Be("illegal_argument_exception");
        item.Error.Reason.Should().Contain("no write index is defined for alias [both]");
        es.Documents("i1").Should().NotContainKey("nowhere");
        es.Documents("i2").Should().NotContainKey("nowhere");
    }

    [Fact]
    public async Task Indices_cannot_be_created_or_deleted_by_an_alias_name()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        var client = await WithIndicesAsync(es, "i1");
        (await client.Indices.PutAliasAsync("i1", "live")).IsValidResponse.Should().BeTrue();

        var create = await client.Indices.CreateAsync("live");
        create.ApiCallDetails.HttpStatusCode.Should().Be(400);
        create.ElasticsearchServerError?.Error?.Type.Should().Be("invalid_index_name_exception");

        var delete = await client.Indices.DeleteAsync("live");
        delete.ApiCallDetails.HttpStatusCode.Should().Be(400);
        delete.ElasticsearchServerError?.Error?.Type.Should().Be("illegal_argument_exception");

        (await client.Indices.DeleteAsync("i1")).IsValidResponse.Should().BeTrue();
        es.AliasTargets("live").Should().BeEmpty("an alias goes with its index");
        (await client.Indices.ExistsAsync("live")).Exists.Should().BeFalse();
    }
}
