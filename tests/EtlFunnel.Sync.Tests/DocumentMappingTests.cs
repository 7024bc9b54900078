using System.Text.Json;
using EtlFunnel.Sync.Tests.Support;

namespace EtlFunnel.Sync.Tests;

public sealed class DocumentMappingTests
{
    internal const string AllTypes = """
        CREATE EXTENSION IF NOT EXISTS citext;
        CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
        CREATE TABLE all_types(
            id bigint PRIMARY KEY,
            i2 smallint, i4 int, i8 bigint,
            f4 real, f8 double precision,
            num numeric, num_scaled numeric(30, 10),
            b boolean, t text, vc varchar(20), ch char(5), ci citext,
            u uuid,
            ts timestamp, tstz timestamptz, d date, tm time, iv interval,
            j json, jb jsonb,
            ai int[], at text[], an numeric[],
            by bytea,
            m mood, ip inet);
        INSERT INTO all_types VALUES
        (1, -32768, 2147483647, 9223372036854775807,
         1.5, 0.1,
         123456789012345678901234567890.123456789012345678901234567890, 12345678901234567890.0123456789,
         true, 'héllo "wörld" \ tab	end ✓ 🚀', 'varchar', 'ab', 'CaseLess',
         'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
         '2024-02-29 13:14:15.123456', '2024-02-29 13:14:15.5+02', '2024-02-29', '23:59:59', '1 day 2 hours',
         '{"a": [1, 2,
           3], "b": null}', '{"nested": {"x": 1.50, "s": "q\"uote"}}',
         '{1,NULL,3}', '{"a b","c,d",NULL}', '{1.10,NaN}',
         '\x00ff10', 'happy', '192.168.0.1/24'),
        (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
         NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
        (3, 0, 0, 0, 'NaN', '-Infinity', 'NaN', 0, false, '', '', '', '', '00000000-0000-0000-0000-000000000000',
         'infinity', '-infinity', '0001-01-01 BC', '00:00', '0', 'null', '[]', '{}', '{}', '{}', '\x', 'sad', '::1');
        """;

    [Fact]
    public async Task Documents_equal_their_rows_for_every_common_type_including_nulls_unicode_and_big_numerics()
    {
        await using var bed = await SyncTestBed.CreateAsync("types", AllTypes);
        var report = await new SyncEngine().RunAsync(bed.Job("all_types", 1, 1));
        report.Outcome.Should().Be(SyncOutcome.Succeeded);
        var docs = bed.ReadOutput().ToDictionary(d => d.Id, d => d.Source);
        docs.Keys.Should().BeEquivalentTo(["1", "2", "3"]);

        // Oracle: PostgreSQL's own row_to_json (UTC), bytea included (its hex form).
        var compared = await RowOracle.AssertAllTypesRowsEqualAsync(bed.ConnectionString, docs);
        compared.Should().BeGreaterThan(70);
        var one = docs["1"];
        one.GetProperty("num").GetRawText().Should().Be("123456789012345678901234567890.123456789012345678901234567890", "numeric keeps every digit");
        one.GetProperty("i8").GetInt64().Should().Be(long.MaxValue);
        one.GetProperty("t").GetString().Should().Be("héllo \"wörld\" \\ tab\tend ✓ 🚀");
        one.GetProperty("ts").GetString().Should().Be("2024-02-29T13:14:15.123456");
        one.GetProperty("tstz").GetString().Should().Be("2024-02-29T11:14:15.5+00:00");
        one.GetProperty("d").GetString().Should().Be("2024-02-29");
        one.GetProperty("j").GetProperty("a").GetArrayLength().Should().Be(3, "json is embedded as an object");
        one.GetProperty("jb").GetProperty("nested").GetProperty("s").GetString().Should().Be("q\"uote");
        one.GetProperty("by").GetString().Should().Be("\\x00ff10", "bytea is PostgreSQL's hex form, top-level as nested");
        one.GetProperty("ai").EnumerateArray().Select(e => e.ValueKind).Should().Equal(JsonValueKind.Number, JsonValueKind.Null, JsonValueKind.Number);
        one.GetProperty("u").GetString().Should().Be("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
        docs["2"].EnumerateObject().Where(p => p.Name != "id").Should().OnlyContain(p => p.Value.ValueKind == JsonValueKind.Null);
        docs["3"].GetProperty("f4").GetString().Should().Be("NaN");
        docs["3"].GetProperty("num").GetString().Should().Be("NaN");
        docs["3"].GetProperty("ts").GetString().Should().Be("infinity");
    }

    [Fact]
    public async Task Composite_keys_make_ids_by_the_escaped_join_rule()
    {
        await using var bed = await SyncTestBed.CreateAsync("ckey",
            """
            CREATE TABLE ck(a text, b int, c text, v int, PRIMARY KEY (a, b, c));
            INSERT INTO ck VALUES ('x', 1, 'y', 1), ('x|1', 2, 'y', 2), ('x', 1, 'y|z', 3), ('back\slash', 3, '', 4), ('ü', -1, 'a|b\c', 5);
            """);
        var report = await new SyncEngine().RunAsync(bed.Job("ck", 1, 1));
        report.Outcome.Should().Be(SyncOutcome.Succeeded);
        bed.ReadOutput().ToDictionary(d => d.Source.GetProperty("v").GetInt32(), d => d.Id).Should().BeEquivalentTo(new Dictionary<int, string>
        {
            [1] = "x|1|y",
            [2] = "x\\|1|2|y",
            [3] = "x|1|y\\|z",
            [4] = "back\\\\slash|3|",
            [5] = "ü|-1|a\\|b\\\\c",
        });
    }

    [Fact]
    public async Task A_table_without_primary_key_is_refused_before_any_data_moves()
    {
        await using var bed = await SyncTestBed.CreateAsync("nokey", "CREATE TABLE loose(x int); INSERT INTO loose VALUES (1);");
        var act = () => new SyncEngine().RunAsync(bed.Job("loose", 1, 1));
        await act.Should().ThrowAsync<SyncConfigurationException>().WithMessage("*\"public\".\"loose\" has no primary key*key columns*");
        Directory.Exists(bed.OutputDirectory).Should().BeFalse();
    }

    [Fact]
    public async Task A_null_in_an_explicit_key_column_fails_the_replica_with_a_message_naming_the_column()
    {
        await using var bed = await SyncTestBed.CreateAsync("nullkey", "CREATE TABLE nk(id int PRIMARY KEY, code int); INSERT INTO nk VALUES (1, 10), (2, NULL);");
        var report = await new SyncEngine().RunAsync(bed.Job("nk", 1, 1, keys: ["code"]));
        report.Outcome.Should().Be(SyncOutcome.Failed);
        report.Replicas[0].Error.Should().Contain("\"code\" is NULL").And.Contain("nk");
    }
}
