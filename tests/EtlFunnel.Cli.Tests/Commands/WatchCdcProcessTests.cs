using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using EtlFunnel.Testing.Elasticsearch;
using EtlFunnel.Testing.Postgres;
using Npgsql;

namespace EtlFunnel.Cli.Tests.Commands;

/// <summary>
/// <c>etlfunnel watch</c> with a <c>mode: cdc</c> flow as a real process: real PostgreSQL (wal_level logical), the Elasticsearch
/// test server, a real hook host watching a folder. The flow streams continuously; a hook edit that changes its replicas restarts
/// the stream with the new lane count from its checkpoint; SIGTERM drains, acknowledges and leaves the slot inactive. Transformers
/// apply to the snapshot and the streamed changes, and a hot edit to the next batch.
/// </summary>
public sealed class WatchCdcProcessTests
{
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(120);
    private const string Index = "cdc_orders";

    [Fact]
    public async Task Watch_streams_a_cdc_flow_restarts_it_with_the_new_lane_count_on_a_hook_edit_and_stops_with_the_slot_inactive()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        var (cs, slot, hooks, config) = await CreateAsync("watch_cdc", 50, es);
        var hook = Path.Combine(hooks, "flow-scale.csx");
        await File.WriteAllTextAsync(hook, WatchProcessTests.FlowHook(2));

