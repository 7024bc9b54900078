using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using EtlFunnel.Benchmarks.Support;

namespace EtlFunnel.Benchmarks.Measures;

/// <summary>
/// The watch loop as an operator sees it (issue 6): a whole <c>etlfunnel watch</c> process against the fixture PostgreSQL;
/// an edit of a hook file until the new plan is served on <c>/plan</c> of the status server. Each edit changes the seed
/// flow hook's props, so every edit is a real compile, a re-plan (discovery + hooks + validation) and a new plan version.
/// </summary>
internal static partial class WatchMeasure
{
    private const string EditedHook = "flow-by-cores.csx";
    private const string Anchor = "[\"cpu_optimized\"] = true,";

    public static async Task RunAsync(BenchContext ctx, ResultTable table)
    {
        if (!File.Exists(ctx.Cli))
        {
            throw new InvalidOperationException($"{ctx.Cli} is missing; build it first: dotnet build -c Release src/EtlFunnel.Cli (run.sh does)");
        }

        var cs = await ctx.CreateDatabaseAsync("bench_watch");
        await EtlFunnel.Testing.Postgres.PostgresServer.ExecuteAsync(cs, BenchContext.TenantSql(flows: 2, schemasPerFlow: 2, tables: 3, rows: 100));
        var work = ctx.NewWorkDir("watch");
        var hooks = Path.Combine(work, "hooks");
        Directory.CreateDirectory(hooks);
        foreach (var file in Directory.GetFiles(ctx.HooksDirectory, "*.csx"))
        {
            File.Copy(file, Path.Combine(hooks, Path.GetFileName(file)));
        }

        var hookPath = Path.Combine(hooks, EditedHook);
        var original = await File.ReadAllTextAsync(hookPath);
        if (!original.Contains(Anchor, StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"{ctx.HooksDirectory}/{EditedHook} no longer contains {Anchor}; update {nameof(WatchMeasure)} to edit another line");
        }

        var config = Path.Combine(work, "flows.yaml");
        await File.WriteAllTextAsync(config, BenchContext.TenantConfig(2, hooks));

        var psi = new ProcessStartInfo(ctx.Cli)
        {
            WorkingDirectory = work,
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { "watch", "--config", config, "--hooks", hooks, "--machine", ctx.UsProfile, "--interval", "1h", "--status-url", "http://127.0.0.1:0", "--state", Path.Combine(work, "state") })
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["BENCH_PG"] = cs;
        psi.Environment["XDG_CACHE_HOME"] = Path.Combine(work, "cache");

        // The first edit in a process compiles with a cold compiler (Roslyn loaded and JIT-compiled then): shown apart.
        var edits = ctx.Smoke ? 3 : 10;
        var toPlan = new List<double>();
        var toLog = new List<double>();
        using var process = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {ctx.Cli}");
        var log = new LogLines(process);
        try
        {
            var url = await log.WaitForAsync(StatusLine(), TimeSpan.FromMinutes(2));
            using var http = new HttpClient { BaseAddress = new Uri(url.Match.Groups["url"].Value.TrimEnd('/') + "/"), Timeout = TimeSpan.FromSeconds(10) };
            await WaitForPlanAsync(http, body => body.Contains("\"flows\"", StringComparison.Ordinal), TimeSpan.FromMinutes(2));

            for (var k = 1; k <= edits; k++)
            {
                var marker = $"bench-edit-{k}";
                var logsBefore = log.Count;
                var started = Stopwatch.GetTimestamp();
                await File.WriteAllTextAsync(hookPath, original.Replace(Anchor, $"{Anchor} [\"bench_edit\"] = \"{marker}\",", StringComparison.Ordinal));
                await WaitForPlanAsync(http, body => body.Contains(marker, StringComparison.Ordinal), TimeSpan.FromMinutes(1));
                var planMs = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                var line = await log.WaitForAsync(ReloadedLine(), TimeSpan.FromMinutes(1), logsBefore);
                toPlan.Add(planMs);
                toLog.Add((line.Timestamp - started) * 1000.0 / Stopwatch.Frequency);
                // Let the service settle (tier-up, the status page's own work) so edits do not queue behind each other.
                await Task.Delay(500);
            }
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }

            await process.WaitForExitAsync();
        }

        var plan = Fmt.Median(toPlan.Skip(1));
        var logged = Fmt.Median(toLog.Skip(1));
        table.Add(new ResultRow(
            $"watch: hook edit → new plan served on /plan, whole `etlfunnel watch` process (median of edits 2–{edits}; each = 200 ms debounce + compile + re-plan incl. discovery; log line 'Hooks loaded' after {Fmt.Ms(logged)}; first edit in the process, cold compiler: {Fmt.Ms(toPlan[0])})",
            Fmt.Ms(plan), "—", "—", "— (info)", null));
        Log.Info($"watch: edit → /plan {string.Join(", ", toPlan.Select(Fmt.Ms))}");
    }

    private static async Task WaitForPlanAsync(HttpClient http, Func<string, bool> shows, TimeSpan timeout)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            using (var response = await http.GetAsync("plan"))
            {
                if (response.IsSuccessStatusCode && shows(await response.Content.ReadAsStringAsync()))
                {
                    return;
                }
            }

            if (Stopwatch.GetTimestamp() > deadline)
            {
                throw new TimeoutException($"/plan did not show the expected plan within {timeout}");
            }

            await Task.Delay(5);
        }
    }

    [GeneratedRegex(@"Status page on ""?(?<url>http://[^""\s]+)")]
    private static partial Regex StatusLine();

    [GeneratedRegex(@"Hooks loaded: plan version \d+")]
    private static partial Regex ReloadedLine();

    /// <summary>The child's stderr lines as they arrive, each with the time it was read.</summary>
    private sealed class LogLines
    {
        private readonly List<(string Line, long Timestamp)> lines = [];
        private readonly Process process;

        public LogLines(Process process)
        {
            this.process = process;
            process.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is not null)
                {
                    lock (lines)
                    {
                        lines.Add((e.Data, Stopwatch.GetTimestamp()));
                    }
                }
            };
            process.OutputDataReceived += (_, _) => { };
            process.BeginErrorReadLine();
            process.BeginOutputReadLine();
        }

        public int Count
        {
            get
            {
                lock (lines)
                {
                    return lines.Count;
                }
            }
        }

        public async Task<(Match Match, long Timestamp)> WaitForAsync(Regex pattern, TimeSpan timeout, int from = 0)
        {
            var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
            while (true)
            {
                lock (lines)
                {
                    for (var i = from; i < lines.Count; i++)
                    {
                        if (pattern.Match(lines[i].Line) is { Success: true } m)
                        {
                            return (m, lines[i].Timestamp);
                        }
                    }
                }

                if (process.HasExited || Stopwatch.GetTimestamp() > deadline)
                {
                    string all;
                    lock (lines)
                    {
                        all = string.Join('\n', lines.Select(l => l.Line));
                    }

                    throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                        $"etlfunnel watch {(process.HasExited ? $"exited ({process.ExitCode})" : "timed out")} before logging /{pattern}/:\n{all}"));
                }

                await Task.Delay(5);
            }
        }
    }
}
