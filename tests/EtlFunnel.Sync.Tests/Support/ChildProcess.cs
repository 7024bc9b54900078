using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using EtlFunnel.Destinations;
using EtlFunnel.Sync.Runtime;

namespace EtlFunnel.Sync.Tests.Support;

/// <summary>Arguments of a sync run in a child process (the crash tests kill it with SIGKILL).</summary>
internal sealed record ChildSyncArgs(
    string ConnectionString, string Table, string Output, string State, string DeadLetters, int Flows, int Pipelines,
    int BlocksPerChunk, int BatchSize, int DelayPerBatchMs, string? ElasticsearchUrl = null, string? StateTableConnectionString = null,
    IReadOnlyList<string>? MoreTables = null);

internal static class ChildProcess
{
    public const string Verb = "sync-child";

    public static Process Start(ChildSyncArgs args)
    {
        var dll = typeof(ChildProcess).Assembly.Location;
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("exec");
        psi.ArgumentList.Add(dll);
        psi.ArgumentList.Add(Verb);
        psi.ArgumentList.Add(JsonSerializer.Serialize(args));
        return Process.Start(psi) ?? throw new InvalidOperationException("could not start the child process");
    }

    /// <summary>The child: runs the job with a per-batch delay so the parent can kill it part-way.</summary>
    public static async Task<int> RunAsync(string json)
    {
        var a = JsonSerializer.Deserialize<ChildSyncArgs>(json)!;
        var job = BuildJob(a);
        var hooks = new SyncTestHooks { AfterDispatch = _ => new ValueTask(Task.Delay(a.DelayPerBatchMs)) };
        var report = await new SyncEngine(null, hooks).RunAsync(job);
        Console.WriteLine(report.Summary);
        return report.IsSuccess ? 0 : 1;
    }

    public static SyncJob BuildJob(ChildSyncArgs a) => new()
    {
        Options = new SyncOptions
        {
            StateDirectory = a.State,
            StateTable = a.StateTableConnectionString is null ? null : new PostgresStateTable(a.StateTableConnectionString),
            DeadLetterDirectory = a.DeadLetters,
            BlocksPerChunk = a.BlocksPerChunk,
            MaxConcurrency = 4,
            RetryBaseDelay = TimeSpan.FromMilliseconds(5),
        },
        Flows = Enumerable.Range(0, a.Flows).Select(f => new SyncFlow
        {
            Name = $"flow_{f}",
            SourceConnectionString = a.ConnectionString,
            Destination = a.ElasticsearchUrl is null ? new FilesDestination(a.Output) : new ElasticsearchDestination(new Uri(a.ElasticsearchUrl)),
            // The main table goes to index "idx", every other table to an index of its own name.
            Pipelines = new[] { a.Table }.Concat(a.MoreTables ?? []).SelectMany(table => Enumerable.Range(0, a.Pipelines).Select(p => new SyncPipeline
            {
                ReplicaName = $"{table}_{p}",
                Table = table,
                IndexName = table == a.Table ? "idx" : table,
                Partition = PartitionRange.ForReplica(f, a.Flows).Split(p, a.Pipelines),
                Props = new Dictionary<string, object?> { ["batch_size"] = a.BatchSize.ToString(CultureInfo.InvariantCulture) },
            })).ToList(),
        }).ToList(),
    };
}

internal static class Program
{
    /// <summary>One measured sync of a table into NDJSON files (`sync-bench &lt;cs&gt; &lt;table&gt; &lt;replicas&gt; &lt;dir&gt;`); fresh state each time.</summary>
    private static async Task<int> Bench(string cs, string table, int replicas, string dir, string? stateTable = null)
    {
        if (Directory.Exists(dir))
        {
            Directory.Delete(dir, recursive: true);
        }

        var a = new ChildSyncArgs(cs, table, Path.Combine(dir, "out"), Path.Combine(dir, "state"), Path.Combine(dir, "dead"), 1, replicas, 1024, 5000, 0,
            StateTableConnectionString: stateTable);
        var watch = Stopwatch.StartNew();
        var report = await new SyncEngine().RunAsync(ChildProcess.BuildJob(a));
        watch.Stop();
        Console.WriteLine($"{report.Summary} replicas={replicas} seconds={watch.Elapsed.TotalSeconds:F2} rows/s={report.RowsRead / watch.Elapsed.TotalSeconds:F0} " +
            $"bytes={Directory.EnumerateFiles(a.Output, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length)}");
        return report.IsSuccess ? 0 : 1;
    }

    public static int Main(string[] args)
    {
        if (args.Length == 2 && args[0] == ChildProcess.Verb)
        {
            return ChildProcess.RunAsync(args[1]).GetAwaiter().GetResult();
        }

        if (args.Length == 2 && args[0] == Cdc.CdcChild.Verb)
        {
            return Cdc.CdcChild.RunAsync(args[1]).GetAwaiter().GetResult();
        }

        if (args.Length is 5 or 6 && args[0] == "sync-bench")
        {
            // An optional sixth argument keeps the checkpoints in a PostgreSQL table (that connection string) instead of a folder.
            return Bench(args[1], args[2], int.Parse(args[3], CultureInfo.InvariantCulture), args[4], args.Length == 6 ? args[5] : null).GetAwaiter().GetResult();
        }

        if (args.Length == 4 && args[0] == "state-bench")
        {
            return StateBench.RunAsync(args[1], int.Parse(args[2], CultureInfo.InvariantCulture), int.Parse(args[3], CultureInfo.InvariantCulture)).GetAwaiter().GetResult();
        }

        Console.Error.WriteLine($"This is a test assembly; run it with `dotnet test`. (`{ChildProcess.Verb} <json>` runs a sync for the crash tests.)");
        return 2;
    }
}