        using var watch = WatchProcess.Start(config, hooks);
        try
        {
            var url = new Uri((await watch.WaitForLineAsync(WatchProcessTests.StatusLine(), Guard)).Groups[1].Value);
            using var http = new HttpClient { BaseAddress = url };

            // Started at start: the snapshot, then the stream with 2 lanes (2 flow replicas of one table).
            await watch.WaitForLineAsync(LanesLine(2), Guard);
            await Eventually(() => IndexEqualsTableAsync(es, cs), "the snapshot of 50 rows in the index", watch);
            (await StreamJson(http)).GetProperty("phase").GetString().Should().Be("streaming");

            // Inserts, updates and deletes follow while it streams.
            await PostgresServer.ExecuteAsync(cs, """
                INSERT INTO orders SELECT g, g, 'new' FROM generate_series(51, 60) g;
                UPDATE orders SET total = total * 10, note = 'updated' WHERE id % 7 = 0;
                DELETE FROM orders WHERE id <= 5;
                """);
            await Eventually(() => IndexEqualsTableAsync(es, cs), "inserts, updates and deletes applied", watch);

            // The hook edit gives the flow 3 replicas: the stream stops and starts again with 3 lanes, from its checkpoint.
            await File.WriteAllTextAsync(hook, WatchProcessTests.FlowHook(3));
            await watch.WaitForLineAsync(new Regex(@"changes its CDC stream \(2 lane\(s\); public\.orders -> 3 lane\(s\); public\.orders\)"), Guard);
            await watch.WaitForLineAsync(LanesLine(3), Guard);
            await PostgresServer.ExecuteAsync(cs, """
                INSERT INTO orders SELECT g, g, 'after the restart' FROM generate_series(61, 80) g;
                UPDATE orders SET note = 'again' WHERE id BETWEEN 40 AND 45;
                DELETE FROM orders WHERE id IN (6, 61);
                """);
            await Eventually(() => IndexEqualsTableAsync(es, cs), "changes after the restart applied", watch);
            var stream = await StreamJson(http);
            stream.GetProperty("lanes").GetInt32().Should().Be(3);
            stream.GetProperty("restarts").GetInt64().Should().Be(1);
            Regex.Matches(watch.Output, "taking the snapshot|taking a new snapshot").Should().HaveCount(1, "the restart resumes from the checkpoint, it takes no new snapshot");
            (await http.GetAsync("/healthz")).StatusCode.Should().Be(HttpStatusCode.OK, watch.Output);

            // Lag on /metrics: caught up means 0 seconds; the bytes are there (heartbeats and other WAL keep them small, not 0).
            await Eventually(async () => MetricLine("etlfunnel_cdc_lag_seconds").Match(await http.GetStringAsync("/metrics")) is { Success: true } m && m.Groups[1].Value == "0",
                "etlfunnel_cdc_lag_seconds 0 once caught up", watch);
            var metrics = await http.GetStringAsync("/metrics");
            MetricLine("etlfunnel_cdc_lag_bytes").Match(metrics).Success.Should().BeTrue(metrics);
            MetricLine("etlfunnel_cdc_lanes").Match(metrics).Groups[1].Value.Should().Be("3");

            watch.Terminate();
            (await watch.WaitForExitAsync(Guard)).Should().Be(0, watch.Output);
            watch.Output.Should().Contain("CDC stream stopped (Cancelled)").And.Contain("Stopped: runs drained");
            var (active, confirmed, current) = await SlotAsync(cs, slot);
            active.Should().BeFalse("the stream released its slot");
            confirmed.Should().NotBeNull();
            (await IndexEqualsTableAsync(es, cs)).Should().BeTrue();
        }
        finally
        {
            watch.KillIfRunning();
            await DropInactiveSlotsAsync(cs);
        }
    }

    [Fact]
    public async Task A_cdc_flow_a_transformer_applies_to_streams_transformed_documents_and_a_hot_edit_applies_to_the_next_changes()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        var (cs, _, hooks, config) = await CreateAsync("watch_cdc_tx", 20, es);
        var transformer = Path.Combine(hooks, "orders.csx");
        static string Script(int version) => $$"""
            string AppliesTo => "orders/public.orders";

            void Transform(RowView row, DocumentWriter doc) => doc.Set("transformed", {{version}});
            """;
        await File.WriteAllTextAsync(transformer, Script(1));

        using var watch = WatchProcess.Start(config, hooks);
        try
        {
            // The snapshot goes through the transformer, then inserts, updates and deletes streamed while it runs.
            await Eventually(() => IndexEqualsTableAsync(es, cs, (_, doc) => Transformed(doc) == 1), "the snapshot of 20 transformed rows in the index", watch);
            await PostgresServer.ExecuteAsync(cs, """
                INSERT INTO orders SELECT g, g, 'new' FROM generate_series(21, 25) g;
                UPDATE orders SET note = 'updated' WHERE id IN (2, 3);
                DELETE FROM orders WHERE id = 1;
                """);
            await Eventually(() => IndexEqualsTableAsync(es, cs, (_, doc) => Transformed(doc) == 1), "streamed changes transformed", watch);

            // A hot edit of the transformer applies to the next batches of changes; the stream keeps its position (no new snapshot).
            await File.WriteAllTextAsync(transformer, Script(2));
            // Until the reload lands, a change is still written by version 1: change row 4, wait for it to be applied, look at its version.
            await Eventually(async () =>
            {
                await PostgresServer.ExecuteAsync(cs, "UPDATE orders SET total = total + 1 WHERE id = 4");
                await Eventually(() => IndexEqualsTableAsync(es, cs), "the update of row 4 applied", watch);
                return await IndexEqualsTableAsync(es, cs, (id, doc) => Transformed(doc) == (id == "4" ? 2 : 1));
            }, "a change after the edit written by version 2", watch);
            Regex.Matches(watch.Output, "taking the snapshot|taking a new snapshot").Should().HaveCount(1, "the edit did not restart the stream from a new snapshot");

            watch.Terminate();
            (await watch.WaitForExitAsync(Guard)).Should().Be(0, watch.Output);
            watch.Output.Should().NotContain("do not run transformers");
        }
        finally
        {
            watch.KillIfRunning();
            await DropInactiveSlotsAsync(cs);
        }
    }

    [Fact]
    public async Task A_transformer_added_while_a_cdc_flow_streams_restarts_the_stream_from_its_checkpoint_and_applies_to_the_next_changes()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        var (cs, _, hooks, config) = await CreateAsync("watch_cdc_txadd", 10, es);

        using var watch = WatchProcess.Start(config, hooks);
        try
        {
            await Eventually(() => IndexEqualsTableAsync(es, cs, (_, doc) => Transformed(doc) is null), "the untransformed snapshot of 10 rows", watch);

            // A new file whose AppliesTo names the stream's table changes what the stream runs with: it restarts from its
            // checkpoint (no new snapshot), and changes from then on go through the transformer.
            await File.WriteAllTextAsync(Path.Combine(hooks, "orders.csx"), """
                string AppliesTo => "orders/public.orders";

                void Transform(RowView row, DocumentWriter doc) => doc.Set("transformed", 1);
                """);
            await Eventually(async () =>
            {
                await PostgresServer.ExecuteAsync(cs, "UPDATE orders SET total = total + 1 WHERE id = 4");
                await Eventually(() => IndexEqualsTableAsync(es, cs), "the update of row 4 applied", watch);
                return await IndexEqualsTableAsync(es, cs, (id, doc) => Transformed(doc) == (id == "4" ? 1 : null));
            }, "a change after the new transformer written through it", watch);
            watch.Output.Should().Contain("orders.csx)", "the restart names the transformer in the stream's new shape");
            Regex.Matches(watch.Output, "taking the snapshot|taking a new snapshot").Should().HaveCount(1, "the restart resumed from the slot, without a new snapshot");

            watch.Terminate();
            (await watch.WaitForExitAsync(Guard)).Should().Be(0, watch.Output);
        }
        finally
        {
            watch.KillIfRunning();
            await DropInactiveSlotsAsync(cs);
        }
    }

    /// <summary>A database with <c>orders</c> (<paramref name="rows"/> rows), an empty hooks folder and a flows.yaml of one <c>mode: cdc</c> flow into <see cref="Index"/>.</summary>
    private static async Task<(string Cs, string Slot, string Hooks, string Config)> CreateAsync(string database, int rows, ElasticsearchTestServer es)
    {
        var cs = await (await PostgresServer.GetAsync()).CreateDatabaseAsync(database);
        await PostgresServer.ExecuteAsync(cs, $"CREATE TABLE orders(id int PRIMARY KEY, total numeric NOT NULL, note text); INSERT INTO orders SELECT g, g, 'n' || g FROM generate_series(1, {rows}) g;");
        var slot = "watch_" + Guid.NewGuid().ToString("N")[..16];
        var root = Directory.CreateTempSubdirectory("etlfunnel-watch-cdc-").FullName;
        var hooks = Directory.CreateDirectory(Path.Combine(root, "hooks")).FullName;
        var config = Path.Combine(root, "flows.yaml");
        await File.WriteAllTextAsync(config, $$"""
            state: {{Path.Combine(root, "state")}}
            flows:
              - name: orders
                mode: cdc
                slot: {{slot}}
                source: {postgres: "{{cs}}"}
                destination: {elasticsearch: "{{es.Uri}}"}
                pipelines:
                  - table: orders
                    index: {{Index}}
            """);
        return (cs, slot, hooks, config);
    }

    /// <summary>Tests leave no slot behind: the stream released its slot when the process stopped (or was killed).</summary>
    private static async Task DropInactiveSlotsAsync(string cs)
    {
        await using var conn = new NpgsqlConnection(cs);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT count(pg_drop_replication_slot(slot_name)) FROM pg_replication_slots WHERE database = current_database() AND NOT active", conn);
        await cmd.ExecuteScalarAsync();
    }

    private static int? Transformed(JsonElement doc) => doc.TryGetProperty("transformed", out var v) ? v.GetInt32() : null;

    private static Regex MetricLine(string name) => new($@"^{name}\{{[^}}\n]*flow=""orders""[^}}\n]*\}} (\S+)", RegexOptions.Multiline);

    private static Regex LanesLine(int lanes) => new($@"streaming slot \S+ \(publication \S+\) from \S+ with {lanes} apply lane\(s\)");

    /// <summary>The index holds exactly the table's rows, each document with the row's total and note.</summary>
    private static async Task<bool> IndexEqualsTableAsync(ElasticsearchTestServer es, string cs, Func<string, JsonElement, bool>? also = null)
    {
        if (!es.Exists(Index))
        {
            return false;
        }

        var expected = new Dictionary<string, (decimal Total, string? Note)>();
        await using (var conn = new NpgsqlConnection(cs))
        {
            await conn.OpenAsync();
            await using var cmd = new NpgsqlCommand("SELECT id, total, note FROM orders", conn);
            await using var r = await cmd.ExecuteReaderAsync();
            while (await r.ReadAsync())
            {
                expected[r.GetInt32(0).ToString(System.Globalization.CultureInfo.InvariantCulture)] = (r.GetDecimal(1), r.IsDBNull(2) ? null : r.GetString(2));
            }
        }

        var docs = es.Documents(Index);
        if (docs.Count != expected.Count)
        {
            return false;
        }

        foreach (var (id, (total, note)) in expected)
        {
            if (!docs.TryGetValue(id, out var source))
            {
                return false;
            }

            using var doc = JsonDocument.Parse(source);
            if (doc.RootElement.GetProperty("total").GetDecimal() != total || doc.RootElement.GetProperty("note").GetString() != note || (also is not null && !also(id, doc.RootElement)))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The flow's entry in /healthz's "streams".</summary>
    private static async Task<JsonElement> StreamJson(HttpClient http)
    {
        using var response = await http.GetAsync("/healthz");
        using var health = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return health.RootElement.GetProperty("streams").EnumerateArray().Single(s => s.GetProperty("flow").GetString() == "orders").Clone();
    }

    private static async Task<(bool Active, string? Confirmed, string Current)> SlotAsync(string cs, string slot)
    {
        await using var conn = new NpgsqlConnection(cs);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT active, confirmed_flush_lsn::text, pg_current_wal_lsn()::text FROM pg_replication_slots WHERE slot_name = $1", conn);
        cmd.Parameters.AddWithValue(slot);
        await using var r = await cmd.ExecuteReaderAsync();
        (await r.ReadAsync()).Should().BeTrue($"slot {slot} exists");
        return (r.GetBoolean(0), r.IsDBNull(1) ? null : r.GetString(1), r.GetString(2));
    }

    private static async Task Eventually(Func<Task<bool>> condition, string what, WatchProcess watch)
    {
        using var timeout = new CancellationTokenSource(Guard);
        while (!await condition())
        {
            if (timeout.IsCancellationRequested || watch.HasExited)
            {
                throw new TimeoutException($"Gave up waiting for: {what}. Process output:\n{watch.Output}");
            }

            await Task.Delay(200, CancellationToken.None);
        }
    }
}
