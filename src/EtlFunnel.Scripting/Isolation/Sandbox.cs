using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;

namespace EtlFunnel.Scripting.Isolation;

/// <summary>How the worker process is wrapped, strongest first.</summary>
internal enum SandboxKind
{
    /// <summary>bubblewrap: own network/pid/ipc namespaces, a minimal read-only root, no new privileges.</summary>
    Bubblewrap,

    /// <summary>util-linux unshare: own network and ipc namespaces; the file system is not restricted.</summary>
    Unshare,

    /// <summary>A plain child process: only what the worker applies to itself (rlimits, no-new-privileges, empty environment).</summary>
    Plain,
}

/// <summary>Builds the command line that starts the hook worker under one <see cref="SandboxKind"/>.</summary>
internal static class Sandbox
{
    public const string WorkerAssembly = "EtlFunnel.Scripting.Worker.dll";

    /// <summary>The kinds to try, in order, for an isolation level.</summary>
    public static IReadOnlyList<SandboxKind> Candidates(HookIsolation isolation, SandboxKind? forced)
    {
        if (forced is { } only)
        {
            return [only];
        }

        var kinds = new List<SandboxKind>();
        if (OperatingSystem.IsLinux())
        {
            if (FindOnPath("bwrap") is not null)
            {
                kinds.Add(SandboxKind.Bubblewrap);
            }

            if (FindOnPath("unshare") is not null)
            {
                kinds.Add(SandboxKind.Unshare);
            }
        }

        if (isolation == HookIsolation.Process)
        {
            kinds.Add(SandboxKind.Plain);
        }

        return kinds;
    }

    public static string WorkerPath()
    {
        var path = Path.Combine(AppContext.BaseDirectory, WorkerAssembly);
        return File.Exists(path)
            ? path
            : throw new HookIsolationException($"the hook worker {WorkerAssembly} is missing from {AppContext.BaseDirectory}; reinstall etlfunnel (or reference EtlFunnel.Scripting.Worker from the host project)");
    }

    /// <summary>The dotnet executable running this process (the muxer, also when started through an app host).</summary>
    public static string DotnetPath()
    {
        if (Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            return self;
        }

        var fromRuntime = Path.GetFullPath(Path.Combine(RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", "..", OperatingSystem.IsWindows() ? "dotnet.exe" : "dotnet"));
        if (File.Exists(fromRuntime))
        {
            return fromRuntime;
        }

        return FindOnPath("dotnet") ?? throw new HookIsolationException("cannot find the dotnet executable to start the hook worker; set DOTNET_ROOT or put dotnet on PATH");
    }

    public static ProcessStartInfo StartInfo(SandboxKind kind, string root, string cache, IReadOnlyList<string> passEnvironment, long memoryBytes)
    {
        var dotnet = DotnetPath();
        var worker = WorkerPath();
        var psi = new ProcessStartInfo
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = root,
        };

        // An empty environment: nothing of the host's (passwords in PG* variables, tokens) unless the config lists it.
        psi.Environment.Clear();
        foreach (var name in passEnvironment)
        {
            if (Environment.GetEnvironmentVariable(name) is { } value)
            {
                psi.Environment[name] = value;
            }
        }

        psi.Environment["DOTNET_GCHeapHardLimit"] = "0x" + memoryBytes.ToString("x", CultureInfo.InvariantCulture);
        psi.Environment["DOTNET_gcServer"] = "0";
        psi.Environment["DOTNET_EnableDiagnostics"] = "0"; // no debugger/diagnostics IPC socket
        psi.Environment["DOTNET_TieredPGO"] = "0";
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";

        var command = new List<string>();
        switch (kind)
        {
            case SandboxKind.Bubblewrap:
                psi.FileName = FindOnPath("bwrap")!;
                command.AddRange(BubblewrapArguments(dotnet, worker, root, cache));
                break;
            case SandboxKind.Unshare:
                psi.FileName = FindOnPath("unshare")!;
                command.AddRange(["--net", "--ipc", "--fork", "--kill-child"]);
                if (!IsRoot())
                {
                    command.Add("--map-root-user");
                }

                command.Add("--");
                command.Add(dotnet);
                break;
            default:
                psi.FileName = dotnet;
                break;
        }

        command.AddRange(["exec", worker]);
        foreach (var argument in command)
        {
            psi.ArgumentList.Add(argument);
        }

        return psi;
    }

    private static List<string> BubblewrapArguments(string dotnet, string worker, string root, string cache)
    {
        var args = new List<string>
        {
            "--unshare-net", "--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--hostname", "etlfunnel-hooks",
        };

        // System libraries only (no /usr/bin: no shell or tools to exec), read-only.
        foreach (var dir in (string[])["/usr/lib", "/usr/lib64", "/usr/lib32"])
        {
            if (Directory.Exists(dir))
            {
                args.AddRange(["--ro-bind", dir, dir]);
            }
        }

        foreach (var link in (string[])["/lib", "/lib64", "/lib32"])
        {
            var info = new DirectoryInfo(link);
            if (info.LinkTarget is { } target)
            {
                args.AddRange(["--symlink", target, link]);
            }
            else if (info.Exists)
            {
                args.AddRange(["--ro-bind", link, link]);
            }
        }

        args.AddRange(["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]);
        args.AddRange(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]);

        // Parents before children: the runtime, the application, the hooks (read-only) and the compile cache (writable).
        var dotnetRoot = Path.GetDirectoryName(Path.GetFullPath(ResolveLinks(dotnet)))!;
        var binds = new List<(string Path, bool Writable)>
        {
            (dotnetRoot, false),
            (Path.TrimEndingDirectorySeparator(AppContext.BaseDirectory), false),
            (root, false),
            (cache, true),
        };
        foreach (var (path, writable) in binds.DistinctBy(b => b.Path).OrderBy(b => b.Path.Length))
        {
            args.AddRange([writable ? "--bind" : "--ro-bind", path, path]);
        }

        args.AddRange(["--chdir", root, "--", Path.Combine(dotnetRoot, Path.GetFileName(dotnet))]);
        _ = worker;
        return args;
    }

    private static string ResolveLinks(string path)
        => File.ResolveLinkTarget(path, returnFinalTarget: true)?.FullName ?? path;

    private static bool IsRoot()
    {
        try
        {
            return File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("Uid:", StringComparison.Ordinal)) is { } uid
                && uid.Split('\t', StringSplitOptions.RemoveEmptyEntries).ElementAtOrDefault(1) == "0";
        }
        catch (IOException)
        {
            return false;
        }
    }

    public static string? FindOnPath(string name)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Concat(["/usr/bin", "/bin", "/usr/sbin"]))
        {
            var candidate = Path.Combine(dir, name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    /// <summary>The namespace link of this process (e.g. <c>net:[4026531840]</c>), to compare with the worker's.</summary>
    public static string? Namespace(string kind)
    {
        try
        {
            return new FileInfo($"/proc/self/ns/{kind}").LinkTarget;
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }
}
