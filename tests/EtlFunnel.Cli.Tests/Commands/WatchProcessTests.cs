using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using EtlFunnel.Cli.Tests.Support;
using EtlFunnel.Testing.Elasticsearch;

namespace EtlFunnel.Cli.Tests.Commands;

/// <summary><c>etlfunnel watch</c> as a real process: real hook host watching a folder, real PostgreSQL, the Elasticsearch test server.</summary>
[Collection(SmallShopCollection.Name)]
public sealed partial class WatchProcessTests
{
    // A guard against a hung test, never an assertion about speed (Roslyn compiles in the child on a busy 2-core machine).
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(90);
    private readonly SmallShopDatabase _db;

    public WatchProcessTests(SmallShopDatabase db) => _db = db;

    /// <summary>A flow hook giving every flow <paramref name="replicas"/> replicas (shared with <see cref="WatchOperatorProcessTests"/>).</summary>
    internal static string FlowHook(int replicas) => $$"""
        using System.Collections.Generic;
        using EtlFunnel.Execution.Models;

        List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param)
        {
            var n = {{replicas}};
            var replicas = new List<OrchestratorTune>();
            foreach (var entity in param.Entity)
            {
                for (var i = 0; i < n; i++)
                {
                    replicas.Add(new OrchestratorTune
                    {
                        ParentEntityName = entity.Name,
                        NewEntityName = $"{entity.Name}_r{i}",
                        ReplicaProps = new Dictionary<string, object> { ["replica_id"] = i, ["total_replicas"] = n },
                    });
                }
            }

            return replicas;
        }
        """;

    [Fact]
    public async Task Watch_replans_on_a_hook_edit_keeps_the_last_good_plan_on_a_broken_one_and_stops_cleanly_on_SIGTERM()
    {
        await using var es = await ElasticsearchTestServer.StartAsync();
        var root = Directory.CreateTempSubdirectory("etlfunnel-watch-").FullName;
        var hooks = Directory.CreateDirectory(Path.Combine(root, "hooks")).FullName;
        var hook = Path.Combine(hooks, "flow-scale.csx");
        await File.WriteAllTextAsync(hook, FlowHook(2));
        var config = Path.Combine(root, "flows.yaml");
        await File.WriteAllTextAsync(config, $$"""
            state: {{Path.Combine(root, "state")}}
            flows:
              - name: shop
                interval: 1s
                source: {postgres: "{{_db.ConnectionString}}"}
                destination: {elasticsearch: "{{es.Uri}}"}
                pipelines:
                  - schema: shop
                    table: customers
            """);

        using var watch = WatchProcess.Start(config, hooks);
        try
        {
            var url = new Uri((await watch.WaitForLineAsync(StatusLine(), Guard)).Groups[1].Value);
            using var http = new HttpClient { BaseAddress = url };

            // First plan: 2 flow replicas; runs index every row.
            await Eventually(async () => await PlanReplicas(http) == 2, "the first plan with 2 flow replicas", watch);
            await Eventually(() => Task.FromResult(es.Exists("shop_customers") && es.Documents("shop_customers").Count == SmallShopDatabase.Customers), "a run that indexed every customer", watch);

            // Edit: 3 replicas → the diff is logged and /plan serves the new plan.
            await File.WriteAllTextAsync(hook, FlowHook(3));
            await watch.WaitForLineAsync(new Regex(@"Plan diff: flow shop: \+ shop_r2"), Guard);
            await Eventually(async () => await PlanReplicas(http) == 3, "/plan with 3 flow replicas", watch);

            // Broken edit: 503 with the diagnostic; the plan stays, and runs go on with it.
            await File.WriteAllTextAsync(hook, FlowHook(3).Replace("var n = 3;", "var n = nope;", StringComparison.Ordinal));
            string body = "";
            await Eventually(async () =>
            {
                using var response = await http.GetAsync("/healthz");
                body = await response.Content.ReadAsStringAsync();
                return response.StatusCode == HttpStatusCode.ServiceUnavailable && body.Contains("flow-scale.csx(", StringComparison.Ordinal);
            }, "/healthz 503 naming flow-scale.csx", watch);
            body.Should().Contain("error CS0103").And.Contain("last good plan");
            ReplicaCount(await http.GetStringAsync("/plan")).Should().Be(3);
            var runsWhenBroken = await SucceededRuns(http);
            await Eventually(async () => await SucceededRuns(http) > runsWhenBroken, "a run on the last good plan while the hook is broken", watch);

            // Fix: healthy again without a restart.
            await File.WriteAllTextAsync(hook, FlowHook(3));
            await Eventually(async () => (await http.GetAsync("/healthz")).StatusCode == HttpStatusCode.OK, "/healthz 200 after the fix", watch);

            watch.Terminate();
            (await watch.WaitForExitAsync(Guard)).Should().Be(0, watch.Output);
            watch.Output.Should().Contain("Stopped: runs drained");
            es.Documents("shop_customers").Should().HaveCount(SmallShopDatabase.Customers);
        }
        finally
        {
            watch.KillIfRunning();
        }
    }

