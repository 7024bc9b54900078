using EtlFunnel.Sync.Runtime;
using EtlFunnel.Sync.Tests.Support;
using EtlFunnel.Testing.Postgres;
using Npgsql;
using Serilog;
using Serilog.Core;
using Serilog.Events;

namespace EtlFunnel.Sync.Tests.Postgres;

/// <summary>Values that used to fail a whole table (or vanish) against a real server.</summary>
public sealed class ValueEdgeTests
{
    [Fact]
    public async Task Json_values_jsonb_cannot_hold_are_synced_as_stored_instead_of_failing_the_table()
    {
        await using var bed = await SyncTestBed.CreateAsync("json",
            "CREATE TABLE j(id int PRIMARY KEY, v json); INSERT INTO j VALUES " +
            "(1, '{\"nul\": \"a\\u0000b\"}'), (2, '\"\\ud800\"'), (3, '1e1000000'), (4, E'{\"k\": 1,\\n \"k\": 2}'), (5, '[1, {\"x\": null}]'), (6, NULL);");
        var report = await new SyncEngine().RunAsync(bed.Job("j", 1, 1));

        report.Outcome.Should().Be(SyncOutcome.Succeeded, report.Summary);
        var lines = File.ReadAllLines(Directory.EnumerateFiles(bed.OutputDirectory, "*.ndjson", SearchOption.AllDirectories).Single());
        var sources = Enumerable.Range(0, lines.Length / 2).ToDictionary(i => bed.ReadOutput()[i].Id, i => lines[(2 * i) + 1]);
        sources["1"].Should().Be("{\"id\":1,\"v\":{\"nul\": \"a\\u0000b\"}}");
        sources["2"].Should().Be("{\"id\":2,\"v\":\"\\ud800\"}");
        sources["3"].Should().Be("{\"id\":3,\"v\":1e1000000}", "the number as written; a destination that cannot hold it rejects that one document");
        sources["4"].Should().Be("{\"id\":4,\"v\":{\"k\": 1,  \"k\": 2}}", "the line break between tokens becomes a space; keys stay as stored");
        sources["5"].Should().Be("{\"id\":5,\"v\":[1, {\"x\": null}]}");
        sources["6"].Should().Be("{\"id\":6,\"v\":null}");
    }

    [Fact]
    public async Task A_sql_ascii_database_with_bytes_that_are_not_utf8_syncs_them_as_replacement_characters()
    {
        var server = await PostgresServer.GetAsync();
        var name = $"sqlascii_{Guid.NewGuid():N}";
        await PostgresServer.ExecuteAsync(server.AdminConnectionString, $"CREATE DATABASE \"{name}\" ENCODING 'SQL_ASCII' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'");
        var cs = new NpgsqlConnectionStringBuilder(server.AdminConnectionString) { Database = name }.ConnectionString;
        await PostgresServer.ExecuteAsync(cs,
            "CREATE TABLE a(id int PRIMARY KEY, s text, arr text[], k text); " +
            "INSERT INTO a VALUES (1, E'caf\\xe9', ARRAY[E'na\\xefve', 'ok'], 'plain'), (2, 'ascii only', ARRAY['x'], 'y');");
        await using var bed = await SyncTestBed.CreateAsync("sqlascii");
        var job = bed.Job("a", 1, 1);
        job = job with { Flows = [job.Flows[0] with { SourceConnectionString = cs }] };

        var report = await new SyncEngine().RunAsync(job);

        report.Outcome.Should().Be(SyncOutcome.Succeeded, report.Summary + string.Join("; ", report.Replicas.Select(r => r.Error)));
        var docs = bed.ReadOutput().ToDictionary(d => d.Id, d => d.Source);
        docs.Should().HaveCount(2, "every row is synced, not nothing");
        docs["1"].GetProperty("s").GetString().Should().Be("caf\uFFFD");
        docs["1"].GetProperty("arr")[0].GetString().Should().Be("na\uFFFDve");
        docs["2"].GetProperty("s").GetString().Should().Be("ascii only");
    }

    [Fact]
    public async Task A_foreign_table_partition_is_reported_by_name_not_skipped_silently()
    {
        await using var bed = await SyncTestBed.CreateAsync("foreign",
            "CREATE EXTENSION file_fdw; CREATE SERVER files FOREIGN DATA WRAPPER file_fdw; " +
            "CREATE TABLE m(id int NOT NULL, v text) PARTITION BY RANGE (id); " +
            "CREATE TABLE m_local PARTITION OF m FOR VALUES FROM (0) TO (1000); " +
            "CREATE FOREIGN TABLE m_remote PARTITION OF m FOR VALUES FROM (1000) TO (2000) SERVER files OPTIONS (filename '/dev/null', format 'csv'); " +
            "INSERT INTO m_local SELECT g, 'v' FROM generate_series(0, 99) g;");
        var sink = new CollectingSink();
        using var logger = new LoggerConfiguration().MinimumLevel.Debug().WriteTo.Sink(sink).CreateLogger();

        var report = await new SyncEngine(new Serilog.Extensions.Logging.SerilogLoggerFactory(logger).CreateLogger("sync")).RunAsync(bed.Job("m", 1, 2, keys: ["id"]));

        report.Outcome.Should().Be(SyncOutcome.Succeeded, report.Summary);
        bed.ReadOutput().Should().HaveCount(100);
        sink.Events.Where(e => e.Level == LogEventLevel.Warning).Select(e => e.RenderMessage())
            .Should().ContainSingle(m => m.Contains("m_remote", StringComparison.Ordinal) && m.Contains("NOT synced", StringComparison.Ordinal), string.Join("\n", sink.Events.Select(e => e.RenderMessage())));
    }

    [Theory]
    [InlineData("22P05", false)] // untranslatable character
    [InlineData("22003", false)] // numeric value out of range
    [InlineData("42P01", false)] // undefined table
    [InlineData("57P01", true)] // admin shutdown / pg_terminate_backend
    [InlineData("08006", true)] // connection failure
    [InlineData("53300", true)] // too many connections
    [InlineData("40001", true)] // serialization failure
    public void Server_errors_are_retried_only_when_reading_again_can_succeed(string sqlState, bool transient)
    {
        ReplicaRunner.IsTransient(new PostgresException("m", "ERROR", "ERROR", sqlState)).Should().Be(transient);
    }

    private sealed class CollectingSink : ILogEventSink
    {
        private readonly List<LogEvent> _events = [];

        public IReadOnlyList<LogEvent> Events
        {
            get
            {
                lock (_events)
                {
                    return [.. _events];
                }
            }
        }

        public void Emit(LogEvent logEvent)
        {
            lock (_events)
            {
                _events.Add(logEvent);
            }
        }
    }
}
