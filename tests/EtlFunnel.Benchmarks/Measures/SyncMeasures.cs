using System.Diagnostics;
using System.Globalization;
using EtlFunnel.Benchmarks.Support;
using EtlFunnel.Destinations;
using EtlFunnel.Sync;
using EtlFunnel.Testing.Elasticsearch;
using EtlFunnel.Testing.Postgres;

namespace EtlFunnel.Benchmarks.Measures;

/// <summary>Arguments of the <c>sync</c> child mode.</summary>
internal sealed record SyncArgs(string ConnectionString, string Table, int Replicas, string Work, string? ElasticsearchUrl, long ExpectedRows, bool Compression = true);

/// <summary>One measured sync run (in a child process).</summary>
internal sealed record SyncRun(double Seconds, double CpuSeconds, long Rows, long PeakRssBytes, long OutputBytes)
{
    /// <summary>CPU seconds of all PostgreSQL processes during the run.</summary>
    public double ServerCpuSeconds { get; init; }

    /// <summary>CPU seconds of the benchmark parent during the run (the Elasticsearch test server lives there).</summary>
    public double ParentCpuSeconds { get; init; }
}

internal static class SyncRunExtensions
{
    public static double RowsPerSecond(this SyncRun run) => run.Rows / run.Seconds;
}

/// <summary>
/// The sync engine on one table of mixed types: into NDJSON files with 1 and 2 replicas, into the Elasticsearch test
/// server with the client's default gzip and with <c>compression: false</c>, against PostgreSQL's own <c>COPY (SELECT row_to_json(t) FROM t) TO STDOUT</c> through psql into a file, all in
/// this one invocation. Each sync runs in a child process, which reports its own peak RSS (VmHWM).
/// </summary>
internal static class SyncMeasures
{
    private const string Table = "bench_rows";

