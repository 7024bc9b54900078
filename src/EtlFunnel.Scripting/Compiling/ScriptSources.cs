using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using EtlFunnel.Execution.Models;
using EtlFunnel.Scripting.Policy;

namespace EtlFunnel.Scripting.Compiling;

/// <summary>
/// The bytes of one hook script and every file it <c>#load</c>s, read once, with the cache key over them.
/// Deliberately free of Roslyn types: the cache-hit path must not load the compiler.
/// </summary>
internal sealed partial class ScriptSources
{
    private ScriptSources(string root, string mainPath, IReadOnlyDictionary<string, byte[]> files, IReadOnlyList<string> order, string key)
    {
        Root = root;
        MainPath = mainPath;
        Files = files;
        Order = order;
        Key = key;
    }

    /// <summary>The hooks folder (full path).</summary>
    public string Root { get; }

    /// <summary>The hook script (full path).</summary>
    public string MainPath { get; }

    /// <summary>Bytes of every file read, by full path (the main script and the #load'ed files inside the folder).</summary>
    public IReadOnlyDictionary<string, byte[]> Files { get; }

    /// <summary>The files in the order they were found.</summary>
    public IReadOnlyList<string> Order { get; }

    /// <summary>Hex SHA-256 over the sources and the environment they are compiled in.</summary>
    public string Key { get; }

    /// <summary>Files this script loads (excluding itself).</summary>
    public IEnumerable<string> LoadedFiles => Order.Skip(1);

    [GeneratedRegex("""^\s*#load\s+"(?<path>[^"]+)"\s*(//.*)?$""", RegexOptions.Multiline | RegexOptions.CultureInvariant)]
    private static partial Regex LoadDirective();

    /// <summary>Reads a script and, recursively, the files it loads.</summary>
    public static ScriptSources Read(string root, string mainPath)
    {
        var files = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        var order = new List<string>();
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(Encoding.UTF8.GetBytes(CompileEnvironment.Key));

        var pending = new Queue<string>();
        pending.Enqueue(Path.GetFullPath(mainPath));
        while (pending.Count > 0)
        {
            var path = pending.Dequeue();
            if (files.ContainsKey(path))
            {
                continue;
            }

            hash.AppendData(Encoding.UTF8.GetBytes("\0file\0" + path + "\0"));
            if (!IsInside(root, path) || !File.Exists(path))
            {
                // Not read: the compile will report it; the path alone keys the (failing) result.
                hash.AppendData("\0missing"u8);
                continue;
            }

            var bytes = File.ReadAllBytes(path);
            files[path] = bytes;
            order.Add(path);
            hash.AppendData(bytes);

            var text = Encoding.UTF8.GetString(bytes);
            foreach (Match match in LoadDirective().Matches(text))
            {
                var target = match.Groups["path"].Value;
                var resolved = Path.IsPathRooted(target) ? target : Path.Combine(Path.GetDirectoryName(path)!, target);
                pending.Enqueue(Path.GetFullPath(resolved));
            }
        }

        return new ScriptSources(root, Path.GetFullPath(mainPath), files, order, Convert.ToHexStringLower(hash.GetHashAndReset()));
    }

    /// <summary>
    /// True when <paramref name="path"/> (full) lies inside <paramref name="root"/> (full) once every symbolic link on
    /// the way is followed: a linked parent folder (<c>hooks/lib -> /etc</c>) is outside as much as a linked file.
    /// </summary>
    public static bool IsInside(string root, string path)
    {
        var real = RealPath(path);
        var realRoot = RealPath(root);
        var prefix = realRoot.EndsWith(Path.DirectorySeparatorChar) ? realRoot : realRoot + Path.DirectorySeparatorChar;
        return real.StartsWith(prefix, StringComparison.Ordinal);
    }

    /// <summary>The path with every symbolic link of every component resolved (realpath), for files that may not exist.</summary>
    public static string RealPath(string path, int depth = 0)
    {
        var full = Path.GetFullPath(path);
        var rootPart = Path.GetPathRoot(full) ?? "/";
        var current = rootPart;
        foreach (var part in full[rootPart.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries))
        {
            var next = Path.Combine(current, part);
            string? target = null;
            try
            {
                target = new FileInfo(next).LinkTarget;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Unreadable: judged by its own path.
            }

            if (target is not null && depth < 40)
            {
                next = RealPath(Path.IsPathRooted(target) ? target : Path.Combine(current, target), depth + 1);
            }

            current = next;
        }

        return current;
    }
}

/// <summary>What, besides the sources, decides the compiled output: part of every cache key.</summary>
internal static class CompileEnvironment
{
    /// <summary>Bump when the generated code (budget checks, invokers) or compile options change.</summary>
    public const int CodegenVersion = 1;

    public static string Key { get; } = Build();

    private static string Build()
    {
        var contract = typeof(OrchestratorProps).Assembly;
        var sb = new StringBuilder();
        sb.Append("codegen=").Append(CodegenVersion)
          .Append(";policy=").Append(HookPolicy.Version)
          .Append(";contract=").Append(contract.GetName().FullName).Append('/').Append(contract.ManifestModule.ModuleVersionId);

        // The compiler's identity, read without loading it (a cache hit must not load Roslyn).
        foreach (var reference in typeof(CompileEnvironment).Assembly.GetReferencedAssemblies())
        {
            if (reference.Name is "Microsoft.CodeAnalysis" or "Microsoft.CodeAnalysis.CSharp" or "Basic.Reference.Assemblies.Net100")
            {
                sb.Append(';').Append(reference.FullName);
                var file = Path.Combine(AppContext.BaseDirectory, reference.Name + ".dll");
                if (File.Exists(file))
                {
                    sb.Append('/').Append(FileVersionInfo.GetVersionInfo(file).FileVersion);
                }
            }
        }

        return sb.ToString();
    }
}
