using System.Text.Json;
using System.Text.Json.Nodes;
using EtlFunnel.Sync.Tests.Support;
using Serilog;
using Serilog.Core;
using Serilog.Events;

namespace EtlFunnel.Sync.Tests;

/// <summary>Incremental watermarks: typed (never session text), NULLs, future-dated rows, per-pipeline margins, full-run reset, old state.</summary>
public sealed class WatermarkTests
{
    private static JsonObject State(SyncTestBed bed, string replica = "t_0") =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(bed.StateDirectory, "flow_0", replica + ".json")))!.AsObject();

    private static long EpochMicros(DateTimeOffset t) => (t - DateTimeOffset.UnixEpoch).Ticks / 10;

    private static Task AlterDatabaseAsync(SyncTestBed bed, string setting, string value) => bed.ExecuteAsync(
        $"DO $$BEGIN EXECUTE format('ALTER DATABASE %I SET {setting} = %L', current_database(), '{value}'); END$$;");

    [Fact]
    public async Task A_timestamptz_watermark_taken_under_India_time_and_SQL_DateStyle_reads_back_exactly_under_other_settings()
    {
        await using var bed = await SyncTestBed.CreateAsync("wmist",
            "CREATE TABLE t(id int PRIMARY KEY, updated_at timestamptz NOT NULL); " +
            "INSERT INTO t SELECT g, '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 second' FROM generate_series(1, 1000) g;");
        // The session text of the maximum is then '01/01/2024 05:46:40 IST', and 'IST' reads back as Israel time (+02), not India (+05:30).
        await AlterDatabaseAsync(bed, "timezone", "Asia/Kolkata");
        await AlterDatabaseAsync(bed, "DateStyle", "SQL, DMY");
        var job = bed.Job("t", 1, 1, bed.Options(SyncMode.Incremental) with { IncrementalTimeMargin = TimeSpan.FromMinutes(5) }, incremental: "updated_at");
        // Fresh sessions, so the database's settings apply (a pooled session keeps the ones it started with).
        var fresh = bed.ConnectionString + ";Pooling=false";
        job = job with { Flows = [.. job.Flows.Select(f => f with { SourceConnectionString = fresh })] };

        // The reproduction's premise: the session text of the maximum, cast back under UTC / ISO, is 3.5 hours off.
        await using (var conn = new Npgsql.NpgsqlConnection(fresh))
        {
            await conn.OpenAsync();
            await using var text = new Npgsql.NpgsqlCommand("SELECT max(updated_at)::text FROM t", conn);
            var sessionText = (string)(await text.ExecuteScalarAsync())!;
            sessionText.Should().Be("01/01/2024 05:46:40 IST");
            await using (var pin = new Npgsql.NpgsqlCommand("SET TimeZone = 'UTC'; SET DateStyle = 'ISO'", conn))
            {
                await pin.ExecuteNonQueryAsync();
            }

            await using var back = new Npgsql.NpgsqlCommand("SELECT extract(epoch FROM $1::timestamptz)::int8 - extract(epoch FROM max(updated_at))::int8 FROM t", conn);
            back.Parameters.AddWithValue(sessionText);
            ((long)(await back.ExecuteScalarAsync())!).Should().Be(12600, "IST read as Israel Standard Time (+02) instead of India (+05:30): 3.5 hours later");
        }

        (await new SyncEngine().RunAsync(job)).RowsRead.Should().Be(1000);
        var watermark = State(bed)["WatermarkValue"]!;
        watermark["Value"]!.GetValue<string>().Should().Be(EpochMicros(new DateTimeOffset(2024, 1, 1, 0, 16, 40, TimeSpan.Zero)).ToString(System.Globalization.CultureInfo.InvariantCulture));
        watermark["Type"]!.GetValue<string>().Should().Be("timestamp with time zone");

        await AlterDatabaseAsync(bed, "timezone", "America/New_York");
        await AlterDatabaseAsync(bed, "DateStyle", "Postgres, MDY");
        await bed.ExecuteAsync("INSERT INTO t SELECT g, '2024-01-01 01:16:40+00'::timestamptz FROM generate_series(1001, 1010) g;");

        var second = await new SyncEngine().RunAsync(job);
        second.Outcome.Should().Be(SyncOutcome.Succeeded);
        second.RowsRead.Should().Be(10 + 300, "the 10 rows an hour later plus the 300 inside the 5-minute margin; a watermark misread by 3.5 hours would miss the 10");
    }

    [Fact]
    public async Task A_row_dated_2099_neither_freezes_the_watermark_nor_survives_a_full_run_and_is_reported()
    {
        await using var bed = await SyncTestBed.CreateAsync("wmfuture",
            "CREATE TABLE t(id int PRIMARY KEY, updated_at timestamptz NOT NULL); " +
            "INSERT INTO t SELECT g, now() - interval '1 day' - g * interval '1 minute' FROM generate_series(1, 1000) g; " +
            "INSERT INTO t VALUES (5000, '2099-01-01 00:00:00+00');");
        var log = new CollectingSink();
        var engine = new SyncEngine(new Serilog.Extensions.Logging.SerilogLoggerFactory(new LoggerConfiguration().WriteTo.Sink(log).CreateLogger(), dispose: true).CreateLogger("sync"));
        var incremental = bed.Job("t", 1, 2, bed.Options(SyncMode.Incremental) with { IncrementalTimeMargin = TimeSpan.FromMinutes(5) }, incremental: "updated_at");

        (await engine.RunAsync(incremental)).RowsRead.Should().Be(1001);
        log.Messages.Where(m => m.Contains("rows have", StringComparison.Ordinal)).Should().ContainSingle("two replicas of one table warn once")
            .Which.Should().Contain("1 rows have").And.Contain("updated_at").And.Contain("later than the source's now() + 00:05:00");
        long Stored() => long.Parse(State(bed)["WatermarkValue"]!["Value"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture);
        Stored().Should().BeLessThan(EpochMicros(new DateTimeOffset(2099, 1, 1, 0, 0, 0, TimeSpan.Zero)));

        await bed.ExecuteAsync("INSERT INTO t SELECT g, now() FROM generate_series(1001, 1005) g;");
        var second = await engine.RunAsync(incremental);
        second.RowsRead.Should().Be(5 + 5 + 1, "the 5 new rows, the 5 inside the margin behind the watermark (1 day and 1 .. 5 minutes old) and the future row, read again by every run");

        // A full run sets the watermark from its own maximum, which the future row is not part of either.
        var full = bed.Job("t", 1, 2, bed.Options(SyncMode.Full) with { IncrementalTimeMargin = TimeSpan.FromMinutes(5) }, incremental: "updated_at");
        (await engine.RunAsync(full)).RowsRead.Should().Be(1006);
        Stored().Should().BeLessThan(EpochMicros(new DateTimeOffset(2099, 1, 1, 0, 0, 0, TimeSpan.Zero)));
        await bed.ExecuteAsync("INSERT INTO t VALUES (1006, now());");
        (await engine.RunAsync(incremental)).RowsRead.Should().Be(1 + 5 + 1, "the new row, the 5 rows at the full run's watermark (inside the margin) and the future row");
    }

    [Fact]
    public async Task Rows_whose_watermark_column_is_NULL_are_synced_by_every_incremental_run()
    {
        await using var bed = await SyncTestBed.CreateAsync("wmnull",
            "CREATE TABLE t(id int PRIMARY KEY, version bigint); " +
            "INSERT INTO t SELECT g, CASE WHEN g % 10 = 0 THEN NULL ELSE g END FROM generate_series(1, 100) g;");
        var job = bed.Job("t", 1, 1, bed.Options(SyncMode.Incremental) with { IncrementalNumericMargin = 0 }, incremental: "version");
        (await new SyncEngine().RunAsync(job)).RowsRead.Should().Be(100);

        await bed.ExecuteAsync("INSERT INTO t VALUES (101, NULL), (102, 500);");
        (await new SyncEngine().RunAsync(job)).RowsRead.Should().Be(10 + 1 + 1, "the 10 old and 1 new NULL rows, and the row above the watermark");
        bed.ReadOutputInOrder().Select(o => o.Id).Should().Contain("101");
    }

    [Fact]
    public async Task A_pipelines_own_margin_overrides_the_run_default()
    {
        await using var bed = await SyncTestBed.CreateAsync("wmmargin",
            "CREATE TABLE t(id int PRIMARY KEY, version bigint NOT NULL); INSERT INTO t SELECT g, g FROM generate_series(1, 5000) g;");
        var job = bed.Job("t", 1, 2, bed.Options(SyncMode.Incremental), incremental: "version");
        job = job with { Flows = [.. job.Flows.Select(f => f with { Pipelines = [.. f.Pipelines.Select(p => p with { IncrementalNumericMargin = 10 })] })] };
        (await new SyncEngine().RunAsync(job)).RowsRead.Should().Be(5000);
        await bed.ExecuteAsync("UPDATE t SET version = 6000 + id WHERE id <= 100");
        (await new SyncEngine().RunAsync(job)).RowsRead.Should().Be(100 + 10, "the pipeline's margin of 10, not the default of 1000");
    }

    [Fact]
    public async Task Float_and_numeric_watermarks_are_exact_whatever_extra_float_digits_says_and_NaN_does_not_freeze_them()
    {
        await using var bed = await SyncTestBed.CreateAsync("wmfloat",
            "CREATE TABLE t(id int PRIMARY KEY, f float8, n numeric); " +
            "INSERT INTO t SELECT g, 1000000.123456789 + g * 0.000001, 1000000.123456789 + g * 0.000000001 FROM generate_series(1, 1000) g; " +
            "INSERT INTO t VALUES (2000, 'NaN', 'NaN');");
        // One significant digit in the session's text form: '1e+06'.
        await AlterDatabaseAsync(bed, "extra_float_digits", "-15");
        var fresh = bed.ConnectionString + ";Pooling=false";
        foreach (var column in new[] { "f", "n" })
        {
            await bed.ExecuteAsync("DELETE FROM t WHERE id = 3000");
            var job = bed.Job("t", 1, 1, bed.Options(SyncMode.Incremental) with { IncrementalNumericMargin = 0, StateDirectory = Path.Combine(bed.StateDirectory, column) }, incremental: column);
            job = job with { Flows = [.. job.Flows.Select(f => f with { SourceConnectionString = fresh })] };
            (await new SyncEngine().RunAsync(job)).RowsRead.Should().Be(1001);
            await bed.ExecuteAsync($"INSERT INTO t VALUES (3000, 1000000.124456790, 1000000.124456790)");
            (await new SyncEngine().RunAsync(job)).RowsRead.Should().Be(2, $"with margin 0 only the new row and the NaN row are above the exact {column} watermark");
        }
    }

    [Fact]
    public async Task A_text_watermark_of_an_earlier_version_is_read_once_and_replaced_by_a_typed_one()
    {
        await using var bed = await SyncTestBed.CreateAsync("wmlegacy",
            "CREATE TABLE t(id int PRIMARY KEY, updated_at timestamptz NOT NULL); " +
            "INSERT INTO t SELECT g, '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 minute' FROM generate_series(1, 100) g;");
        var job = bed.Job("t", 1, 1, bed.Options(SyncMode.Incremental) with { IncrementalTimeMargin = TimeSpan.Zero }, incremental: "updated_at");
        (await new SyncEngine().RunAsync(job)).RowsRead.Should().Be(100);

        // What the previous version left: the maximum of minute 90 as session text, no typed watermark.
        var path = Path.Combine(bed.StateDirectory, "flow_0", "t_0.json");
        var state = State(bed);
        state.Remove("WatermarkValue");
        state["Watermark"] = "2024-01-01 01:30:00+00";
        await File.WriteAllTextAsync(path, state.ToJsonString());

        (await new SyncEngine().RunAsync(job)).RowsRead.Should().Be(10, "minutes 91 .. 100 are above the old watermark");
        State(bed)["Watermark"].Should().BeNull();
        State(bed)["WatermarkValue"]!["Kind"]!.ToJsonString().Should().Be("0");
        (await new SyncEngine().RunAsync(job)).RowsRead.Should().Be(0, "the typed watermark is minute 100 and the margin is 0");
    }

    private sealed class CollectingSink : ILogEventSink
    {
        private readonly List<string> _messages = [];

        public IReadOnlyList<string> Messages
        {
            get
            {
                lock (_messages)
                {
                    return [.. _messages];
                }
            }
        }

        public void Emit(LogEvent logEvent)
        {
            lock (_messages)
            {
                _messages.Add(logEvent.RenderMessage());
            }
        }
    }
}