    /// <summary>Flow replicas in GET /plan, or null while there is no plan yet (503).</summary>
    private static async Task<int?> PlanReplicas(HttpClient http)
    {
        using var response = await http.GetAsync("/plan");
        return response.IsSuccessStatusCode ? ReplicaCount(await response.Content.ReadAsStringAsync()) : null;
    }

    private static int ReplicaCount(string planJson)
    {
        using var plan = JsonDocument.Parse(planJson);
        return plan.RootElement.GetProperty("flows").GetArrayLength();
    }

    private static async Task<int> SucceededRuns(HttpClient http)
    {
        using var runs = JsonDocument.Parse(await http.GetStringAsync("/runs"));
        return runs.RootElement.GetProperty("runs").EnumerateArray().Count(r => r.GetProperty("outcome").GetString() == "succeeded");
    }

    /// <summary>Polls <paramref name="condition"/> until it holds; a guard against a hung test (or a watch that exited), never a speed assertion.</summary>
    internal static async Task Eventually(Func<Task<bool>> condition, string what, WatchProcess watch)
    {
        using var timeout = new CancellationTokenSource(Guard);
        while (!await condition())
        {
            if (timeout.IsCancellationRequested || watch.HasExited)
            {
                throw new TimeoutException($"Gave up waiting for: {what}. Process output:\n{watch.Output}");
            }

            await Task.Delay(100, CancellationToken.None);
        }
    }

    [GeneratedRegex(@"Status page on ""?(http://127\.0\.0\.1:\d+/?)")]
    internal static partial Regex StatusLine();
}

/// <summary>The built etlfunnel.dll run as <c>dotnet etlfunnel.dll watch ...</c> with its output captured line by line.</summary>
internal sealed class WatchProcess : IDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _lines = new();
    private readonly SemaphoreSlim _lineAdded = new(0);
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    private WatchProcess(Process process)
    {
        _process = process;
        process.OutputDataReceived += (_, e) => Add(e.Data);
        process.ErrorDataReceived += (_, e) => Add(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public string Output => string.Join('\n', _lines);

    public bool HasExited => _process.HasExited;

    public static WatchProcess Start(string config, string hooks)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { Path.Combine(AppContext.BaseDirectory, "etlfunnel.dll"), "watch", "--config", config, "--hooks", hooks, "--status-url", "http://127.0.0.1:0", "--verbose" })
        {
            info.ArgumentList.Add(arg);
        }

        info.Environment.Remove("ELASTICSEARCH_URL");
        info.Environment.Remove("ETLFUNNEL_ELASTICSEARCH_URL");
        return new WatchProcess(Process.Start(info) ?? throw new InvalidOperationException("dotnet did not start"));
    }

    /// <summary>Waits for a log line matching <paramref name="pattern"/> (lines seen before count too).</summary>
    public async Task<Match> WaitForLineAsync(Regex pattern, TimeSpan guard)
    {
        using var timeout = new CancellationTokenSource(guard);
        var seen = 0;
        while (true)
        {
            var lines = _lines.ToArray();
            for (; seen < lines.Length; seen++)
            {
                var match = pattern.Match(lines[seen]);
                if (match.Success)
                {
                    return match;
                }
            }

            if (_process.HasExited)
            {
                throw new InvalidOperationException($"etlfunnel watch exited ({_process.ExitCode}) before logging /{pattern}/:\n{Output}");
            }

            try
            {
                await _lineAdded.WaitAsync(TimeSpan.FromMilliseconds(200), timeout.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"Gave up waiting for a line matching /{pattern}/:\n{Output}");
            }
        }
    }

    /// <summary>Sends SIGTERM, as systemd or <c>kill</c> would.</summary>
    public void Terminate()
    {
        using var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    public async Task<int> WaitForExitAsync(TimeSpan guard)
    {
        using var timeout = new CancellationTokenSource(guard);
        await _process.WaitForExitAsync(timeout.Token);
        _process.WaitForExit(); // flushes the redirected output
        return _process.ExitCode;
    }

    public void KillIfRunning()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }
    }

    public void Dispose()
    {
        _process.Dispose();
        _lineAdded.Dispose();
    }

    private void Add(string? line)
    {
        if (line is not null)
        {
            _lines.Enqueue($"{_clock.Elapsed.TotalSeconds,7:0.00} {line}");
            _lineAdded.Release();
        }
    }
}
