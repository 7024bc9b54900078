using System.Text;
using EtlFunnel.Destinations;

namespace EtlFunnel.Sync.Tests.Sinks;

public sealed class BulkResponseReaderTests
{
    private static List<(int Status, string? Error)> Read(string json)
    {
        var results = new List<(int Status, string? Error)>();
        BulkResponseReader.Read(Encoding.UTF8.GetBytes(json), results);
        return results;
    }

    [Fact]
    public void Items_give_their_status_in_order_and_failures_their_type_and_reason_whatever_else_the_response_holds()
    {
        var results = Read("""
            {"took":3,"errors":true,"ingest_took":0,"items":[
              {"index":{"_index":"i","_id":"1","_version":1,"result":"created","_shards":{"total":2,"successful":1,"failed":0},"_seq_no":0,"_primary_term":1,"status":201}},
              {"create":{"_index":"i","_id":"2","status":409,"error":{"type":"version_conflict_engine_exception","reason":"[2]: version conflict","caused_by":{"type":"x","reason":"y"},"index_uuid":"u","shard":"0","index":"i"}}},
              {"index":{"status":429,"error":{"reason":"busy","type":"es_rejected_execution_exception"},"_id":"3"}},
              {"delete":{"_index":"i","_id":"4","result":"not_found","status":404}},
              {"index":{"_id":"5","status":400,"error":"plain text error"}}
            ],"extra":{"nested":[1,{"a":null}]}}
            """);

        results.Should().Equal(
            (201, null),
            (409, "version_conflict_engine_exception: [2]: version conflict"),
            (429, "es_rejected_execution_exception: busy"),
            (404, null),
            (400, "plain text error"));
    }

    [Theory]
    [InlineData("")]
    [InlineData("{\"items\":[{\"index\":{\"status\":201}}")]
    [InlineData("[1]")]
    public void A_response_that_is_not_a_bulk_response_is_an_error_that_says_so(string json)
    {
        var act = () => Read(json);

        act.Should().Throw<InvalidOperationException>().WithMessage("Elasticsearch sent a bulk response that is not valid JSON*");
    }
}
