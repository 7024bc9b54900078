using System.Buffers;
using System.Text;
using System.Text.Json;
using EtlFunnel.Destinations;

namespace EtlFunnel.Sync.Tests.Documents;

public sealed class DocumentBatchTests
{
    private static DocumentBatch Batch(string index, params (string Id, string Source)[] docs)
    {
        var batch = new DocumentBatch(index, 64);
        foreach (var (id, source) in docs)
        {
            var start = batch.Bytes;
            batch.Writer.Write(Encoding.UTF8.GetBytes(source));
            batch.Add(id, start);
        }

        return batch;
    }

    /// <summary>The reference: the action line as Utf8JsonWriter writes it with the sinks' encoder.</summary>
    private static string Expected(string index, IEnumerable<(string Id, string Source)> docs)
    {
        var text = new StringBuilder();
        foreach (var (id, source) in docs)
        {
            var buffer = new ArrayBufferWriter<byte>();
            using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = DocumentBatch.Encoder }))
            {
                json.WriteStartObject();
                json.WriteStartObject("index");
                json.WriteString("_index", index);
                json.WriteString("_id", id);
                json.WriteEndObject();
                json.WriteEndObject();
            }

            text.Append(Encoding.UTF8.GetString(buffer.WrittenSpan)).Append('\n').Append(source).Append('\n');
        }

        return text.ToString();
    }

    [Fact]
    public void Bulk_action_lines_escape_every_id_exactly_as_the_json_writer_does()
    {
        var ids = Enumerable.Range(0, 128).Select(c => $"a{(char)c}b")
            .Concat(["", "ü|-1|a\\|b\\\\c", "🚀 ✓", "\u2028x", "<&>'+`", new string('x', 300)])
            .Select((id, i) => (id, $"{{\"n\":{i}}}"))
            .ToArray();
        var batch = Batch("ïdx\"1", ids);
        var output = new ArrayBufferWriter<byte>(16);

        batch.WriteBulk(output);

        Encoding.UTF8.GetString(output.WrittenSpan).Should().Be(Expected("ïdx\"1", ids));
    }

    [Fact]
    public void Bulk_of_a_subset_holds_only_those_documents_in_the_given_order()
    {
        var batch = Batch("i", ("1", "{\"a\":1}"), ("2", "{\"a\":2}"), ("3", "{\"a\":3}"));
        var output = new ArrayBufferWriter<byte>();

        batch.WriteBulk(output, [batch.Items[2], batch.Items[0]]);

        Encoding.UTF8.GetString(output.WrittenSpan).Should().Be(Expected("i", [("3", "{\"a\":3}"), ("1", "{\"a\":1}")]));
    }
}