    public static async Task RunAsync(BenchContext ctx, ResultTable table)
    {
        var cs = await ctx.CreateDatabaseAsync("bench_sync");
        var load = Stopwatch.StartNew();
        await PostgresServer.ExecuteAsync(cs, $"""
            CREATE TABLE {Table} (
                id bigint PRIMARY KEY,
                qty int NOT NULL,
                amount numeric(12, 2),
                price float8,
                active bool,
                name text,
                note text,
                created_at timestamptz,
                ref uuid,
                attrs jsonb);
            INSERT INTO {Table}
            SELECT g, g % 1000, (g % 100000) / 100.0, g * 1.5, g % 2 = 0, 'customer ' || g,
                   CASE WHEN g % 5 = 0 THEN NULL ELSE md5(g::text) END,
                   timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second', md5(g::text)::uuid,
                   jsonb_build_object('k', g % 10, 'tag', 't' || (g % 7))
            FROM generate_series(1, {ctx.SyncRows}) g;
            """);
        await PostgresServer.ExecuteAsync(cs, $"VACUUM ANALYZE {Table}");
        Log.Info($"sync: loaded {Fmt.N(ctx.SyncRows)} rows in {load.Elapsed.TotalSeconds:F1} s");

        await using var es = await ElasticsearchTestServer.StartAsync();
        var psql = new List<SyncRun>();
        var files1 = new List<SyncRun>();
        var files2 = new List<SyncRun>();
        var elastic = new List<SyncRun>();
        var plain = new List<SyncRun>();
        await PsqlCopyAsync(ctx, cs); // warms the server's buffers; not counted
        for (var r = 0; r < ctx.Repetitions; r++)
        {
            // Interleaved, so a burst of load from elsewhere on the machine hits every side alike.
            psql.Add(await PsqlCopyAsync(ctx, cs));
            files1.Add(await SyncAsync(ctx, cs, 1, null));
            files2.Add(await SyncAsync(ctx, cs, 2, null));
            if (r < 2)
            {
                // At most two: into the test server a run takes minutes on 2 cores.
                elastic.Add(await ExpectEncodingAsync(es, "gzip", () => SyncAsync(ctx, cs, 1, es.Uri.ToString())));
                plain.Add(await ExpectEncodingAsync(es, null, () => SyncAsync(ctx, cs, 1, es.Uri.ToString(), compression: false)));
            }
        }

        var rows = Fmt.N(ctx.SyncRows);
        double Rate(List<SyncRun> runs) => Fmt.Median(runs.Select(x => x.RowsPerSecond()));
        double Secs(List<SyncRun> runs) => Fmt.Median(runs.Select(x => x.Seconds));
        var psqlRate = Rate(psql);
        var oneRate = Rate(files1);
        var twoRate = Rate(files2);
        var esRate = Rate(elastic);
        var plainRate = Rate(plain);
        string Cpu(List<SyncRun> runs, bool parent = false, string client = "sync") =>
            $"CPU/row: {client} {Fmt.Ns(Fmt.Median(runs.Select(x => x.CpuSeconds / x.Rows * 1e9)))}, PostgreSQL {Fmt.Ns(Fmt.Median(runs.Select(x => x.ServerCpuSeconds / x.Rows * 1e9)))}" +
            (parent ? $", test server {Fmt.Ns(Fmt.Median(runs.Select(x => x.ParentCpuSeconds / x.Rows * 1e9)))}" : "");
        Log.Info($"sync CPU: psql {Cpu(psql, client: "psql")}; files×1 {Cpu(files1)}; files×2 {Cpu(files2)}; Elasticsearch {Cpu(elastic, parent: true)}; Elasticsearch, compression off {Cpu(plain, parent: true)}");
        table.Add(new ResultRow($"sync: {rows} rows × 10 mixed columns → NDJSON files, 1 replica, vs psql COPY row_to_json → file ({Cpu(files1)}; baseline {Cpu(psql, client: "psql")})",
            $"{Fmt.Rate(oneRate)} ({Fmt.Sec(Secs(files1))})", $"{Fmt.Rate(psqlRate)} ({Fmt.Sec(Secs(psql))})", Fmt.X(oneRate / psqlRate), "≥ 1.0×", oneRate / psqlRate >= 1.0));
        table.Add(new ResultRow($"sync: 2 replicas vs 1 → files ({Environment.ProcessorCount} cores here, shared with PostgreSQL)",
            $"{Fmt.Rate(twoRate)} ({Fmt.Sec(Secs(files2))})", $"{Fmt.Rate(oneRate)} ({Fmt.Sec(Secs(files1))})", Fmt.X(twoRate / oneRate), "≥ 1.6×", twoRate / oneRate >= 1.6));
        table.Add(new ResultRow($"sync: → Elasticsearch test server (in the parent process) vs → files, 1 replica ({Cpu(elastic, parent: true)})",
            $"{Fmt.Rate(esRate)} ({Fmt.Sec(Secs(elastic))})", $"{Fmt.Rate(oneRate)} ({Fmt.Sec(Secs(files1))})", Fmt.X(esRate / oneRate), "≥ 0.7×", esRate / oneRate >= 0.7));
        table.Add(new ResultRow($"sync: → Elasticsearch test server, compression: false, vs → files, 1 replica ({Cpu(plain, parent: true)}; gzip on: {Fmt.Rate(esRate)})",
            $"{Fmt.Rate(plainRate)} ({Fmt.Sec(Secs(plain))})", $"{Fmt.Rate(oneRate)} ({Fmt.Sec(Secs(files1))})", Fmt.X(plainRate / oneRate), "≥ 0.7×", plainRate / oneRate >= 0.7));

        var peaks = new[] { ("files, 1 replica", files1), ("files, 2 replicas", files2), ("Elasticsearch", elastic), ("Elasticsearch, compression off", plain) }
            .Select(x => (x.Item1, Peak: x.Item2.Max(run => run.PeakRssBytes))).ToList();
        var worst = peaks.MaxBy(p => p.Peak);
        table.Add(new ResultRow($"sync: peak RSS of the sync process (VmHWM; worst run: {worst.Item1}; " +
            string.Join(", ", peaks.Select(p => $"{p.Item1} {Fmt.Mb(p.Peak)}")) + ")",
            Fmt.Mb(worst.Peak), "—", "—", "≤ 256 MB", worst.Peak <= 256L * 1024 * 1024));

        var oursCpu = Fmt.Median(files1.Select(x => x.CpuSeconds / x.Rows * 1e9));
        var psqlCpu = Fmt.Median(psql.Select(x => x.CpuSeconds / x.Rows * 1e9));
        table.Add(new ResultRow("hot path: row → document, client CPU per row (binary COPY decode + JSON + NDJSON write) vs psql's (receive server-made JSON + write)",
            Fmt.Ns(oursCpu), Fmt.Ns(psqlCpu), Fmt.X(oursCpu / psqlCpu), "— (info)", null));
        var bytesPerDoc = (double)files1[0].OutputBytes / files1[0].Rows;
        Log.Info($"sync: NDJSON output {bytesPerDoc:F0} bytes/row incl. action lines; psql output {(double)psql[0].OutputBytes / psql[0].Rows:F0} bytes/row");
    }

    /// <summary>Runs one sync into the test server and checks its bulk requests carried <paramref name="encoding"/>, so each row measures what it claims.</summary>
    private static async Task<SyncRun> ExpectEncodingAsync(ElasticsearchTestServer es, string? encoding, Func<Task<SyncRun>> sync)
    {
        var before = es.Requests.Count;
        var run = await sync();
        var bulks = es.Requests.Skip(before).Where(r => r.Path.EndsWith("/_bulk", StringComparison.Ordinal)).ToList();
        if (bulks.Count == 0 || bulks.Any(r => r.ContentEncoding != encoding))
        {
            throw new InvalidOperationException(
                $"expected {bulks.Count} bulk requests with Content-Encoding {encoding ?? "(none)"}, got {string.Join(", ", bulks.Select(r => r.ContentEncoding ?? "(none)").Distinct())}");
        }

        return run;
    }

