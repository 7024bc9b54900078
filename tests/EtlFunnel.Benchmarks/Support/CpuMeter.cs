using System.Globalization;

namespace EtlFunnel.Benchmarks.Support;

/// <summary>
/// CPU seconds used by every PostgreSQL process of this machine: live <c>postgres</c> processes' own time plus what
/// their parent postmasters collected from backends that already exited (cutime/cstime), so deltas across a run
/// count backends that start and end inside it.
/// </summary>
internal static class CpuMeter
{
    private const double TicksPerSecond = 100.0; // USER_HZ on Linux

    public static double PostgresSeconds()
    {
        if (!Directory.Exists("/proc"))
        {
            return 0;
        }

        double ticks = 0;
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out _))
            {
                continue;
            }

            string stat;
            try
            {
                stat = File.ReadAllText(Path.Combine(dir, "stat"));
            }
            catch (IOException)
            {
                continue; // exited while we looked
            }
            catch (UnauthorizedAccessException)
            {
                continue;
            }

            var close = stat.LastIndexOf(')');
            var open = stat.IndexOf('(', StringComparison.Ordinal);
            if (open < 0 || close < 0 || !stat[(open + 1)..close].StartsWith("postgres", StringComparison.Ordinal))
            {
                continue;
            }

            // Fields after the command: state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17).
            var f = stat[(close + 2)..].Split(' ');
            ticks += double.Parse(f[11], CultureInfo.InvariantCulture) + double.Parse(f[12], CultureInfo.InvariantCulture)
                + double.Parse(f[13], CultureInfo.InvariantCulture) + double.Parse(f[14], CultureInfo.InvariantCulture);
        }

        return ticks / TicksPerSecond;
    }

    public static double SelfSeconds() => System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds;
}
