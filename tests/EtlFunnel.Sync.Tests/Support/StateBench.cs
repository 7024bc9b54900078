using System.Diagnostics;
using System.Globalization;
using EtlFunnel.Sync.State;

namespace EtlFunnel.Sync.Tests.Support;

/// <summary>
/// `state-bench &lt;connection string&gt; &lt;saves per writer&gt; &lt;writers&gt;`: checkpoint save latency of the folder store
/// and the PostgreSQL-table store, each writer saving its own replica as the engine does. Prints numbers, asserts nothing.
/// </summary>
internal static class StateBench
{
    public static async Task<int> RunAsync(string connectionString, int saves, int writers)
    {
        var folder = Directory.CreateTempSubdirectory("etlfunnel-state-bench-").FullName;
        try
        {
            var scope = "bench-" + Guid.NewGuid().ToString("N")[..8];
            await MeasureAsync("folder      ", new SyncOptions { StateDirectory = folder }, saves, writers);
            // Twice: the first open also pays for loading and JIT-compiling Npgsql in this process.
            await MeasureAsync("table (cold)", new SyncOptions { StateTable = new PostgresStateTable(connectionString) { Scope = scope } }, saves, writers);
            await MeasureAsync("table (warm)", new SyncOptions { StateTable = new PostgresStateTable(connectionString) { Scope = scope } }, saves, writers);
            await PostgresServerCleanup(connectionString, scope);
            return 0;
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private static async Task MeasureAsync(string name, SyncOptions options, int saves, int writers)
    {
        var open = Stopwatch.StartNew();
        await using var store = await StateStores.OpenAsync(options, CancellationToken.None);
        var openMs = open.Elapsed.TotalMilliseconds;
        var latencies = new double[saves * writers];
        var wall = Stopwatch.StartNew();
        await Parallel.ForEachAsync(Enumerable.Range(0, writers), new ParallelOptions { MaxDegreeOfParallelism = writers }, async (w, _) =>
        {
            var state = new ReplicaState { RunId = "bench" };
            for (var i = 0; i < saves; i++)
            {
                state.NextBlock = i;
                state.RowsRead += 1000;
                var t = Stopwatch.GetTimestamp();
                await store.SaveAsync("flow_bench", $"replica_{w}", state, CancellationToken.None);
                latencies[(w * saves) + i] = Stopwatch.GetElapsedTime(t).TotalMilliseconds;
            }
        });
        wall.Stop();
        Array.Sort(latencies);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{name}: open {openMs:F1} ms; {latencies.Length} saves by {writers} writers in {wall.Elapsed.TotalSeconds:F2} s = {latencies.Length / wall.Elapsed.TotalSeconds:F0} saves/s; " +
            $"latency p50 {latencies[latencies.Length / 2]:F2} ms, p99 {latencies[(int)(latencies.Length * 0.99)]:F2} ms, max {latencies[^1]:F2} ms"));
    }

    private static async Task PostgresServerCleanup(string connectionString, string scope)
    {
        await using var conn = new Npgsql.NpgsqlConnection(connectionString);
        await conn.OpenAsync();
        await using var cmd = new Npgsql.NpgsqlCommand("DELETE FROM etlfunnel.checkpoints WHERE scope = $1", conn);
        cmd.Parameters.AddWithValue(scope);
        await cmd.ExecuteNonQueryAsync();
    }
}
