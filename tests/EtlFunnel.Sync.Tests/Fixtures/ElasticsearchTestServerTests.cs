using System.Text.Json;
using Elastic.Clients.Elasticsearch;
using Elastic.Clients.Elasticsearch.Core.Bulk;
using Elastic.Clients.Elasticsearch.QueryDsl;
using Elastic.Transport;
using EtlFunnel.Testing.Elasticsearch;

namespace EtlFunnel.Sync.Tests.Fixtures;

/// <summary>The Elasticsearch test server, driven only through the official 9.x client.</summary>
public sealed class ElasticsearchTestServerTests
{
    private static List<Product> Products(int count, int start = 1) =>
        [.. Enumerable.Range(start, count).Select(i => new Product(i, $"product {i}", i * 1.5m))];

    [Fact]
    public async Task Cluster_info_passes_the_clients_product_check()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        var client = es.CreateClient();

        var info = await client.InfoAsync();

        info.IsValidResponse.Should().BeTrue(info.DebugInformation);
        info.Version.Number.Should().StartWith("9.");
        info.Tagline.Should().Be("You Know, for Search");
        info.ClusterName.Should().Be("etlfunnel-test");
        es.Requests.Should().ContainSingle().Which.Should().Be(new RecordedRequest("GET", "/", 200, null, null));
    }

    [Fact]
    public async Task Responses_come_in_the_compatible_media_type_the_client_asked_for()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        var client = es.CreateClient(s => s.DisableDirectStreaming());

        var info = await client.InfoAsync();

        var contentType = System.Net.Http.Headers.MediaTypeHeaderValue.Parse(info.ApiCallDetails.ResponseContentType);
        contentType.MediaType.Should().Be("application/vnd.elasticsearch+json");
        contentType.Parameters.Should().ContainSingle(p => p.Name == "compatible-with" && p.Value == "9");
    }

    [Fact]
    public async Task Index_is_created_exists_reports_its_mapping_and_refuses_a_second_create()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        var client = es.CreateClient();

        var created = await client.Indices.CreateAsync<Product>("products", c => c
            .Settings(s => s.NumberOfShards(1).RefreshInterval("-1"))
            .Mappings(m => m.Properties(p => p.Keyword(x => x.Name).IntegerNumber(x => x.Id))));
        created.IsValidResponse.Should().BeTrue(created.DebugInformation);
        created.Acknowledged.Should().BeTrue();

        (await client.Indices.ExistsAsync("products")).Exists.Should().BeTrue();
        (await client.Indices.ExistsAsync("absent")).Exists.Should().BeFalse();

        var mapping = await client.Indices.GetMappingAsync(new Elastic.Clients.Elasticsearch.IndexManagement.GetMappingRequest("products"));
        mapping.IsValidResponse.Should().BeTrue(mapping.DebugInformation);
        var properties = mapping.Mappings["products"].Mappings.Properties!;
        properties.Should().ContainKey("name");
        properties["name"].Type.Should().Be("keyword");
        properties["id"].Type.Should().Be("integer");
        JsonDocument.Parse(es.Settings("products")).RootElement.GetProperty("refresh_interval").GetString().Should().Be("-1");

        var again = await client.Indices.CreateAsync("products");
        again.IsValidResponse.Should().BeFalse();
        again.ApiCallDetails.HttpStatusCode.Should().Be(400);
        again.ElasticsearchServerError?.Error?.Type.Should().Be("resource_already_exists_exception");

        var invalid = await client.Indices.CreateAsync("Upper");
        invalid.ElasticsearchServerError?.Error?.Type.Should().Be("invalid_index_name_exception");

        (await client.Indices.DeleteAsync("products")).Acknowledged.Should().BeTrue();
        (await client.Indices.ExistsAsync("products")).Exists.Should().BeFalse();
        var deleteMissing = await client.Indices.DeleteAsync("products");
        deleteMissing.ApiCallDetails.HttpStatusCode.Should().Be(404);
        deleteMissing.ElasticsearchServerError?.Error?.Type.Should().Be("index_not_found_exception");
    }

    [Fact]
    public async Task Bulk_of_a_thousand_documents_is_counted_got_and_paged_through()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        var client = es.CreateClient();
        var products = Products(1000);

        var bulk = await client.BulkAsync(b => b.Index("products").IndexMany(products));

        bulk.IsValidResponse.Should().BeTrue(bulk.DebugInformation);
        bulk.Errors.Should().BeFalse();
        bulk.Items.Should().HaveCount(1000).And.OnlyContain(i => i.Status == 201 && i.Result == "created" && i.Version == 1 && i.Index == "products");
        bulk.Items.Select(i => i.Id).Should().Equal(products.Select(p => p.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        es.IndexNames.Should().Equal("products");
        es.BulkRequestCount.Should().Be(1);

        (await client.Indices.RefreshAsync("products")).IsValidResponse.Should().BeTrue();
        (await client.CountAsync(c => c.Indices("products"))).Count.Should().Be(1000);

        var got = await client.GetAsync<Product>("products", "17");
        got.Found.Should().BeTrue();
        got.Source.Should().Be(products[16]);
        got.Version.Should().Be(1);
        var missing = await client.GetAsync<Product>("products", "5000");
        missing.Found.Should().BeFalse();
        missing.ApiCallDetails.HttpStatusCode.Should().Be(404);

        var byIds = await client.SearchAsync<Product>(s => s.Indices("products").Query(q => q.Ids(i => i.Values(new Ids(["3", "500", "999", "4242"])))));
        byIds.IsValidResponse.Should().BeTrue(byIds.DebugInformation);
        byIds.Total.Should().Be(3);
        byIds.Hits.Select(h => h.Source!.Id).Should().BeEquivalentTo([3, 500, 999]);

        var seen = new List<int>();
        for (var from = 0; ; from += 150)
        {
            var page = await client.SearchAsync<Product>(s => s.Indices("products").From(from).Size(150).Query(q => q.MatchAll()).Sort(o => o.Doc()));
            page.IsValidResponse.Should().BeTrue(page.DebugInformation);
            page.HitsMetadata.Total!.Match(t => t!.Value, l => l).Should().Be(1000);
            if (page.Documents.Count == 0)
            {
                break;
            }

            seen.AddRange(page.Documents.Select(d => d.Id));
        }

        seen.Should().Equal(Enumerable.Range(1, 1000), "paging by index order visits every document once, in the order indexed");

        var reindex = await client.BulkAsync(b => b.Index("products").IndexMany(products.Take(10)));
        reindex.Items.Should().OnlyContain(i => i.Status == 200 && i.Result == "updated" && i.Version == 2);
        es.Documents("products").Should().HaveCount(1000);
        es.VersionOf("products", "1").Should().Be(2);
    }

    [Fact]
    public async Task Bulk_create_delete_and_partial_update_have_elasticsearch_item_semantics()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        var client = es.CreateClient();
        (await client.BulkAsync(b => b.Index("products").CreateMany(Products(3)))).Errors.Should().BeFalse();

        var request = new BulkRequest("products")
        {
            Operations =
            [
                new BulkCreateOperation<Product>(new Product(1, "again", 0)),
                new BulkDeleteOperation<Product>("2"),
                new BulkDeleteOperation<Product>("77"),
                new BulkUpdateOperation<Product, object>("3") { Doc = new { name = "renamed" } },
                new BulkUpdateOperation<Product, object>("88") { Doc = new { name = "nobody" } },
            ],
        };
        var bulk = await client.BulkAsync(request);

        bulk.IsValidResponse.Should().BeFalse("a bulk with failed items is not a valid response");
        bulk.Errors.Should().BeTrue();
        bulk.Items.Select(i => (i.Operation, i.Id, i.Status, i.Result, i.Error?.Type)).Should().Equal(
            ("create", "1", 409, null, "version_conflict_engine_exception"),
            ("delete", "2", 200, "deleted", null),
            ("delete", "77", 404, "not_found", null),
            ("update", "3", 200, "updated", null),
            ("update", "88", 404, null, "document_missing_exception"));
        bulk.ItemsWithErrors.Select(i => i.Id).Should().BeEquivalentTo(["1", "88"]);

        var docs = es.Documents("products");
        docs.Keys.Should().BeEquivalentTo(["1", "3"]);
        JsonDocument.Parse(docs["3"]).RootElement.GetProperty("name").GetString().Should().Be("renamed");
        JsonDocument.Parse(docs["3"]).RootElement.GetProperty("price").GetDecimal().Should().Be(4.5m, "a partial update keeps the fields it does not name");
        es.VersionOf("products", "3").Should().Be(2);
    }

    [Fact]
    public async Task Default_client_gzips_its_ndjson_bulk_body_and_the_server_indexes_it()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        var client = es.CreateClient();

        var bulk = await client.BulkAsync(b => b.Index("products").IndexMany(Products(200)));

        bulk.IsValidResponse.Should().BeTrue(bulk.DebugInformation);
        var request = es.Requests.Should().ContainSingle(r => r.Path == "/products/_bulk").Subject;
        request.ContentEncoding.Should().Be("gzip", "client 9.x compresses request bodies by default");
        request.ContentType.Should().Be("application/x-ndjson");
        es.Documents("products").Should().HaveCount(200);
        JsonDocument.Parse(es.Documents("products")["200"]).RootElement.GetProperty("name").GetString().Should().Be("product 200");
    }

    [Fact]
    public async Task Uncompressed_bulk_is_indexed_too()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        var client = es.CreateClient(s => s.EnableHttpCompression(false));

        var bulk = await client.BulkAsync(b => b.Index("products").IndexMany(Products(20)));

        bulk.IsValidResponse.Should().BeTrue(bulk.DebugInformation);
        es.Requests.Should().ContainSingle(r => r.Path == "/products/_bulk").Which.ContentEncoding.Should().BeNull();
        es.Documents("products").Should().HaveCount(20);
    }

    [Fact]
    public async Task Injected_429_fails_the_bulk_then_the_retry_succeeds()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        var client = es.CreateClient();
        es.Faults.FailNextBulkCalls(1, 429);
        var products = Products(20);

        var rejected = await client.BulkAsync(b => b.Index("products").IndexMany(products));

        rejected.IsValidResponse.Should().BeFalse();
        rejected.ApiCallDetails.HttpStatusCode.Should().Be(429);
        rejected.ElasticsearchServerError?.Error?.Type.Should().Be("es_rejected_execution_exception");
        es.IndexNames.Should().BeEmpty("a rejected bulk applies nothing");

        var retried = await client.BulkAsync(b => b.Index("products").IndexMany(products));

        retried.IsValidResponse.Should().BeTrue(retried.DebugInformation);
        es.Documents("products").Should().HaveCount(20);
        es.Faults.Injected429.Should().Be(1);
        es.BulkRequestCount.Should().Be(2, "the client does not retry a 429 on its own against a single node");
    }

    [Fact]
    public async Task A_share_of_bulk_calls_fails_with_503_in_the_same_calls_for_the_same_seed()
    {
        async Task<List<int>> FailedCalls(int seed)
        {
            await using var es = await ElasticsearchTestServer.StartAsync();
            var client = es.CreateClient();
            es.Faults.FailShareOfBulkCalls(0.3, 503, seed);
            var failed = new List<int>();
            for (var call = 0; call < 40; call++)
            {
                var bulk = await client.BulkAsync(b => b.Index("products").IndexMany(Products(1, start: call)));
                if (!bulk.IsValidResponse)
                {
                    bulk.ApiCallDetails.HttpStatusCode.Should().Be(503);
                    failed.Add(call);
                }
            }

            es.Faults.Injected503.Should().Be(failed.Count);
            es.Documents("products").Should().HaveCount(40 - failed.Count);
            return failed;
        }

        var first = await FailedCalls(seed: 7);
        var second = await FailedCalls(seed: 7);
        var other = await FailedCalls(seed: 8);

        first.Should().Equal(second);
        first.Count.Should().BeInRange(4, 20, "about 30% of 40 calls fail");
        other.Should().NotEqual(first);
    }

    [Fact]
    public async Task Per_item_rejection_fails_exactly_the_listed_ids_and_indexes_the_rest()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        var client = es.CreateClient();
        es.Faults.RejectDocuments("3", "7");
        es.Faults.RejectDocumentsWhere((_, source) => source.GetProperty("id").GetInt32() == 9);

        var bulk = await client.BulkAsync(b => b.Index("products").IndexMany(Products(10)));

        bulk.Errors.Should().BeTrue();
        bulk.ItemsWithErrors.Select(i => i.Id).Should().BeEquivalentTo(["3", "7", "9"]);
        bulk.ItemsWithErrors.Should().OnlyContain(i => i.Status == 400 && i.Error!.Type == "document_parsing_exception" && i.Error.Reason!.Contains(i.Id!));
        bulk.Items.Where(i => i.Error is null).Should().HaveCount(7).And.OnlyContain(i => i.Status == 201);
        es.Documents("products").Keys.Should().BeEquivalentTo(["1", "2", "4", "5", "6", "8", "10"]);
        es.Faults.RejectedItems.Should().Be(3);
    }

    [Fact]
    public async Task Transient_item_failures_hit_only_the_next_items()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        var client = es.CreateClient();
        es.Faults.FailNextItems(2);

        var bulk = await client.BulkAsync(b => b.Index("products").IndexMany(Products(5)));

        bulk.ItemsWithErrors.Select(i => (i.Id, i.Status, i.Error!.Type)).Should().Equal(
            ("1", 429, "es_rejected_execution_exception"),
            ("2", 429, "es_rejected_execution_exception"));
        var retry = await client.BulkAsync(b => b.Index("products").IndexMany(Products(2)));
        retry.Errors.Should().BeFalse();
        es.Documents("products").Should().HaveCount(5);
        es.Faults.TransientItemFailures.Should().Be(2);
    }

    [Fact]
    public async Task Dropped_connection_surfaces_as_a_transport_failure_and_applies_nothing()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        var client = es.CreateClient();
        (await client.Indices.CreateAsync("products")).IsValidResponse.Should().BeTrue();
        es.Faults.DropNextBulkConnections(1);

        var dropped = await client.BulkAsync(b => b.Index("products").IndexMany(Products(10)));

        dropped.IsValidResponse.Should().BeFalse();
        dropped.ApiCallDetails.HttpStatusCode.Should().BeNull("no complete HTTP response arrived");
        dropped.ApiCallDetails.OriginalException.Should().NotBeNull();
        es.Documents("products").Should().BeEmpty();

        var next = await client.BulkAsync(b => b.Index("products").IndexMany(Products(10)));
        next.IsValidResponse.Should().BeTrue(next.DebugInformation);
        es.Documents("products").Should().HaveCount(10);
        es.Faults.DroppedConnections.Should().Be(1);
        es.BulkRequestCount.Should().Be(2, "the dropped call reached the server exactly once");
    }

    [Fact]
    public async Task Connection_dropped_after_applying_leaves_the_documents_indexed_though_the_client_failed()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        var client = es.CreateClient(s => s.ThrowExceptions());
        es.Faults.DropNextBulkConnections(1, DroppedConnectionMode.AfterApplying);

        var call = () => client.BulkAsync(b => b.Index("products").IndexMany(Products(10)));

        await call.Should().ThrowAsync<TransportException>();
        es.Documents("products").Should().HaveCount(10);
        es.Requests.Single(r => r.Path == "/products/_bulk").Status.Should().Be(0);
    }

    [Fact]
    public async Task Search_and_count_see_only_refreshed_documents_when_refresh_is_required()
    {
        await using var es = await ElasticsearchTestServer.StartAsync(new ElasticsearchTestServerOptions { SearchRequiresRefresh = true });
        var client = es.CreateClient();

        (await client.BulkAsync(b => b.Index("products").IndexMany(Products(5)))).Errors.Should().BeFalse();

        (await client.CountAsync(c => c.Indices("products"))).Count.Should().Be(0);
        (await client.GetAsync<Product>("products", "5")).Found.Should().BeTrue("get is real-time");
        await client.Indices.RefreshAsync("products");
        (await client.CountAsync(c => c.Indices("products"))).Count.Should().Be(5);
        es.RefreshCount("products").Should().Be(1);
    }

    [Fact]
    public async Task Unknown_endpoints_and_missing_indices_answer_in_elasticsearch_error_shape()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        var client = es.CreateClient();

        var unknown = await client.Transport.GetAsync<StringResponse>("/_nonsense");
        unknown.ApiCallDetails.HttpStatusCode.Should().Be(400);
        using (var body = JsonDocument.Parse(unknown.Body))
        {
            body.RootElement.GetProperty("error").GetProperty("type").GetString().Should().Be("illegal_argument_exception");
            body.RootElement.GetProperty("error").GetProperty("reason").GetString().Should().Contain("no handler found for uri [/_nonsense]");
            body.RootElement.GetProperty("status").GetInt32().Should().Be(400);
        }

        var search = await client.SearchAsync<Product>(s => s.Indices("absent"));
        search.ApiCallDetails.HttpStatusCode.Should().Be(404);
        search.ElasticsearchServerError?.Error?.Type.Should().Be("index_not_found_exception");

        var unsupported = await client.SearchAsync<Product>(s => s.Indices("absent").Query(q => q.Match(m => m.Field(p => p.Name).Query("x"))));
        unsupported.ApiCallDetails.HttpStatusCode.Should().Be(400);
        unsupported.ElasticsearchServerError?.Error?.Reason.Should().Contain("supports only match_all");
    }

    [Fact]
    public async Task Endpoint_from_environment_reads_back_documents_through_the_client()
    {
        await using var endpoint = await ElasticsearchEndpoint.FromEnvironmentOrStartAsync();
        var index = ElasticsearchEndpoint.UniqueIndexName("endpoint");

        var bulk = await endpoint.Client.BulkAsync(b => b.Index(index).IndexMany(Products(5)));

        bulk.Errors.Should().BeFalse(bulk.DebugInformation);
        endpoint.IsRealCluster.Should().Be(!string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable(ElasticsearchEndpoint.EnvironmentVariable)));
        (await endpoint.CountAsync(index)).Should().Be(5);
        var docs = await endpoint.DocumentsAsync(index);
        docs.Keys.Should().BeEquivalentTo(["1", "2", "3", "4", "5"]);
        JsonSerializer.Deserialize<Product>(docs["4"], JsonSerializerOptions.Web).Should().Be(new Product(4, "product 4", 6m));
        await endpoint.Client.Indices.DeleteAsync(index);
    }

    [Fact]
    public async Task Endpoint_connected_to_an_existing_cluster_reads_through_the_client_and_has_no_faults()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        var url = new UriBuilder(es.Uri) { UserName = "elastic", Password = "secret" }.Uri.ToString();

        await using var endpoint = await ElasticsearchEndpoint.ConnectAsync(url);

        endpoint.IsRealCluster.Should().BeTrue();
        endpoint.Uri.Should().Be(es.Uri, "credentials do not stay in the address");
        endpoint.Invoking(e => e.Faults).Should().Throw<InvalidOperationException>().WithMessage("*ETLFUNNEL_TEST_ES*");
        (await endpoint.Client.BulkAsync(b => b.Index("products").IndexMany(Products(3)))).Errors.Should().BeFalse();
        (await endpoint.DocumentsAsync("products")).Keys.Should().BeEquivalentTo(["1", "2", "3"]);
    }

    [Fact]
    public async Task Endpoint_refuses_a_malformed_url_and_says_what_to_set()
    {
        var connect = () => ElasticsearchEndpoint.ConnectAsync("localhost 9200");

        await connect.Should().ThrowAsync<InvalidOperationException>().WithMessage("*not an http(s) URL*http://localhost:9200*");
    }

    [Fact]
    public async Task Endpoint_names_the_url_when_nothing_answers_there()
    {
        // Port 1 on loopback is closed on any test machine, so the connection is refused at once.
        var connect = () => ElasticsearchEndpoint.ConnectAsync("http://127.0.0.1:1");

        await connect.Should().ThrowAsync<InvalidOperationException>().WithMessage("http://127.0.0.1:1/ (ETLFUNNEL_TEST_ES) does not answer as Elasticsearch*unset ETLFUNNEL_TEST_ES*");
    }

    [Fact]
    public async Task Concurrent_bulks_into_one_index_lose_no_document()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        var client = es.CreateClient();

        var bulks = await Task.WhenAll(Enumerable.Range(0, 8).Select(batch =>
            client.BulkAsync(b => b.Index("products").IndexMany(Products(100, start: (batch * 100) + 1)))));

        bulks.Should().OnlyContain(b => b.IsValidResponse && !b.Errors);
        es.BulkRequestCount.Should().Be(8);
        (await client.CountAsync(c => c.Indices("products"))).Count.Should().Be(800);
        var seqNos = bulks.SelectMany(b => b.Items).Select(i => i.SeqNo).ToList();
        seqNos.Should().OnlyHaveUniqueItems().And.HaveCount(800);
    }

    [Fact]
    public async Task Single_document_apis_index_create_and_delete_with_versions()
    {
        await using var es = await ElasticsearchTestServer.StartAsync(new ElasticsearchTestServerOptions { SearchRequiresRefresh = true });
        var client = es.CreateClient();

        var indexed = await client.IndexAsync(new Product(1, "first", 1m), i => i.Index("products").Id("1").Refresh(Refresh.True));
        indexed.Result.Should().Be(Result.Created);
        indexed.Version.Should().Be(1);
        (await client.CountAsync(c => c.Indices("products"))).Count.Should().Be(1, "?refresh=true made the write searchable");

        var replaced = await client.IndexAsync(new Product(1, "second", 2m), i => i.Index("products").Id("1"));
        replaced.Result.Should().Be(Result.Updated);
        replaced.Version.Should().Be(2);

        var conflict = await client.CreateAsync(new Product(1, "third", 3m), "products", "1");
        conflict.ApiCallDetails.HttpStatusCode.Should().Be(409);
        conflict.ElasticsearchServerError?.Error?.Type.Should().Be("version_conflict_engine_exception");
        (await client.GetAsync<Product>("products", "1")).Source!.Name.Should().Be("second");

        (await client.DeleteAsync("products", "1")).Result.Should().Be(Result.Deleted);
        var deletedAgain = await client.DeleteAsync("products", "1");
        deletedAgain.ApiCallDetails.HttpStatusCode.Should().Be(404);
        deletedAgain.Result.Should().Be(Result.NotFound);
        es.Documents("products").Should().BeEmpty();
        es.RefreshCount("products").Should().Be(1);
    }

    [Fact]
    public async Task Search_honours_descending_doc_order_and_source_filtering_and_refuses_what_elasticsearch_refuses()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        var client = es.CreateClient();
        (await client.BulkAsync(b => b.Index("products").IndexMany(Products(5)))).Errors.Should().BeFalse();

        var newest = await client.SearchAsync<Product>(new SearchRequest("products")
        {
            Sort = [new SortOptions { Doc = new ScoreSort { Order = SortOrder.Desc } }],
            Size = 2,
            Source = new Elastic.Clients.Elasticsearch.Core.Search.SourceConfig(false),
        });
        newest.IsValidResponse.Should().BeTrue(newest.DebugInformation);
        newest.Hits.Select(h => h.Id).Should().Equal("5", "4");
        newest.Hits.Should().OnlyContain(h => h.Source == null);
        newest.Total.Should().Be(5);

        var window = await client.SearchAsync<Product>(new SearchRequest("products") { From = 9995, Size = 10 });
        window.ApiCallDetails.HttpStatusCode.Should().Be(400);
        window.ElasticsearchServerError?.Error?.Reason.Should().Contain("Result window is too large");

        var byId = await client.SearchAsync<Product>(new SearchRequest("products") { Sort = [new SortOptions { Field = new FieldSort { Field = "_id", Order = SortOrder.Asc } }] });
        byId.ApiCallDetails.HttpStatusCode.Should().Be(400);
        byId.ElasticsearchServerError?.Error?.Reason.Should().Contain("Fielddata access on the _id field is disallowed");
    }

    [Fact]
    public async Task A_compatibility_version_other_than_8_or_9_is_refused()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        var client = es.CreateClient();

        var response = await client.Transport.RequestAsync<StringResponse>(Elastic.Transport.HttpMethod.GET, "/", null,
            new RequestConfiguration { Accept = "application/vnd.elasticsearch+json; compatible-with=7" }, CancellationToken.None);

        response.ApiCallDetails.HttpStatusCode.Should().Be(400);
        response.Body.Should().Contain("media_type_header_exception");
    }

    private sealed record Product(int Id, string Name, decimal Price);
}
