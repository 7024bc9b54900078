namespace EtlFunnel.Scripting.Tests.Support;

/// <summary>Paths of the real .csx fixtures and throwaway hook folders built from them.</summary>
internal static class Fixtures
{
    public static string Root { get; } = Path.Combine(AppContext.BaseDirectory, "TestFixtures");

    /// <summary>One cache for the whole test run, so fixtures compiled by one test are cache hits in the next.</summary>
    public static string SharedCache { get; } = Path.Combine(Path.GetTempPath(), "etlfunnel-hook-tests-cache", Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture));

    public static string Folder(string name) => Path.Combine(Root, name);

    public static HookHostOptions Options(string folder, string? cache = null) => new()
    {
        HooksDirectory = folder,
        CacheDirectory = cache ?? SharedCache,
    };

    /// <summary>
    /// The in-process path (isolation none), for tests of the worker's own machinery (compile counters, native trims,
    /// load contexts), which live in whichever process loads the hooks.
    /// </summary>
    public static HookHostOptions InProcess(string folder, string? cache = null) => Options(folder, cache) with { Isolation = HookIsolation.None };

    /// <summary>The lines of a fixture marked <c>// expect: EFxxxx</c>, with the ids expected there.</summary>
    public static List<(int Line, string Id)> Expectations(string file)
        => File.ReadAllLines(file)
            .Select((text, index) => (text, line: index + 1))
            .Where(x => x.text.Contains("// expect:", StringComparison.Ordinal))
            .SelectMany(x => x.text[(x.text.IndexOf("// expect:", StringComparison.Ordinal) + 10)..]
                .Split(' ', StringSplitOptions.RemoveEmptyEntries)
                .Select(id => (x.line, id)))
            .ToList();
}

/// <summary>A temporary hooks folder, deleted at dispose.</summary>
internal sealed class TempHooks : IDisposable
{
    public TempHooks()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "etlfunnel-hooks-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
        Cache = System.IO.Path.Combine(Path + "-cache");
    }

    public string Path { get; }

    public string Cache { get; }

    public string Write(string relative, string text)
    {
        var file = System.IO.Path.Combine(Path, relative);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(file)!);
        File.WriteAllText(file, text);
        return file;
    }

    public string CopyFixture(string fixture, string? asName = null)
    {
        var source = System.IO.Path.Combine(Fixtures.Root, fixture);
        return Write(asName ?? System.IO.Path.GetFileName(source), File.ReadAllText(source));
    }

    public void Dispose()
    {
        foreach (var dir in new[] { Path, Cache })
        {
            try
            {
                Directory.Delete(dir, recursive: true);
            }
            catch (IOException)
            {
                // Best effort: temp folders.
            }
        }
    }
}

/// <summary>The real plugin projects under tests/TestPlugins, as built before this test project.</summary>
internal static class TestPlugins
{
    private static readonly Dictionary<string, string> Outputs = File.ReadAllLines(Path.Combine(AppContext.BaseDirectory, "test-plugins.txt"))
        .Select(line => line.Split('|'))
        .ToDictionary(parts => Path.GetFileNameWithoutExtension(parts[0]), parts => parts[1], StringComparer.Ordinal);

    /// <summary>Copies a plugin project's build output into <c>hooks/&lt;AssemblyName&gt;/</c>, replacing what is there.</summary>
    public static string Deploy(string project, string hooksFolder)
    {
        var dll = Outputs[project];
        var assemblyName = Path.GetFileNameWithoutExtension(dll);
        var target = Path.Combine(hooksFolder, assemblyName);
        Directory.CreateDirectory(target);
        foreach (var file in Directory.EnumerateFiles(Path.GetDirectoryName(dll)!))
        {
            File.Copy(file, Path.Combine(target, Path.GetFileName(file)), overwrite: true);
        }

        return Path.Combine(target, assemblyName + ".dll");
    }
}
