using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using EtlFunnel.Sync.Postgres;

namespace EtlFunnel.Sync.Tests;

/// <summary>
/// The row writer formats values itself for speed; these tests hold it to exactly the bytes <see cref="Utf8JsonWriter"/>
/// (relaxed escaping, the engine's previous mapping) writes for the same binary COPY values.
/// </summary>
public sealed class JsonRowWriterTests
{
    // numeric, timestamps and date are checked against PostgreSQL itself (PostgresTextTests).
    private static readonly ColumnKind[] AllKinds = Enum.GetValues<ColumnKind>()
        .Except([ColumnKind.Numeric, ColumnKind.TimestampTz, ColumnKind.Timestamp, ColumnKind.Date]).ToArray();

    private static readonly string[] Texts =
    [
        "", "plain ascii", "héllo \"wörld\" \\ tab\tend ✓ 🚀", "line\nbreak\r\n", "\u0000\u0001\u001f\u007f", "<script>&'+`",
        "\u2028\u2029", "\u00ad soft hyphen", "日本語テキスト", "emoji 👍🏽 family 👨‍👩‍👧", "\uFFFD replacement", "combining é",
        "a/b", "\ud7ff\ue000\uffef", "x", new string('y', 300),
    ];

    private static readonly string[] Jsons =
    [
        "12.50", "-0.001", "123456789012345678901234567890.123456789012345678901234567890", "\"2024-02-29T11:14:15.5+00:00\"",
        "\"infinity\"", "null", "true", "[]", "{}", "{\"k\": 1, \"tag\": \"t3\"}", "{\"a\": [1, 2,\n  3], \"b\": null}",
        "[1,\r\n2]", "{\"s\": \"q\\\"uote\", \"u\": \"\\u00e9 🚀\"}", "\"a\\nb\"", "[\"a b\",\"c,d\",null]",
    ];

    [Fact]
    public void Every_kind_of_value_is_written_byte_for_byte_as_Utf8JsonWriter_writes_it()
    {
        var random = new Random(20261126);
        var columns = AllKinds.SelectMany(k => new[] { new ColumnInfo($"c_{k}", k.ToString(), k), new ColumnInfo($"c_{k}_2", k.ToString(), k) }).ToList();
        var writer = new JsonRowWriter(columns);
        var rows = 0;
        for (var n = 0; n < 3000; n++)
        {
            var values = columns.Select(c => random.Next(8) == 0 ? null : RandomValue(c.Kind, random)).ToList();
            AssertSameAsReference(writer, columns, values);
            rows++;
        }

        rows.Should().Be(3000);
    }

    [Fact]
    public void Edge_values_of_every_numeric_kind_match_the_reference()
    {
        var edges = new List<(ColumnKind Kind, byte[] Value)>();
        foreach (var v in new long[] { 0, 1, -1, 9, 10, 99, 100, long.MaxValue, long.MinValue, int.MaxValue, int.MinValue, 1_000_000_000_000 })
        {
            edges.Add((ColumnKind.Int64, BigEndian(v)));
        }

        foreach (var v in new[] { 0, -1, int.MaxValue, int.MinValue, 100000, 999999999 })
        {
            edges.Add((ColumnKind.Int32, BigEndian(v)));
        }

        foreach (var v in new short[] { 0, short.MinValue, short.MaxValue, -10 })
        {
            edges.Add((ColumnKind.Int16, BigEndian(v)));
        }

        foreach (var v in new[] { 0.0, -0.0, 0.1, 1.5, 1e21, 1e-7, double.Epsilon, double.MaxValue, double.MinValue, double.NaN, double.PositiveInfinity, double.NegativeInfinity, 123456789.123456789, 5e-324 })
        {
            edges.Add((ColumnKind.Float8, BigEndian(v)));
            edges.Add((ColumnKind.Float4, BigEndian((float)v)));
        }

        foreach (var (kind, value) in edges)
        {
            var columns = new List<ColumnInfo> { new("v", kind.ToString(), kind) };
            AssertSameAsReference(new JsonRowWriter(columns), columns, [value]);
        }
    }

