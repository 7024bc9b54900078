using System.Text.Json;
using EtlFunnel.Destinations;
using EtlFunnel.Sync;
using EtlFunnel.Testing.Postgres;

namespace EtlFunnel.Cluster.Tests.Snapshots;

/// <summary>
/// The planner's exported snapshot as the workers use it, in process against the real PostgreSQL: replicas started one after
/// another, with writes committed in between, read exactly the table as of the export; once the planner's session is gone
/// a replica fails with a message saying so instead of reading under a snapshot of its own.
/// </summary>
public sealed class SnapshotHandoffTests
{
    private const int Rows = 20_000;

    private static SyncJob Job(string source, string root, int replica) => new()
    {
        Options = new SyncOptions
        {
            StateDirectory = Path.Combine(root, $"state-{replica}"),
            DeadLetterDirectory = Path.Combine(root, "dead"),
            // As a cluster worker runs a replica: in place, no alias swap, one replica per engine run.
            Mode = SyncMode.Incremental,
            BlocksPerChunk = 8,
            MaxConcurrency = 1,
        },
        Flows =
        [
            new SyncFlow
            {
                Name = "shop",
                SourceConnectionString = source,
                Destination = new FilesDestination(Path.Combine(root, $"out-{replica}")),
                Pipelines = replica < 0
                    ? [.. Enumerable.Range(0, 2).Select(Pipeline)]
                    : [Pipeline(replica)],
            },
        ],
    };

    private static SyncPipeline Pipeline(int i) => new()
    {
        ReplicaName = $"items_{i}",
        Schema = "shop",
        Table = "items",
        IndexName = "items",
        Partition = PartitionRange.ForReplica(i, 2),
    };

    private static Dictionary<int, int> Read(string root)
    {
        var docs = new Dictionary<int, int>();
        foreach (var file in Directory.EnumerateFiles(root, "*.ndjson", SearchOption.AllDirectories))
        {
            var lines = File.ReadAllLines(file);
            for (var i = 0; i < lines.Length; i += 2)
            {
                using var source = JsonDocument.Parse(lines[i + 1]);
                var id = source.RootElement.GetProperty("id").GetInt32();
                docs.Should().NotContainKey(id, "every row is read once");
                docs[id] = source.RootElement.GetProperty("v").GetInt32();
            }
        }

        return docs;
    }

    [Fact]
    public async Task Replicas_started_after_concurrent_writes_read_the_table_as_of_the_planners_snapshot_and_fail_clearly_once_it_is_gone()
    {
        var server = await PostgresServer.GetAsync();
        var source = await server.CreateDatabaseAsync("handoff");
        await PostgresServer.ExecuteAsync(source, $"""
            CREATE SCHEMA shop;
            CREATE TABLE shop.items (id integer PRIMARY KEY, v integer NOT NULL);
            INSERT INTO shop.items SELECT g, 0 FROM generate_series(1, {Rows}) g;
            """);
        var root = Directory.CreateTempSubdirectory("etlfunnel-handoff-").FullName;

        SyncReport[] reports;
        SnapshotHandoff handoff;
        await using (var exported = await ExportedSnapshots.OpenAsync(Job(source, root, -1), CancellationToken.None))
        {
            handoff = exported.For(Job(source, root, -1).Flows[0]);
            handoff.Blocks.Should().ContainKey("shop.items");

            // Written after the export, before any replica starts: new rows land at the end of the heap (the last replica's
            // share), and updated rows' new versions too, so a replica taking its own snapshot now would see them.
            await PostgresServer.ExecuteAsync(source, $"""
                INSERT INTO shop.items SELECT g, 1 FROM generate_series({Rows + 1}, {Rows + 5_000}) g;
                UPDATE shop.items SET v = 2 WHERE id <= 1000;
                DELETE FROM shop.items WHERE id BETWEEN 1001 AND 1100;
                """);

            reports = [
                await new SyncEngine(null, handoff).RunAsync(Job(source, root, 0)),
                await new SyncEngine(null, handoff).RunAsync(Job(source, root, 1)),
            ];
        }

        reports.Should().OnlyContain(r => r.Outcome == SyncOutcome.Succeeded);
        var docs = Read(root);
        docs.Keys.Order().Should().Equal(Enumerable.Range(1, Rows), "the table as of the planner's snapshot, once each");
        docs.Values.Should().OnlyContain(v => v == 0, "no row version written after the snapshot");

        // The planner's session is gone (it stopped): a replica placed now must not read under a new snapshot.
        var late = () => new SyncEngine(null, handoff).RunAsync(Job(source, Path.Combine(root, "late"), 0));
        (await late.Should().ThrowAsync<SyncConfigurationException>())
            .Which.Message.Should().Contain($"snapshot {handoff.SnapshotId} no longer exists").And.Contain("the run's coordinator stopped").And.Contain("Run again");
        Directory.Exists(Path.Combine(root, "late", "out-0")).Should().BeFalse("nothing was read");
    }
}
