using System.Diagnostics;

namespace EtlFunnel.Testing.Prometheus;

/// <summary>Prometheus's own linter, <c>promtool check metrics</c> (Debian package <c>prometheus</c>); a missing promtool fails the test.</summary>
public static class Promtool
{
    private static readonly string[] Candidates = ["/usr/bin/promtool", "/usr/local/bin/promtool"];

    /// <summary>Runs <c>promtool check metrics</c> on an exposition (stdin); its exit code and what it printed.</summary>
    public static async Task<(int ExitCode, string Output)> CheckMetricsAsync(string exposition)
    {
        var promtool = Environment.GetEnvironmentVariable("ETLFUNNEL_PROMTOOL") ?? Candidates.FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException(
                "The /metrics test needs Prometheus's promtool and none was found at " + string.Join(", ", Candidates) +
                ". Install Debian's prometheus package (`apt-get update && apt-get install -y prometheus`; .ci/run does it) or point ETLFUNNEL_PROMTOOL at a promtool binary.");
        var info = new ProcessStartInfo(promtool)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add("check");
        info.ArgumentList.Add("metrics");
        using var process = Process.Start(info) ?? throw new InvalidOperationException($"{promtool} did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.StandardInput.WriteAsync(exposition);
        process.StandardInput.Close();
        using var guard = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(guard.Token);
        return (process.ExitCode, (await stdout) + (await stderr));
    }
}
