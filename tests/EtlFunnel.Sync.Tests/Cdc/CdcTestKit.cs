using System.Text.Json;
using EtlFunnel.Destinations;
using EtlFunnel.Sync.Cdc;
using EtlFunnel.Sync.Tests.Support;
using Npgsql;

namespace EtlFunnel.Sync.Tests.Cdc;

/// <summary>Helpers of the CDC tests: unique slot names, slot cleanup, and the "index equals table" oracle.</summary>
internal static class CdcTestKit
{
    /// <summary>A job over <paramref name="table"/> whose flows all use one slot and publication unique to this test (slots are cluster-wide).</summary>
    public static SyncJob Job(SyncTestBed bed, string table, int pipelines, SyncDestination destination, string index, CdcTruncatePolicy truncate = CdcTruncatePolicy.Stop, string? slot = null)
    {
        slot ??= "t_" + Guid.NewGuid().ToString("N")[..20];
        var job = bed.Job(table, 1, pipelines, destination: destination, index: index);
        return job with { Flows = [.. job.Flows.Select(f => f with { Cdc = new CdcFlowSettings(slot, slot) { Truncate = truncate } })] };
    }

    public static CdcRunOptions UntilCaughtUp => new() { UntilCaughtUp = true, HeartbeatInterval = TimeSpan.FromMilliseconds(200) };

    /// <summary>Drops every replication slot of the bed's database, so no test leaves WAL pinned on the shared cluster.</summary>
    public static async Task DropSlotsAsync(SyncTestBed bed)
    {
        await using var conn = new NpgsqlConnection(bed.ConnectionString);
        await conn.OpenAsync();
        for (var attempt = 0; attempt < 50; attempt++)
        {
            await using var cmd = new NpgsqlCommand(
                "SELECT count(pg_drop_replication_slot(slot_name)) FROM pg_replication_slots WHERE database = current_database() AND NOT active", conn);
            await cmd.ExecuteScalarAsync();
            await using var left = new NpgsqlCommand("SELECT count(*) FROM pg_replication_slots WHERE database = current_database()", conn);
            if ((long)(await left.ExecuteScalarAsync())! == 0)
            {
                return;
            }

            // A walsender that is still shutting down holds its slot for a moment.
            await Task.Delay(100);
        }
    }

    /// <summary>The documents a full (snapshot-path) sync writes for the table now: id → source JSON text.</summary>
    public static async Task<Dictionary<string, string>> TableDocumentsAsync(SyncTestBed bed, string table)
    {
        var dir = Path.Combine(bed.Root, "oracle-" + Guid.NewGuid().ToString("N"));
        var options = bed.Options() with { StateDirectory = Path.Combine(dir, "state"), DeadLetterDirectory = Path.Combine(dir, "dead") };
        var job = bed.Job(table, 1, 1, options, new FilesDestination(Path.Combine(dir, "out")), index: "oracle");
        var report = await new SyncEngine().RunAsync(job);
        report.Outcome.Should().Be(SyncOutcome.Succeeded);
        var docs = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var file in Directory.EnumerateFiles(Path.Combine(dir, "out"), "*.ndjson", SearchOption.AllDirectories))
        {
            var lines = File.ReadAllLines(file);
            for (var i = 0; i < lines.Length; i += 2)
            {
                using var action = JsonDocument.Parse(lines[i]);
                docs[action.RootElement.GetProperty("index").GetProperty("_id").GetString()!] = lines[i + 1];
            }
        }

        return docs;
    }

    /// <summary>
    /// Loads every versioned action under <paramref name="directory"/> as Elasticsearch would (external_gte: a write applies when its
    /// version is at least the stored one, deletes keep a tombstone), whatever the order of the lane files; returns the live documents.
    /// </summary>
    public static Dictionary<string, string> LoadVersionedFiles(string directory)
    {
        var store = new Dictionary<string, (long Version, string? Source)>(StringComparer.Ordinal);
        foreach (var file in Directory.EnumerateFiles(directory, "*.ndjson", SearchOption.AllDirectories))
        {
            var lines = File.ReadAllLines(file);
            for (var i = 0; i < lines.Length; i++)
            {
                using var action = JsonDocument.Parse(lines[i]);
                var (name, meta) = action.RootElement.EnumerateObject().Select(p => (p.Name, p.Value)).Single();
                var id = meta.GetProperty("_id").GetString()!;
                var version = meta.GetProperty("version").GetInt64();
                meta.GetProperty("version_type").GetString().Should().Be("external_gte");
                string? source = null;
                if (name == "index")
                {
                    source = lines[++i];
                }
                else
                {
                    name.Should().Be("delete");
                }

                if (!store.TryGetValue(id, out var stored) || version >= stored.Version)
                {
                    store[id] = (version, source);
                }
            }
        }

        return store.Where(d => d.Value.Source is not null).ToDictionary(d => d.Key, d => d.Value.Source!, StringComparer.Ordinal);
    }

    /// <summary>
    /// The index equals the table, document by document: the same ids, and each source byte-for-byte the snapshot path's document,
    /// except that a column added while streaming is absent (not null) in documents of rows not changed since (<paramref name="addedColumns"/>).
    /// </summary>
    public static void AssertSameDocuments(IReadOnlyDictionary<string, string> actual, IReadOnlyDictionary<string, string> expected, params string[] addedColumns)
    {
        actual.Keys.Should().BeEquivalentTo(expected.Keys, "the index holds exactly the table's rows");
        foreach (var (id, source) in expected)
        {
            var got = actual[id];
            if (got == source)
            {
                continue;
            }

            using var e = JsonDocument.Parse(source);
            using var a = JsonDocument.Parse(got);
            var expectedFields = e.RootElement.EnumerateObject()
                .Where(p => !(addedColumns.Contains(p.Name) && p.Value.ValueKind == JsonValueKind.Null && !a.RootElement.TryGetProperty(p.Name, out _)))
                .Select(p => $"\"{p.Name}\":{p.Value.GetRawText()}");
            var actualFields = a.RootElement.EnumerateObject().Select(p => $"\"{p.Name}\":{p.Value.GetRawText()}");
            actualFields.Should().Equal(expectedFields, $"document {id}: {got} vs the table's {source}");
        }
    }
}
