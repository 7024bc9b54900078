using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Loggers;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using EtlFunnel.Benchmarks.Support;
using EtlFunnel.Execution.Models;
using EtlFunnel.Samples.Plugins;
using EtlFunnel.Scripting;

namespace EtlFunnel.Benchmarks.Measures;

/// <summary>
/// Hook invocation overhead (BenchmarkDotNet, in-process toolchain, short job): the seed flow hook through the host
/// (<see cref="IOrchestrationHook.InvokeAsync"/>: time budget, fresh script submission, result checks) against the same
/// logic called directly (the sample plugin's <see cref="CpuFlows"/>).
/// </summary>
[MemoryDiagnoser]
public class HookInvocationBenchmarks
{
    private HookHost? _host;
    private IOrchestrationHook? _hook;
    private OrchestratorProps? _props;
    private readonly CpuFlows _direct = new();
    private readonly string _cache = Path.Combine(Path.GetTempPath(), $"etlfunnel-bench-bdn-{Environment.ProcessId}");

    /// <summary>Where the seed hooks are (set by the runner through an environment variable).</summary>
    public static string HooksDirectory => Environment.GetEnvironmentVariable("ETLFUNNEL_BENCH_HOOKS") ?? "hooks";

    /// <summary>Loads the seed hooks once.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _host = HookHost.LoadAsync(new HookHostOptions { HooksDirectory = HooksDirectory, CacheDirectory = _cache }).GetAwaiter().GetResult();
        _hook = _host.FlowHooks.Single(h => h.Name == "flow-by-cores.csx");
        _props = new OrchestratorProps
        {
            Entity = [new OrchestratorEntityDef { Name = "shop", SourceDBConn = new StatsOnlyEngine(), DestDBConn = new StatsOnlyEngine() }],
            Machine = new MachineInfo { LogicalCores = 1, TotalMemoryBytes = 8L << 30 },
        };
    }

    /// <summary>Unloads the hooks.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _host?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        if (Directory.Exists(_cache))
        {
            Directory.Delete(_cache, recursive: true);
        }
    }

    /// <summary>The hook's logic as a plain call.</summary>
    [Benchmark(Baseline = true)]
    public int Direct() => _direct.GetFlowOrchestration(_props!).Count();

    /// <summary>The same logic as a .csx hook, through the host.</summary>
    [Benchmark]
    public async Task<int> ThroughHost() => (await _hook!.InvokeAsync(_props!)).Count;
}

/// <summary>Runs the micro-benchmarks and adds their rows.</summary>
internal static class HotPath
{
    public static void Run(BenchContext ctx, ResultTable table)
    {
        Environment.SetEnvironmentVariable("ETLFUNNEL_BENCH_HOOKS", ctx.HooksDirectory);
        var job = (ctx.Smoke ? Job.Dry : Job.ShortRun).WithToolchain(InProcessEmitToolchain.Instance).WithId(ctx.Smoke ? "dry" : "short");
        var config = ManualConfig.CreateEmpty()
            .AddJob(job)
            .AddLogger(new StdErrLogger())
            .AddColumnProvider(BenchmarkDotNet.Columns.DefaultColumnProviders.Instance)
            .WithArtifactsPath(Path.Combine(ctx.WorkRoot, "bdn"))
            .WithOptions(ConfigOptions.DisableLogFile);
        var summary = BenchmarkRunner.Run<HookInvocationBenchmarks>(config);
        BenchmarkDotNet.Reports.BenchmarkReport Report(string method) => summary.Reports.Single(r => r.BenchmarkCase.Descriptor.WorkloadMethod.Name == method);
        double Median(string method)
            => Report(method).ResultStatistics?.Median ?? throw new InvalidOperationException($"BenchmarkDotNet produced no result for {method}; see its output above");
        long Allocated(string method) => Report(method) is var r ? r.GcStats.GetBytesAllocatedPerOperation(r.BenchmarkCase) ?? 0 : 0;

        var host = Median(nameof(HookInvocationBenchmarks.ThroughHost));
        var direct = Median(nameof(HookInvocationBenchmarks.Direct));
        table.Add(new ResultRow($"hot path: hook invocation, seed flow hook via host vs direct call (BenchmarkDotNet {job.Id}, in-process); overhead {Fmt.Ns(host - direct)}; allocated {Allocated(nameof(HookInvocationBenchmarks.ThroughHost))} vs {Allocated(nameof(HookInvocationBenchmarks.Direct))} B/call",
            Fmt.Ns(host), Fmt.Ns(direct), Fmt.X(host / direct), "— (info)", null));
    }

    private sealed class StdErrLogger : ILogger
    {
        public string Id => "stderr";

        public int Priority => 0;

        public void Write(LogKind logKind, string text) => Console.Error.Write(text);

        public void WriteLine() => Console.Error.WriteLine();

        public void WriteLine(LogKind logKind, string text) => Console.Error.WriteLine(text);

        public void Flush() => Console.Error.Flush();
    }
}
