using System.Buffers.Binary;
using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Loggers;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using EtlFunnel.Benchmarks.Support;
using EtlFunnel.Destinations;
using EtlFunnel.Execution.Models;
using EtlFunnel.Samples.Plugins;
using EtlFunnel.Scripting;
using EtlFunnel.Sync.Postgres;
using EtlFunnel.Testing.Postgres;
using Npgsql;

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
        _host = HookHost.LoadAsync(new HookHostOptions { HooksDirectory = HooksDirectory, CacheDirectory = _cache, Isolation = HookIsolation.None }).GetAwaiter().GetResult();
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

/// <summary>
/// Row → document in process (BenchmarkDotNet), on rows captured from the sync benchmark's table shape: the engine's
/// decoder over the binary COPY stream it reads today, against the previous mapping (Utf8JsonWriter per value) over the
/// stream it read before (numeric and timestamptz made into JSON text by the server's to_json). Both into reused
/// batches of 5000; Npgsql, the network and the server are not in either number.
/// </summary>
[MemoryDiagnoser]
public class RowToDocumentBenchmarks
{
    private PartitionReader? _reader;
    private DocumentBatch? _batch;
    private ReferenceMapper? _reference;

    /// <summary>The captured COPY stream and where its rows start (set by the runner before the benchmark starts).</summary>
    internal static CapturedCopy? Copy { get; set; }

    /// <summary>Builds the decoder for the captured table.</summary>
    [GlobalSetup]
    public void Setup()
    {
        var copy = Copy ?? throw new InvalidOperationException("no captured COPY stream");
        _reader = new PartitionReader(copy.Layout, null);
        _batch = new DocumentBatch("bench", 1 << 20);
        _reference = new ReferenceMapper(copy.PreviousLayout);
    }

    /// <summary>The previous mapping: Utf8JsonWriter per value, an id string per row.</summary>
    [Benchmark(Baseline = true)]
    public long Utf8JsonWriterPerValue() => _reference!.Map(Copy!.Previous, _batch!);

    /// <summary>The engine's decoder, as the sync runs it (batches of 5000 documents).</summary>
    [Benchmark]
    public long Engine()
    {
        var batch = _batch!;
        batch.Clear();
        return _reader!.DecodeAsync(new MemoryStream(Copy!.Data, writable: false), () => batch, 5000, 5 << 20, () =>
        {
            batch.Clear();
            return ValueTask.CompletedTask;
        }, CancellationToken.None).GetAwaiter().GetResult();
    }
}

/// <summary>A table's binary COPY stream as the engine reads it today, and as it read it before (to_json text for numeric and timestamps).</summary>
internal sealed record CapturedCopy(TableLayout Layout, byte[] Data, TableLayout PreviousLayout, byte[] Previous, int Rows)
{
    public static async Task<CapturedCopy> CaptureAsync(string connectionString, string table, int rows)
    {
        await PostgresServer.ExecuteAsync(connectionString, $"""
            CREATE TABLE {table} (
                id bigint PRIMARY KEY, qty int NOT NULL, amount numeric(12, 2), price float8, active bool, name text, note text,
                created_at timestamptz, ref uuid, attrs jsonb);
            INSERT INTO {table}
            SELECT g, g % 1000, (g % 100000) / 100.0, g * 1.5, g % 2 = 0, 'customer ' || g,
                   CASE WHEN g % 5 = 0 THEN NULL ELSE md5(g::text) END,
                   timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second', md5(g::text)::uuid,
                   jsonb_build_object('k', g % 10, 'tag', 't' || (g % 7))
            FROM generate_series(1, {rows}) g;
            """);
        await using var snapshot = await SourceSnapshot.OpenAsync(connectionString, [Sql.Qualified("public", table)], TimeSpan.FromMinutes(1), CancellationToken.None);
        var layout = await snapshot.DescribeAsync("public", table, [], CancellationToken.None);
        // Before: every type the engine did not decode itself came as PostgreSQL's to_json(value)::text.
        var previous = layout with
        {
            Columns = layout.Columns.Select(c => c.Kind is ColumnKind.Numeric or ColumnKind.TimestampTz or ColumnKind.Timestamp or ColumnKind.Date
                ? c with { Kind = ColumnKind.RawJson } : c).ToList(),
        };
        await using var conn = new NpgsqlConnection(connectionString);
        await conn.OpenAsync();
        await using (var tz = new NpgsqlCommand("SET TimeZone = 'UTC'; SET DateStyle = 'ISO'", conn))
        {
            await tz.ExecuteNonQueryAsync();
        }

        async Task<byte[]> CopyAsync(TableLayout shape)
        {
            var chunk = new BlockChunk(shape.Leaves[0].QualifiedName, 0, null);
            using var data = new MemoryStream();
            await using (var raw = await conn.BeginRawBinaryCopyAsync(new PartitionReader(shape, null).CopyCommand(chunk)))
            {
                await raw.CopyToAsync(data);
            }

            return data.ToArray();
        }

        return new CapturedCopy(layout, await CopyAsync(layout), previous, await CopyAsync(previous), rows);
    }
}

