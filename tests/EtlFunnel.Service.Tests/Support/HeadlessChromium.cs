using System.Diagnostics;

namespace EtlFunnel.Service.Tests.Support;

/// <summary>Debian's chromium, headless: loads a page, lets its scripts run, returns the resulting DOM.</summary>
internal static class HeadlessChromium
{
    private static readonly string[] Candidates = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];

    public static string FindOrFail()
    {
        var fromEnv = Environment.GetEnvironmentVariable("ETLFUNNEL_CHROMIUM");
        var found = !string.IsNullOrEmpty(fromEnv) ? fromEnv : Candidates.FirstOrDefault(File.Exists);
        if (found is null || !File.Exists(found))
        {
            throw new InvalidOperationException(
                "The status page test needs a real headless browser and none was found at " +
                (string.IsNullOrEmpty(fromEnv) ? string.Join(", ", Candidates) : $"ETLFUNNEL_CHROMIUM={fromEnv}") +
                ". Install Debian's chromium: `apt-get update && apt-get install -y chromium` (or point ETLFUNNEL_CHROMIUM at a chromium binary).");
        }

        return found;
    }

    /// <summary>Loads <paramref name="url"/>, gives its scripts <paramref name="virtualTimeMs"/> of virtual time, and returns the DOM.</summary>
    public static async Task<string> DumpDomAsync(Uri url, int virtualTimeMs = 5000)
    {
        var chromium = FindOrFail();
        var profile = Directory.CreateTempSubdirectory("etlfunnel-chromium-");
        try
        {
            var psi = new ProcessStartInfo(chromium)
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            foreach (var arg in new[]
            {
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", $"--user-data-dir={profile.FullName}",
                $"--virtual-time-budget={virtualTimeMs}", "--dump-dom", url.ToString(),
            })
            {
                psi.ArgumentList.Add(arg);
            }

            using var process = Process.Start(psi) ?? throw new InvalidOperationException($"Could not start {chromium}.");
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            using var guard = new CancellationTokenSource(TimeSpan.FromSeconds(90));
            try
            {
                await process.WaitForExitAsync(guard.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException($"{chromium} did not finish loading {url} within 90 s. stderr:\n{await stderr}");
            }

            var dom = await stdout;
            if (process.ExitCode != 0 || dom.Length == 0)
            {
                throw new InvalidOperationException($"{chromium} exited with {process.ExitCode} loading {url}. stderr:\n{await stderr}");
            }

            return dom;
        }
        finally
        {
            try
            {
                profile.Delete(recursive: true);
            }
            catch (IOException)
            {
                // chromium's helper processes may still hold files for a moment; the temp dir is disposable.
            }
        }
    }
}
