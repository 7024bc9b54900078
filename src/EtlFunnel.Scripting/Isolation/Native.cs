using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace EtlFunnel.Scripting.Isolation;

/// <summary>The few Linux calls the worker makes on itself at start: rlimits, no-new-privileges, parent-death signal, stdio.</summary>
internal static partial class Native
{
    public const int RlimitCpu = 0;
    public const int RlimitNofile = 7;
    public const int RlimitAs = 9;
    private const int PrSetPdeathsig = 1;
    private const int PrSetNoNewPrivs = 38;
    private const int SigKill = 9;

    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit
    {
        public ulong Current;
        public ulong Max;
    }

    public static bool SetLimit(int resource, ulong value)
    {
        var limit = new RLimit { Current = value, Max = value };
        return setrlimit(resource, ref limit) == 0;
    }

    public static ulong? GetLimit(int resource)
        => getrlimit(resource, out var limit) == 0 ? limit.Current : null;

    public static bool SetNoNewPrivileges() => prctl(PrSetNoNewPrivs, 1, 0, 0, 0) == 0;

    public static bool KillWithParent() => prctl(PrSetPdeathsig, SigKill, 0, 0, 0) == 0;

    /// <summary>
    /// Moves the protocol off fd 0/1: returns private duplicates of them, then points fd 1 at stderr and fd 0 at
    /// /dev/null, so nothing a hook writes to "stdout" (even through the raw descriptor) can corrupt a frame.
    /// </summary>
    public static (Stream Input, Stream Output) TakeProtocolStreams()
    {
        if (!OperatingSystem.IsLinux())
        {
            var input = Console.OpenStandardInput();
            var output = Console.OpenStandardOutput();
            Console.SetOut(Console.Error);
            return (input, output);
        }

        var inFd = dup(0);
        var outFd = dup(1);
        if (inFd < 0 || outFd < 0 || dup2(2, 1) < 0)
        {
            throw new IOException("cannot move the worker protocol off stdin/stdout");
        }

        var devNull = open("/dev/null", 0);
        if (devNull >= 0)
        {
            dup2(devNull, 0);
            close(devNull);
        }

        var inStream = new FileStream(new SafeFileHandle(inFd, ownsHandle: true), FileAccess.Read, bufferSize: 0);
        var outStream = new FileStream(new SafeFileHandle(outFd, ownsHandle: true), FileAccess.Write, bufferSize: 0);
        Console.SetOut(new StreamWriter(Console.OpenStandardError()) { AutoFlush = true });
        return (inStream, outStream);
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int setrlimit(int resource, ref RLimit limit);

    [DllImport("libc", SetLastError = true)]
    private static extern int getrlimit(int resource, out RLimit limit);

    [DllImport("libc", SetLastError = true)]
    private static extern int prctl(int option, ulong arg2, ulong arg3, ulong arg4, ulong arg5);

    [DllImport("libc", SetLastError = true)]
    private static extern int dup(int fd);

    [DllImport("libc", SetLastError = true)]
    private static extern int dup2(int oldFd, int newFd);

    [DllImport("libc", SetLastError = true)]
    private static extern int close(int fd);

    [DllImport("libc", SetLastError = true, CharSet = CharSet.Ansi, BestFitMapping = false)]
    private static extern int open([MarshalAs(UnmanagedType.LPStr)] string path, int flags);
}
