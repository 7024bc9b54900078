using System.Runtime.InteropServices;

namespace EtlFunnel.Scripting.Loading;

/// <summary>
/// Gives the C allocator's free memory back to the OS after a compile. Compiling a hook (Roslyn, and the JIT compiling
/// Roslyn's and the hook's code on many threads) frees tens of MB of native memory that glibc keeps in per-thread arenas
/// instead of returning it; a service that reloads hooks all day would otherwise keep its peak forever
/// (docs/hooks.md, "Memory of reloads"). Only glibc has <c>malloc_trim</c>; elsewhere this does nothing.
/// </summary>
internal static class NativeHeap
{
    private static readonly MallocTrim? Trimmer = Resolve();

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private delegate int MallocTrim(nuint pad);

    /// <summary>True where trimming is available (Linux with glibc).</summary>
    public static bool CanTrim => Trimmer is not null;

    /// <summary>Returns the allocator's free pages to the OS; a few milliseconds at most.</summary>
    public static void Trim() => Trimmer?.Invoke(0);

    private static MallocTrim? Resolve()
    {
        if (!OperatingSystem.IsLinux() || !NativeLibrary.TryLoad("libc.so.6", out var libc))
        {
            return null;
        }

        return NativeLibrary.TryGetExport(libc, "malloc_trim", out var trim) ? Marshal.GetDelegateForFunctionPointer<MallocTrim>(trim) : null;
    }
}
