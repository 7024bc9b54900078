using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using EtlFunnel.Benchmarks.Measures;
using EtlFunnel.Benchmarks.Support;
using EtlFunnel.Testing.Postgres;
using Npgsql;

namespace EtlFunnel.Benchmarks;

/// <summary>
/// <c>EtlFunnel.Benchmarks [--smoke] [--only hooks,reload,watch,hotpath,planning,sync,cdc,isolation,cluster] [--out results.md] [--repo dir] [--cli etlfunnel]</c>:
/// measures, prints one markdown table on stdout (progress on stderr) and exits non-zero if a measure could not run.
/// <c>--child &lt;mode&gt; &lt;json&gt;</c> is the same executable as a measured child process.
/// </summary>
internal static class Program
{
    private static readonly string[] AllMeasures = ["hooks", "reload", "watch", "hotpath", "planning", "sync", "cdc", "isolation", "cluster"];

    public static async Task<int> Main(string[] args)
    {
        if (args.Length == 3 && args[0] == "--child")
        {
            return await ChildAsync(args[1], args[2]);
        }

        var smoke = args.Contains("--smoke");
        var only = Option(args, "--only")?.Split(',', StringSplitOptions.RemoveEmptyEntries) ?? AllMeasures;
        var unknown = only.Except(AllMeasures).ToList();
        if (unknown.Count > 0 || args.Any(a => a.StartsWith("--", StringComparison.Ordinal) && a is not ("--smoke" or "--only" or "--out" or "--repo" or "--cli")))
        {
            await Console.Error.WriteLineAsync($"usage: EtlFunnel.Benchmarks [--smoke] [--only {string.Join(',', AllMeasures)}] [--out results.md] [--repo dir] [--cli path/to/etlfunnel]");
            return 2;
        }

        var repo = Option(args, "--repo") ?? FindRepoRoot();
        var work = Path.Combine(Path.GetTempPath(), $"etlfunnel-bench-{Environment.ProcessId}");
        Directory.CreateDirectory(work);
        var loadBefore = LoadAverage();
        Log.Info($"{(smoke ? "smoke" : "full")} run of [{string.Join(", ", only)}] in {work}; load average {loadBefore}");
        var postgres = await PostgresServer.GetAsync();
        var ctx = new BenchContext { Smoke = smoke, RepoRoot = repo, WorkRoot = work, Postgres = postgres, CliOverride = Option(args, "--cli") is { } cli ? Path.GetFullPath(cli) : null };
        var table = new ResultTable();
        var failures = 0;
        foreach (var measure in only)
        {
            Log.Info($"== {measure}");
            try
            {
                switch (measure)
                {
                    case "hooks": await HookMeasures.RunAsync(ctx, table); break;
                    case "reload": await ReloadMeasure.RunAsync(ctx, table); break;
                    case "watch": await WatchMeasure.RunAsync(ctx, table); break;
                    case "hotpath": HotPath.Run(ctx, table); break;
                    case "planning": await PlanningMeasure.RunAsync(ctx, table); break;
                    case "sync": await SyncMeasures.RunAsync(ctx, table); break;
                    case "cdc": await CdcMeasures.RunAsync(ctx, table); break;
                    case "isolation": await IsolationMeasure.RunAsync(ctx, table); break;
                    case "cluster": await ClusterMeasures.RunAsync(ctx, table); break;
                }
            }
#pragma warning disable CA1031 // One broken measure must not hide the others: it becomes a FAILED row and a non-zero exit.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                failures++;
                Log.Info($"{measure} FAILED: {ex}");
                table.Add(new ResultRow($"{measure}: FAILED — {ex.GetType().Name}: {ex.Message.Split('\n')[0]}", "—", "—", "—", "—", false));
            }
        }

        var machine = await MachineAsync(postgres, loadBefore);
        var markdown = table.ToMarkdown();
        var outPath = Option(args, "--out") ?? Path.Combine(repo, "artifacts", "benchmarks", "results.md");
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(outPath))!);
        var command = "tests/EtlFunnel.Benchmarks/run.sh" + (smoke ? " --smoke" : "");
        await File.WriteAllTextAsync(outPath, $"{markdown}\n{machine}\nCommand: `{command}`\n");
        Console.WriteLine(markdown);
        Console.WriteLine(machine);
        try
        {
            Directory.Delete(work, recursive: true);
        }
        catch (IOException)
        {
            // Left behind in /tmp; harmless.
        }

        Log.Info($"wrote {outPath}; {failures} measure(s) failed");
        return failures == 0 ? 0 : 1;
    }

    private static async Task<int> ChildAsync(string mode, string json) => mode switch
    {
        "compile" => await HookMeasures.CompileChildAsync(JsonSerializer.Deserialize<CompileArgs>(json)!),
        "cache-hit" => await HookMeasures.CacheHitChildAsync(JsonSerializer.Deserialize<CompileArgs>(json)!),
        "reload" => await ReloadMeasure.ChildAsync(JsonSerializer.Deserialize<ReloadArgs>(json)!),
        "sync" => await SyncMeasures.ChildAsync(JsonSerializer.Deserialize<SyncArgs>(json)!),
        _ => throw new ArgumentException($"unknown child mode '{mode}'"),
    };

    private static string? Option(string[] args, string name)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    private static string FindRepoRoot()
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "EtlFunnel.Scripting.sln")))
                {
                    return dir.FullName;
                }
            }
        }

        throw new InvalidOperationException("cannot find the repository (EtlFunnel.Scripting.sln) above the current folder; pass --repo <dir>");
    }

    private static string LoadAverage() => File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";

    private static async Task<string> SdkVersionAsync()
    {
        try
        {
            var result = await Processes.RunAsync(new System.Diagnostics.ProcessStartInfo("dotnet", "--version"), TimeSpan.FromMinutes(1));
            return result.StdOut.Trim();
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "?";
        }
    }

    private static async Task<string> MachineAsync(PostgresServer postgres, string loadBefore)
    {
        string pgVersion;
        await using (var conn = new NpgsqlConnection(postgres.AdminConnectionString))
        {
            await conn.OpenAsync();
            await using var cmd = new NpgsqlCommand("SHOW server_version", conn);
            pgVersion = (string)(await cmd.ExecuteScalarAsync())!;
        }

        var memory = File.ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("MemTotal:", StringComparison.Ordinal))?.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1];
        var memGb = memory is null ? "?" : (long.Parse(memory, CultureInfo.InvariantCulture) / 1024.0 / 1024.0).ToString("F1", CultureInfo.InvariantCulture);
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"Machine: {Environment.ProcessorCount} cores, {memGb} GiB, {RuntimeInformation.OSDescription}, ");
        sb.Append(CultureInfo.InvariantCulture, $".NET SDK {await SdkVersionAsync()} (runtime {Environment.Version}), PostgreSQL {pgVersion}; load average before {loadBefore}, after {LoadAverage()}.");
        return sb.ToString();
    }
}
