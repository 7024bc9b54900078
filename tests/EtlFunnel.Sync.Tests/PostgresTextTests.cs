using System.Text;
using EtlFunnel.Sync.Postgres;
using EtlFunnel.Testing.Postgres;
using Npgsql;

namespace EtlFunnel.Sync.Tests;

/// <summary>
/// numeric, timestamptz, timestamp and date are read in binary and formatted by the engine; PostgreSQL's own
/// <c>to_json(value)::text</c> of the same values, read through the same binary COPY parser, is the oracle.
/// </summary>
public sealed class PostgresTextTests
{
    private const string Values = """
        SET TimeZone = 'UTC';
        CREATE TABLE v(n numeric, tz timestamptz, ts timestamp, d date);
        INSERT INTO v
        SELECT round(((random() - 0.5) * 10 ^ (floor(random() * 40) - 20))::numeric, floor(random() * 25)::int),
               timestamptz '2000-01-01 00:00:00+00' + (random() - 0.5) * interval '1 day' * 365 * CASE WHEN g % 3 = 0 THEN 8000 ELSE 60 END
                   + CASE WHEN g % 2 = 0 THEN interval '0.000001 second' * floor(random() * 1000000) ELSE interval '0' END,
               timestamp '2000-01-01 00:00:00' + (random() - 0.5) * interval '1 day' * 365 * CASE WHEN g % 4 = 0 THEN 9000 ELSE 100 END,
               date '2000-01-01' + floor((random() - 0.5) * 365 * CASE WHEN g % 5 = 0 THEN 9000 ELSE 100 END)::int
        FROM generate_series(1, 4000) g;
        INSERT INTO v VALUES
            (0, 'infinity', 'infinity', 'infinity'),
            (0.00, '-infinity', '-infinity', '-infinity'),
            ('NaN', '4713-01-01 00:00:00+00 BC', '4713-01-01 00:00:00 BC', '4713-01-01 BC'),
            ('Infinity', '294276-12-31 23:59:59.999999+00', '294276-12-31 23:59:59.999999', '5874897-12-31'),
            ('-Infinity', '0001-01-01 00:00:00+00 BC', '0001-12-31 23:59:59.5 BC', '0001-01-01 BC'),
            (-0.5, '0001-01-01 00:00:00+00', '0001-01-01 00:00:00', '0001-01-01'),
            (123456789012345678901234567890.123456789012345678901234567890, '2024-02-29 13:14:15.123456+02', '2024-02-29 13:14:15.1', '2024-02-29'),
            (10000, '1999-12-31 23:59:59.999999+00', '1900-03-01 00:00:00', '1582-10-10'),
            (100000000, '2000-01-01 00:00:00.000001+00', '9999-12-31 23:59:59', '9999-12-31'),
            (0.0000001, '1970-01-01 00:00:00+00', '1970-01-01 00:00:00', '1970-01-01'),
            (1e100, '2262-04-11 23:47:16.854775+00', '1677-09-21 00:12:43.145225', '10000-01-01'),
            (-1e-100, '12345-06-07 08:09:10+00', '0044-03-15 12:00:00 BC', '0044-03-15 BC'),
            (1/3::numeric, NULL, NULL, NULL),
            (-9999.9999, '2000-02-29 12:00:00+00', '2100-02-28 23:59:59.99', '2000-02-29'),
            (5.000, '1600-02-29 00:00:00+00', '1600-02-29 00:00:00', '1600-02-29');
        """;

    [Fact]
    public async Task Numeric_timestamp_and_date_read_in_binary_are_written_exactly_as_to_json_writes_them()
    {
        var server = await PostgresServer.GetAsync();
        var cs = await server.CreateDatabaseAsync("pgtext");
        await PostgresServer.ExecuteAsync(cs, Values);
        await using var conn = new NpgsqlConnection(cs);
        await conn.OpenAsync();
        await using (var tz = new NpgsqlCommand("SET TimeZone = 'UTC'", conn))
        {
            await tz.ExecuteNonQueryAsync();
        }

        var kinds = new[] { ColumnKind.Numeric, ColumnKind.TimestampTz, ColumnKind.Timestamp, ColumnKind.Date };
        await using var raw = await conn.BeginRawBinaryCopyAsync(
            "COPY (SELECT n, tz, ts, d, to_json(n)::text, to_json(tz)::text, to_json(ts)::text, to_json(d)::text FROM v) TO STDOUT (FORMAT BINARY)");
        var copy = new BinaryCopyBuffer(raw, null, 8);
        await copy.ReadHeaderAsync(CancellationToken.None);
        var compared = 0;
        var output = new byte[1 << 16];
        while (true)
        {
            var status = copy.TryReadRow();
            if (status == CopyRowStatus.NeedMore)
            {
                await copy.FillAsync(CancellationToken.None);
                continue;
            }

            if (status == CopyRowStatus.End)
            {
                break;
            }

            for (var c = 0; c < kinds.Length; c++)
            {
                if (copy.Lengths[c] < 0)
                {
                    continue;
                }

                var value = copy.Array.AsSpan(copy.Offsets[c], copy.Lengths[c]);
                var expected = Encoding.UTF8.GetString(copy.Array, copy.Offsets[c + 4], copy.Lengths[c + 4]);
                var n = kinds[c] switch
                {
                    ColumnKind.Numeric => PgNumeric.WriteJson(value, output),
                    ColumnKind.TimestampTz => PgDateTime.WriteTimestampJson(System.Buffers.Binary.BinaryPrimitives.ReadInt64BigEndian(value), withZone: true, output),
                    ColumnKind.Timestamp => PgDateTime.WriteTimestampJson(System.Buffers.Binary.BinaryPrimitives.ReadInt64BigEndian(value), withZone: false, output),
                    _ => PgDateTime.WriteDateJson(System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(value), output),
                };
                Encoding.UTF8.GetString(output, 0, n).Should().Be(expected, $"{kinds[c]} {Convert.ToHexString(value)}");
                if (kinds[c] == ColumnKind.Numeric)
                {
                    n.Should().BeLessThanOrEqualTo(PgNumeric.MaxTextLength(value));
                }
                else
                {
                    n.Should().BeLessThanOrEqualTo(PgDateTime.MaxJsonLength);
                }

                compared++;
            }
        }

        compared.Should().BeGreaterThan(4 * 4000);
    }
}