    [Fact]
    public void Column_names_that_need_escaping_match_the_reference()
    {
        var columns = new List<ColumnInfo>
        {
            new("quo\"te", "int4", ColumnKind.Int32),
            new("back\\slash", "text", ColumnKind.Text),
            new("ünï 🚀", "bool", ColumnKind.Bool),
            new("tab\there", "jsonb", ColumnKind.RawJson),
        };
        AssertSameAsReference(new JsonRowWriter(columns), columns, [BigEndian(7), "x"u8.ToArray(), [1], "{\"a\":1}"u8.ToArray()]);
    }

    [Fact]
    public void A_table_without_columns_gives_an_empty_object()
    {
        var output = new ArrayBufferWriter<byte>();
        new JsonRowWriter([]).Write([], [], [], output);
        Encoding.UTF8.GetString(output.WrittenSpan).Should().Be("{}");
    }

    [Fact]
    public void Integers_are_formatted_as_invariant_decimal_text()
    {
        var random = new Random(7);
        Span<byte> buffer = stackalloc byte[24];
        foreach (var value in Enumerable.Range(0, 5000).Select(_ => random.NextInt64(long.MinValue, long.MaxValue) >> random.Next(64)).Concat([long.MinValue, long.MaxValue, 0]))
        {
            var n = JsonRowWriter.WriteInteger(value, buffer);
            Encoding.ASCII.GetString(buffer[..n]).Should().Be(value.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
    }

    private static void AssertSameAsReference(JsonRowWriter writer, IReadOnlyList<ColumnInfo> columns, IReadOnlyList<byte[]?> values)
    {
        // The row as binary COPY lays it out: values back to back, with a little noise around them.
        var row = new List<byte> { 0xAB, 0xCD };
        var offsets = new int[values.Count];
        var lengths = new int[values.Count];
        for (var i = 0; i < values.Count; i++)
        {
            row.AddRange([1, 2, 3, 4]);
            offsets[i] = row.Count;
            lengths[i] = values[i]?.Length ?? -1;
            row.AddRange(values[i] ?? []);
        }

        // A tiny initial capacity, so the writer's size bound and every re-acquired span are exercised.
        var actual = new ArrayBufferWriter<byte>(1);
        writer.Write([.. row], offsets, lengths, actual);
        var expected = Reference(columns, values);
        Encoding.UTF8.GetString(actual.WrittenSpan).Should().Be(Encoding.UTF8.GetString(expected));
        actual.WrittenSpan.SequenceEqual(expected).Should().BeTrue();
    }

    // The engine's previous mapping, value by value through Utf8JsonWriter.
    private static byte[] Reference(IReadOnlyList<ColumnInfo> columns, IReadOnlyList<byte[]?> values)
    {
        var output = new ArrayBufferWriter<byte>();
        using var json = new Utf8JsonWriter(output, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, SkipValidation = true });
        json.WriteStartObject();
        for (var i = 0; i < columns.Count; i++)
        {
            json.WritePropertyName(JsonEncodedText.Encode(columns[i].Name, JavaScriptEncoder.UnsafeRelaxedJsonEscaping));
            if (values[i] is not { } raw)
            {
                json.WriteNullValue();
                continue;
            }

            ReadOnlySpan<byte> value = raw;
            switch (columns[i].Kind)
            {
                case ColumnKind.Int16: json.WriteNumberValue(BinaryPrimitives.ReadInt16BigEndian(value)); break;
                case ColumnKind.Int32: json.WriteNumberValue(BinaryPrimitives.ReadInt32BigEndian(value)); break;
                case ColumnKind.Int64: json.WriteNumberValue(BinaryPrimitives.ReadInt64BigEndian(value)); break;
                case ColumnKind.Float4:
                    var f = BinaryPrimitives.ReadSingleBigEndian(value);
                    if (float.IsFinite(f))
                    {
                        json.WriteNumberValue(f);
                    }
                    else
                    {
                        json.WriteStringValue(float.IsNaN(f) ? "NaN" : f > 0 ? "Infinity" : "-Infinity");
                    }

                    break;
                case ColumnKind.Float8:
                    var d = BinaryPrimitives.ReadDoubleBigEndian(value);
                    if (double.IsFinite(d))
                    {
                        json.WriteNumberValue(d);
                    }
                    else
                    {
                        json.WriteStringValue(double.IsNaN(d) ? "NaN" : d > 0 ? "Infinity" : "-Infinity");
                    }

                    break;
                case ColumnKind.Bool: json.WriteBooleanValue(value[0] != 0); break;
                case ColumnKind.Text: json.WriteStringValue(value); break;
                case ColumnKind.Uuid: json.WriteStringValue(new Guid(value, bigEndian: true)); break;
                case ColumnKind.Bytea: json.WriteStringValue("\\x" + Convert.ToHexStringLower(value)); break;
                default:
                    // Line breaks of valid JSON stand between tokens: they become spaces.
                    json.WriteRawValue(value.ToArray().Select(b => b is (byte)'\n' or (byte)'\r' ? (byte)' ' : b).ToArray(), skipInputValidation: true);

                    break;
            }
        }

        json.WriteEndObject();
        json.Flush();
        return output.WrittenSpan.ToArray();
    }

    private static byte[] RandomValue(ColumnKind kind, Random random)
    {
        switch (kind)
        {
            case ColumnKind.Int16: return BigEndian((short)random.Next(short.MinValue, short.MaxValue + 1));
            case ColumnKind.Int32: return BigEndian(random.Next(int.MinValue, int.MaxValue) >> random.Next(32));
            case ColumnKind.Int64: return BigEndian(random.NextInt64(long.MinValue, long.MaxValue) >> random.Next(64));
            case ColumnKind.Float4: return BigEndian(random.Next(3) == 0 ? BitConverter.Int32BitsToSingle(random.Next()) * (random.Next(2) == 0 ? 1 : -1) : (float)(random.NextDouble() * Math.Pow(10, random.Next(-10, 10))));
            case ColumnKind.Float8: return BigEndian(random.Next(3) == 0 ? BitConverter.Int64BitsToDouble(random.NextInt64()) : Math.Round(random.NextDouble() * 1e6, random.Next(0, 8)));
            case ColumnKind.Bool: return [(byte)random.Next(2)];
            case ColumnKind.Text:
                var text = Texts[random.Next(Texts.Length)];
                return Encoding.UTF8.GetBytes(random.Next(4) == 0 ? text + Texts[random.Next(Texts.Length)] : text);
            case ColumnKind.Uuid:
                var uuid = new byte[16];
                random.NextBytes(uuid);
                return uuid;
            case ColumnKind.Bytea:
                var bytes = new byte[random.Next(0, 40)];
                random.NextBytes(bytes);
                return bytes;
            default:
                return Encoding.UTF8.GetBytes(Jsons[random.Next(Jsons.Length)]);
        }
    }

    private static byte[] BigEndian(short v)
    {
        var b = new byte[2];
        BinaryPrimitives.WriteInt16BigEndian(b, v);
        return b;
    }

    private static byte[] BigEndian(int v)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(b, v);
        return b;
    }

    private static byte[] BigEndian(long v)
    {
        var b = new byte[8];
        BinaryPrimitives.WriteInt64BigEndian(b, v);
        return b;
    }

    private static byte[] BigEndian(float v)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteSingleBigEndian(b, v);
        return b;
    }

    private static byte[] BigEndian(double v)
    {
        var b = new byte[8];
        BinaryPrimitives.WriteDoubleBigEndian(b, v);
        return b;
    }
}
