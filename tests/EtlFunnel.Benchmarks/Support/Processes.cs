using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace EtlFunnel.Benchmarks.Support;

/// <summary>The outcome of a finished child process.</summary>
internal sealed record ProcessResult(int ExitCode, string StdOut, string StdErr, TimeSpan Elapsed);

/// <summary>Starts processes (the CLI, psql, this benchmark in a child mode) and measures them from outside.</summary>
internal static class Processes
{
    public const string ResultPrefix = "RESULT ";

    public static async Task<ProcessResult> RunAsync(ProcessStartInfo psi, TimeSpan timeout)
    {
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        psi.UseShellExecute = false;
        var watch = Stopwatch.StartNew();
        using var process = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {psi.FileName}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{psi.FileName} {string.Join(' ', psi.ArgumentList)} ran longer than {timeout}");
        }

        watch.Stop();
        return new ProcessResult(process.ExitCode, await stdout, await stderr, watch.Elapsed);
    }

    /// <summary>
    /// Runs this benchmark executable in a child mode and returns the JSON it reported. With <paramref name="cliRuntimeConfig"/>
    /// the child runs under the CLI's own runtimeconfig (GC mode, tiering, PGO, thread pool), so what it measures is what an
    /// <c>etlfunnel</c> process would show, not what the benchmark executable's settings would.
    /// </summary>
    public static async Task<JsonElement> RunChildAsync(string mode, object args, TimeSpan timeout, string? cliRuntimeConfig = null)
    {
        var psi = cliRuntimeConfig is null ? Self() : UnderRuntimeConfig(cliRuntimeConfig);
        psi.ArgumentList.Add("--child");
        psi.ArgumentList.Add(mode);
        psi.ArgumentList.Add(JsonSerializer.Serialize(args));
        var result = await RunAsync(psi, timeout);
        var line = result.StdOut.Split('\n').LastOrDefault(l => l.StartsWith(ResultPrefix, StringComparison.Ordinal));
        if (result.ExitCode != 0 || line is null)
        {
            throw new InvalidOperationException($"child '{mode}' failed with exit code {result.ExitCode}:\n{result.StdOut}\n{result.StdErr}");
        }

        return JsonDocument.Parse(line[ResultPrefix.Length..]).RootElement.Clone();
    }

    /// <summary>Reports a child's result to the parent (one line on stdout).</summary>
    public static void Report(object result) => Console.WriteLine(ResultPrefix + JsonSerializer.Serialize(result));

    /// <summary>The runtimeconfig of the CLI build being measured.</summary>
    public static string CliRuntimeConfig(string cli)
    {
        var config = Path.ChangeExtension(cli, null) + ".runtimeconfig.json";
        return File.Exists(config)
            ? config
            : throw new InvalidOperationException($"{config} is missing; build the CLI first: dotnet build -c Release src/EtlFunnel.Cli (run.sh does)");
    }

    private static ProcessStartInfo UnderRuntimeConfig(string runtimeConfig)
    {
        var self = typeof(Processes).Assembly.Location;
        var psi = new ProcessStartInfo("dotnet");
        foreach (var a in new[] { "exec", "--runtimeconfig", runtimeConfig, "--depsfile", Path.ChangeExtension(self, ".deps.json"), self })
        {
            psi.ArgumentList.Add(a);
        }

        return psi;
    }

    private static ProcessStartInfo Self()
    {
        var path = Environment.ProcessPath ?? "dotnet";
        if (string.Equals(Path.GetFileNameWithoutExtension(path), "dotnet", StringComparison.Ordinal))
        {
            var psi = new ProcessStartInfo(path);
            psi.ArgumentList.Add("exec");
            psi.ArgumentList.Add(typeof(Processes).Assembly.Location);
            return psi;
        }

        return new ProcessStartInfo(path);
    }

    /// <summary>A value in kB from /proc/self/status (VmHWM = peak resident set, VmRSS = current).</summary>
    public static long StatusKb(string field)
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith(field + ":", StringComparison.Ordinal))
            {
                return long.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
            }
        }

        throw new InvalidOperationException($"/proc/self/status has no {field}");
    }
}
