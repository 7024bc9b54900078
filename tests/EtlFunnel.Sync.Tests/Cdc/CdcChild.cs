using System.Diagnostics;
using System.Text.Json;
using EtlFunnel.Destinations;
using EtlFunnel.Sync.Cdc;

namespace EtlFunnel.Sync.Tests.Cdc;

/// <summary>Arguments of a CDC run in a child process, which the crash test kills with SIGKILL mid-stream.</summary>
internal sealed record CdcChildArgs(string ConnectionString, string Table, string Slot, string ElasticsearchUrl, string State, string DeadLetters, int Lanes, int DelayPerBatchMs);

/// <summary>The `cdc-child` verb of the test assembly: streams (never stops by itself), a delay after every lane batch.</summary>
internal static class CdcChild
{
    public const string Verb = "cdc-child";

    public static Process Start(CdcChildArgs args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("exec");
        psi.ArgumentList.Add(typeof(CdcChild).Assembly.Location);
        psi.ArgumentList.Add(Verb);
        psi.ArgumentList.Add(JsonSerializer.Serialize(args));
        return Process.Start(psi) ?? throw new InvalidOperationException("could not start the child process");
    }

    public static SyncJob Job(CdcChildArgs a) => new()
    {
        Options = new SyncOptions { StateDirectory = a.State, DeadLetterDirectory = a.DeadLetters, MaxConcurrency = 4, BlocksPerChunk = 4, RetryBaseDelay = TimeSpan.FromMilliseconds(5) },
        Flows =
        [
            new SyncFlow
            {
                Name = "diff",
                SourceConnectionString = a.ConnectionString,
                Destination = new ElasticsearchDestination(new Uri(a.ElasticsearchUrl)),
                Cdc = new CdcFlowSettings(a.Slot, a.Slot) { Truncate = CdcTruncatePolicy.DeleteAll },
                Pipelines = [.. Enumerable.Range(0, a.Lanes).Select(p => new SyncPipeline
                {
                    ReplicaName = $"{a.Table}_{p}",
                    Table = a.Table,
                    IndexName = a.Table,
                    Partition = PartitionRange.Whole.Split(p, a.Lanes),
                    Props = new Dictionary<string, object?> { ["batch_size"] = 50L },
                })],
            },
        ],
    };

    public static async Task<int> RunAsync(string json)
    {
        var a = JsonSerializer.Deserialize<CdcChildArgs>(json)!;
        var report = await new CdcEngine().RunAsync(Job(a), new CdcRunOptions
        {
            HeartbeatInterval = TimeSpan.FromMilliseconds(200),
            MaxBatchSize = 20,
            AfterLaneBatch = () => new ValueTask(Task.Delay(a.DelayPerBatchMs)),
        });
        Console.WriteLine($"{report.Outcome} {report.Error}");
        return report.Outcome == SyncOutcome.Succeeded ? 0 : 1;
    }
}
