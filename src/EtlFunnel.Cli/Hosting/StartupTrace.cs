using System.Diagnostics;

namespace EtlFunnel.Cli.Hosting;

/// <summary>
/// With <c>ETLFUNNEL_STARTUP_TRACE=1</c>, prints to stderr how long after the process started each start-up step ended
/// (docs/hooks.md, "Start-up time"); otherwise does nothing.
/// </summary>
internal static class StartupTrace
{
    private static readonly bool Enabled = Environment.GetEnvironmentVariable("ETLFUNNEL_STARTUP_TRACE") == "1";
    private static readonly long MainTimestamp = Stopwatch.GetTimestamp();
    private static readonly double BeforeMainMs = Enabled ? SinceProcessStartMs() : 0;

    /// <summary>Call first thing in Main: records the time the runtime took to get there.</summary>
    public static void Start() => Mark("Main entered");

    /// <summary>Prints one step.</summary>
    public static void Mark(string step)
    {
        if (Enabled)
        {
            var ms = BeforeMainMs + Stopwatch.GetElapsedTime(MainTimestamp).TotalMilliseconds;
            Console.Error.WriteLine($"[startup] {ms,7:0.0} ms  {step} (GC heap {GC.GetTotalMemory(false) >> 20} MB, {AppDomain.CurrentDomain.GetAssemblies().Length} assemblies, {System.Runtime.JitInfo.GetCompiledMethodCount()} methods jitted in {System.Runtime.JitInfo.GetCompilationTime().TotalMilliseconds:0} ms)");
        }
    }

    private static double SinceProcessStartMs()
    {
        using var self = Process.GetCurrentProcess();
        return (TimeProvider.System.GetLocalNow().LocalDateTime - self.StartTime).TotalMilliseconds;
    }
}