    private static async Task<SyncRun> PsqlCopyAsync(BenchContext ctx, string cs)
    {
        var work = ctx.NewWorkDir("psql-copy");
        var output = Path.Combine(work, "rows.json");
        // `times` prints the shell's and then its children's user/system CPU: the second line is psql's.
        var script = $"{BenchContext.FindPsql()} {BenchContext.PsqlConnectionArgs(cs)} -c \"COPY (SELECT row_to_json(t) FROM {Table} t) TO STDOUT\" > '{output}' && times";
        var psi = new ProcessStartInfo("bash");
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(script);
        var server = CpuMeter.PostgresSeconds();
        var result = await Processes.RunAsync(psi, TimeSpan.FromMinutes(10));
        server = CpuMeter.PostgresSeconds() - server;
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException($"psql COPY failed with exit code {result.ExitCode}: {result.StdErr}");
        }

        var lines = File.ReadLines(output).LongCount();
        if (lines != ctx.SyncRows)
        {
            throw new InvalidOperationException($"psql COPY wrote {lines} lines, expected {ctx.SyncRows}");
        }

        var children = result.StdOut.Trim().Split('\n')[^1].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var cpu = children.Sum(ParseShellTime);
        Log.Info($"sync: psql COPY {lines} rows in {result.Elapsed.TotalSeconds:F2} s, psql CPU {cpu:F2} s, PostgreSQL CPU {server:F2} s");
        return new SyncRun(result.Elapsed.TotalSeconds, cpu, lines, 0, new FileInfo(output).Length) { ServerCpuSeconds = server };
    }

    private static double ParseShellTime(string value)
    {
        // bash `times` prints e.g. 0m1.234s
        var m = value.IndexOf('m', StringComparison.Ordinal);
        return (double.Parse(value[..m], CultureInfo.InvariantCulture) * 60) + double.Parse(value[(m + 1)..].TrimEnd('s'), CultureInfo.InvariantCulture);
    }

    private static async Task<SyncRun> SyncAsync(BenchContext ctx, string cs, int replicas, string? esUrl, bool compression = true)
    {
        var target = esUrl is null ? "files" : compression ? "es" : "es-plain";
        var work = ctx.NewWorkDir($"sync-{replicas}-{target}");
        var (server, parent) = (CpuMeter.PostgresSeconds(), CpuMeter.SelfSeconds());
        var r = await Processes.RunChildAsync("sync", new SyncArgs(cs, Table, replicas, work, esUrl, ctx.SyncRows, compression), TimeSpan.FromMinutes(10), Processes.CliRuntimeConfig(ctx.Cli));
        (server, parent) = (CpuMeter.PostgresSeconds() - server, CpuMeter.SelfSeconds() - parent);
        Log.Info($"sync: {replicas} replica(s) → {(esUrl is null ? "files" : compression ? "Elasticsearch" : "Elasticsearch, compression off")}: {r}; PostgreSQL CPU {server:F2} s, parent CPU {parent:F2} s");
        return new SyncRun(
            r.GetProperty("seconds").GetDouble(), r.GetProperty("cpuSeconds").GetDouble(), r.GetProperty("rows").GetInt64(),
            r.GetProperty("peakRssBytes").GetInt64(), r.GetProperty("outputBytes").GetInt64())
        { ServerCpuSeconds = server, ParentCpuSeconds = parent };
    }

    /// <summary>Child: one full sync of the table with fresh state; reports wall time, CPU time and peak RSS.</summary>
    public static async Task<int> ChildAsync(SyncArgs a)
    {
        var output = Path.Combine(a.Work, "out");
        var job = new SyncJob
        {
            Options = new SyncOptions
            {
                StateDirectory = Path.Combine(a.Work, "state"),
                DeadLetterDirectory = Path.Combine(a.Work, "dead-letter"),
            },
            Flows =
            [
                new SyncFlow
                {
                    Name = "bench",
                    SourceConnectionString = a.ConnectionString,
                    Destination = a.ElasticsearchUrl is null ? new FilesDestination(output) : new ElasticsearchDestination(new Uri(a.ElasticsearchUrl)) { Compression = a.Compression },
                    Pipelines = Enumerable.Range(0, a.Replicas).Select(p => new SyncPipeline
                    {
                        ReplicaName = $"{a.Table}_{p}",
                        Table = a.Table,
                        IndexName = a.Table,
                        Partition = PartitionRange.Whole.Split(p, a.Replicas),
                    }).ToList(),
                },
            ],
        };

        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var watch = Stopwatch.StartNew();
        var report = await new SyncEngine().RunAsync(job);
        watch.Stop();
        cpu = Process.GetCurrentProcess().TotalProcessorTime - cpu;
        if (!report.IsSuccess || report.RowsRead != a.ExpectedRows || report.DocsIndexed != a.ExpectedRows)
        {
            await Console.Error.WriteLineAsync($"sync did not copy every row: {report.Summary}");
            return 1;
        }

        var bytes = Directory.Exists(output) ? Directory.EnumerateFiles(output, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length) : 0;
        Processes.Report(new
        {
            seconds = watch.Elapsed.TotalSeconds,
            cpuSeconds = cpu.TotalSeconds,
            rows = report.RowsRead,
            peakRssBytes = Processes.StatusKb("VmHWM") * 1024,
            outputBytes = bytes,
        });
        return 0;
    }
}
