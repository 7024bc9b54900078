using System.Text.Json;
using EtlFunnel.Sync.Tests.Support;

namespace EtlFunnel.Sync.Tests;

public sealed class IncrementalTests
{
    [Fact]
    public async Task Incremental_runs_read_rows_above_the_watermark_including_late_commits_inside_the_safety_margin()
    {
        await using var bed = await SyncTestBed.CreateAsync("incr",
            "CREATE TABLE orders(id int PRIMARY KEY, status text, updated_at timestamptz NOT NULL); " +
            "INSERT INTO orders SELECT g, 'new', '2024-01-01'::timestamptz + g * interval '1 second' FROM generate_series(1, 10000) g;");
        var options = bed.Options(SyncMode.Incremental) with { IncrementalTimeMargin = TimeSpan.FromMinutes(5) };
        var job = bed.Job("orders", 2, 2, options, incremental: "updated_at");

        var first = await new SyncEngine().RunAsync(job);
        first.Outcome.Should().Be(SyncOutcome.Succeeded);
        first.RowsRead.Should().Be(10000, "the first incremental run has no watermark and reads everything");

        // Watermark is 2024-01-01 + 10000 s. Changes: 300 rows updated later, 200 inserted later, and one row committed
        // late with a timestamp 1 minute *below* the watermark (a transaction that was in flight during the first run).
        await bed.ExecuteAsync(
            "UPDATE orders SET status = 'paid', updated_at = '2024-06-01' WHERE id % 50 = 0 AND id <= 15000; " +
            "INSERT INTO orders SELECT g, 'new', '2024-06-02'::timestamptz FROM generate_series(10001, 10200) g; " +
            "INSERT INTO orders VALUES (20000, 'late', '2024-01-01'::timestamptz + 9940 * interval '1 second');");
        var second = await new SyncEngine().RunAsync(job);
        second.Outcome.Should().Be(SyncOutcome.Succeeded);
        // 200 updated + 200 inserted + the late row + the rows inside the 5-minute margin that were not updated (the last 300 s).
        var marginRows = Enumerable.Range(10000 - 300 + 1, 300).Count(i => i % 50 != 0);
        second.RowsRead.Should().Be(200 + 200 + 1 + marginRows);

        var third = await new SyncEngine().RunAsync(job);
        third.RowsRead.Should().Be(200, "without changes only the margin behind the new watermark (2024-06-02) is read again: the 200 rows inserted at it");

        // Loading the appended files in order gives exactly the current table.
        var final = new Dictionary<string, JsonElement>();
        foreach (var (_, id, source) in bed.ReadOutputInOrder())
        {
            final[id] = source;
        }

        final.Should().HaveCount(10201);
        final["50"].GetProperty("status").GetString().Should().Be("paid");
        final["20000"].GetProperty("status").GetString().Should().Be("late");
    }

    [Fact]
    public async Task A_numeric_watermark_rereads_the_numeric_margin()
    {
        await using var bed = await SyncTestBed.CreateAsync("incrnum",
            "CREATE TABLE v(id int PRIMARY KEY, version bigint NOT NULL); INSERT INTO v SELECT g, g FROM generate_series(1, 5000) g;");
        var options = bed.Options(SyncMode.Incremental) with { IncrementalNumericMargin = 10 };
        var job = bed.Job("v", 1, 3, options, incremental: "version");
        (await new SyncEngine().RunAsync(job)).RowsRead.Should().Be(5000);
        await bed.ExecuteAsync("UPDATE v SET version = 6000 + id WHERE id <= 100");
        var second = await new SyncEngine().RunAsync(job);
        second.RowsRead.Should().Be(100 + 10, "rows above 5000 - 10, that is the 100 updated plus versions 4991..5000");
    }
}