/// <summary>The engine's previous row → document mapping (Utf8JsonWriter per value), kept as the benchmark's baseline.</summary>
internal sealed class ReferenceMapper
{
    private static readonly JsonWriterOptions Options = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, SkipValidation = true };
    private readonly ColumnKind[] _kinds;
    private readonly JsonEncodedText[] _names;
    private readonly Utf8JsonWriter _json = new(Stream.Null, Options);

    public ReferenceMapper(TableLayout layout)
    {
        _kinds = layout.Columns.Select(c => c.Kind).ToArray();
        _names = layout.Columns.Select(c => JsonEncodedText.Encode(c.Name, JavaScriptEncoder.UnsafeRelaxedJsonEscaping)).ToArray();
    }

    public long Map(byte[] data, DocumentBatch batch)
    {
        batch.Clear();
        var pos = 19;
        long rows = 0;
        while (BinaryPrimitives.ReadInt16BigEndian(data.AsSpan(pos)) != -1)
        {
            pos += 2;
            var start = batch.Bytes;
            _json.Reset(batch.Writer);
            _json.WriteStartObject();
            string? id = null;
            for (var i = 0; i < _kinds.Length; i++)
            {
                var length = BinaryPrimitives.ReadInt32BigEndian(data.AsSpan(pos));
                pos += 4;
                _json.WritePropertyName(_names[i]);
                if (length < 0)
                {
                    _json.WriteNullValue();
                    continue;
                }

                var value = data.AsSpan(pos, length);
                pos += length;
                switch (_kinds[i])
                {
                    case ColumnKind.Int32: _json.WriteNumberValue(BinaryPrimitives.ReadInt32BigEndian(value)); break;
                    case ColumnKind.Int64:
                        var key = BinaryPrimitives.ReadInt64BigEndian(value);
                        _json.WriteNumberValue(key);
                        id ??= key.ToString(CultureInfo.InvariantCulture);
                        break;
                    case ColumnKind.Float8: _json.WriteNumberValue(BinaryPrimitives.ReadDoubleBigEndian(value)); break;
                    case ColumnKind.Bool: _json.WriteBooleanValue(value[0] != 0); break;
                    case ColumnKind.Text: _json.WriteStringValue(value); break;
                    case ColumnKind.Uuid: _json.WriteStringValue(new Guid(value, bigEndian: true)); break;
                    default: _json.WriteRawValue(value, skipInputValidation: true); break;
                }
            }

            _json.WriteEndObject();
            _json.Flush();
            batch.Add(id!, start);
            rows++;
            if (batch.Count >= 5000)
            {
                batch.Clear();
            }
        }

        return rows;
    }
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

        var rows = ctx.Smoke ? 2_000 : 100_000;
        var cs = ctx.CreateDatabaseAsync("bench_hotpath").GetAwaiter().GetResult();
        var copy = CapturedCopy.CaptureAsync(cs, "hot_rows", rows).GetAwaiter().GetResult();
        RowToDocumentBenchmarks.Copy = copy;
        var rowSummary = BenchmarkRunner.Run<RowToDocumentBenchmarks>(config);
        BenchmarkDotNet.Reports.BenchmarkReport RowReport(string method) => rowSummary.Reports.Single(r => r.BenchmarkCase.Descriptor.WorkloadMethod.Name == method);
        double PerRow(string method)
            => (RowReport(method).ResultStatistics?.Median ?? throw new InvalidOperationException($"BenchmarkDotNet produced no result for {method}; see its output above")) / copy.Rows;
        long AllocatedPerRow(string method) => RowReport(method) is var r ? (r.GcStats.GetBytesAllocatedPerOperation(r.BenchmarkCase) ?? 0) / copy.Rows : 0;
        var engine = PerRow(nameof(RowToDocumentBenchmarks.Engine));
        var reference = PerRow(nameof(RowToDocumentBenchmarks.Utf8JsonWriterPerValue));
        table.Add(new ResultRow($"hot path: row → document in process, {Fmt.N(copy.Rows)} captured binary COPY rows of the sync table (no network, no server), engine decoder vs the previous Utf8JsonWriter-per-value mapping of the previous COPY shape (BenchmarkDotNet {job.Id}); allocated {AllocatedPerRow(nameof(RowToDocumentBenchmarks.Engine))} vs {AllocatedPerRow(nameof(RowToDocumentBenchmarks.Utf8JsonWriterPerValue))} B/row",
            Fmt.Ns(engine), Fmt.Ns(reference), Fmt.X(engine / reference), "— (info)", null));
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
