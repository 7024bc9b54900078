using System.ComponentModel;
using System.Runtime.InteropServices;

namespace EtlFunnel.Sync.State;

/// <summary>
/// fsync of a directory, which makes a rename or a new entry in it durable. .NET has no API for it (a directory cannot
/// be opened as a FileStream), so on Linux and macOS it is open(O_RDONLY | O_DIRECTORY) + fsync + close from libc;
/// on Windows a rename is made durable by the file system's journal and this does nothing.
/// </summary>
internal static class DirectorySync
{
    /// <summary>Flushes <paramref name="directory"/>'s entries to disk; throws <see cref="IOException"/> when that fails.</summary>
    public static void Flush(string directory)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS())
        {
            return;
        }

        var flags = OperatingSystem.IsLinux() ? LinuxDirectory : MacDirectory;
        var fd = NativeMethods.open(directory, flags);
        if (fd < 0)
        {
            throw new IOException($"Cannot open the checkpoint folder {directory} to flush it to disk: {new Win32Exception(Marshal.GetLastPInvokeError()).Message}.");
        }

        try
        {
            if (NativeMethods.fsync(fd) != 0)
            {
                throw new IOException($"Cannot flush the checkpoint folder {directory} to disk: {new Win32Exception(Marshal.GetLastPInvokeError()).Message}; the last checkpoint may not survive a power loss.");
            }
        }
        finally
        {
            _ = NativeMethods.close(fd);
        }
    }

    // O_RDONLY (0) | O_DIRECTORY: 0x10000 on Linux (x64 and arm64), 0x100000 on macOS.
    private const int LinuxDirectory = 0x10000;
    private const int MacDirectory = 0x100000;

    private static class NativeMethods
    {
#pragma warning disable SYSLIB1054, CA2101, CA5392 // A plain DllImport: LibraryImport's generated code needs unsafe blocks; the path is ASCII-safe UTF-8 on these systems.
        [DllImport("libc", SetLastError = true, CharSet = CharSet.Ansi, BestFitMapping = false, ThrowOnUnmappableChar = true)]
        internal static extern int open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

        [DllImport("libc", SetLastError = true)]
        internal static extern int fsync(int fd);

        [DllImport("libc", SetLastError = true)]
        internal static extern int close(int fd);
#pragma warning restore SYSLIB1054, CA2101, CA5392
    }
}
