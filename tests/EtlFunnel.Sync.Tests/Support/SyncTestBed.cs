using System.Text.Json;
using EtlFunnel.Destinations;
using EtlFunnel.Testing.Postgres;

namespace EtlFunnel.Sync.Tests.Support;

/// <summary>A fresh database plus temp folders for output, state and dead letters; deleted on dispose.</summary>
internal sealed class SyncTestBed : IAsyncDisposable
{
    private SyncTestBed(string connectionString, string root)
    {
        ConnectionString = connectionString;
        Root = root;
    }

    public string ConnectionString { get; }

    public string Root { get; }

    public string OutputDirectory => Path.Combine(Root, "out");

    public string StateDirectory => Path.Combine(Root, "state");

    public string DeadLetterDirectory => Path.Combine(Root, "dead");

    public static async Task<SyncTestBed> CreateAsync(string prefix, string? setupSql = null)
    {
        var server = await PostgresServer.GetAsync();
        var cs = await server.CreateDatabaseAsync(prefix);
        if (setupSql is not null)
        {
            await PostgresServer.ExecuteAsync(cs, setupSql);
        }

        var root = Path.Combine(Path.GetTempPath(), "etlfunnel-sync-tests", $"{prefix}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(root);
        return new SyncTestBed(cs, root);
    }

    public Task ExecuteAsync(string sql) => PostgresServer.ExecuteAsync(ConnectionString, sql);

    public SyncOptions Options(SyncMode mode = SyncMode.Full, int blocksPerChunk = 1024) => new()
    {
        StateDirectory = StateDirectory,
        DeadLetterDirectory = DeadLetterDirectory,
        Mode = mode,
        BlocksPerChunk = blocksPerChunk,
        MaxConcurrency = 4,
        RetryBaseDelay = TimeSpan.FromMilliseconds(5),
    };

    /// <summary>flows × pipelines replicas of one table, each pipeline replica reading its share of its flow replica's share.</summary>
    public SyncJob Job(string table, int flows, int pipelines, SyncOptions? options = null, SyncDestination? destination = null,
        string index = "idx", string? incremental = null, IReadOnlyDictionary<string, object?>? props = null, IReadOnlyList<string>? keys = null) => new()
    {
        Options = options ?? Options(),
        Flows = Enumerable.Range(0, flows).Select(f => new SyncFlow
        {
            Name = $"flow_{f}",
            SourceConnectionString = ConnectionString,
            Destination = destination ?? new FilesDestination(OutputDirectory),
            Pipelines = Enumerable.Range(0, pipelines).Select(p => new SyncPipeline
            {
                ReplicaName = $"{table}_{p}",
                Table = table,
                IndexName = index,
                IncrementalColumn = incremental,
                KeyColumns = keys ?? [],
                Partition = PartitionRange.ForReplica(f, flows).Split(p, pipelines),
                Props = props ?? new Dictionary<string, object?>(),
            }).ToList(),
        }).ToList(),
    };

    /// <summary>Every (action, source) pair of every NDJSON file under the output folder, checked for bulk shape.</summary>
    public List<(string Index, string Id, JsonElement Source)> ReadOutput()
    {
        var docs = new List<(string, string, JsonElement)>();
        if (!Directory.Exists(OutputDirectory))
        {
            return docs;
        }

        foreach (var file in Directory.EnumerateFiles(OutputDirectory, "*.ndjson", SearchOption.AllDirectories))
        {
            var lines = File.ReadAllLines(file);
            lines.Length.Should().Be(lines.Length / 2 * 2, $"{file} must hold action/source line pairs");
            for (var i = 0; i < lines.Length; i += 2)
            {
                using var action = JsonDocument.Parse(lines[i]);
                var meta = action.RootElement.GetProperty("index");
                using var source = JsonDocument.Parse(lines[i + 1]);
                docs.Add((meta.GetProperty("_index").GetString()!, meta.GetProperty("_id").GetString()!, source.RootElement.Clone()));
            }
        }

        return docs;
    }

    /// <summary>Documents per file in file order (incremental runs append), files in name order.</summary>
    public IEnumerable<(string Index, string Id, JsonElement Source)> ReadOutputInOrder()
    {
        foreach (var file in Directory.EnumerateFiles(OutputDirectory, "*.ndjson", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            var lines = File.ReadAllLines(file);
            for (var i = 0; i < lines.Length; i += 2)
            {
                using var action = JsonDocument.Parse(lines[i]);
                var meta = action.RootElement.GetProperty("index");
                using var source = JsonDocument.Parse(lines[i + 1]);
                yield return (meta.GetProperty("_index").GetString()!, meta.GetProperty("_id").GetString()!, source.RootElement.Clone());
            }
        }
    }

    public long ReadOutputLines() => !Directory.Exists(OutputDirectory) ? 0
        : Directory.EnumerateFiles(OutputDirectory, "*.ndjson", SearchOption.AllDirectories).Sum(f => File.ReadLines(f).LongCount());

    public async ValueTask DisposeAsync()
    {
        await Task.Yield();
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
