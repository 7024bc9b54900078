using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Text;

namespace EtlFunnel.Scripting.Compiling;

/// <summary>
/// Resolves <c>#load</c> to files inside the hooks folder only, serving the bytes read for the cache key
/// (or their budget-rewritten text) so that what is compiled is exactly what was hashed.
/// </summary>
internal sealed class HookSourceResolver : SourceReferenceResolver
{
    private readonly string root;
    private readonly IReadOnlyDictionary<string, SourceText> texts;
    private readonly SourceFileResolver inner;

    public HookSourceResolver(string root, IReadOnlyDictionary<string, SourceText> texts)
    {
        this.root = root;
        this.texts = texts;
        inner = new SourceFileResolver([], root);
    }

    /// <summary>Resolves like the compiler would, without the folder check (the policy uses it to report escapes).</summary>
    public static string? ResolveUnchecked(string root, string path, string? baseFilePath)
        => new SourceFileResolver([], root).ResolveReference(path, baseFilePath) is { } resolved ? Path.GetFullPath(resolved) : null;

    public override string? NormalizePath(string path, string? baseFilePath) => inner.NormalizePath(path, baseFilePath);

    public override string? ResolveReference(string path, string? baseFilePath)
    {
        var resolved = inner.ResolveReference(path, baseFilePath);
        if (resolved is null)
        {
            return null;
        }

        var full = Path.GetFullPath(resolved);
        return ScriptSources.IsInside(root, full) ? full : null;
    }

    public override Stream OpenRead(string resolvedPath)
    {
        if (texts.TryGetValue(resolvedPath, out var text))
        {
            var stream = new MemoryStream();
            using (var writer = new StreamWriter(stream, new System.Text.UTF8Encoding(false), leaveOpen: true))
            {
                text.Write(writer);
            }

            stream.Position = 0;
            return stream;
        }

        // Files not read for the key (created since): refuse rather than compile bytes that were not hashed.
        throw new FileNotFoundException("The file changed while the hook was being compiled; it will be reloaded.", resolvedPath);
    }

    public override SourceText ReadText(string resolvedPath)
        => texts.TryGetValue(resolvedPath, out var text) ? text : base.ReadText(resolvedPath);

    public override bool Equals(object? other)
        => other is HookSourceResolver r && r.root == root && ReferenceEquals(r.texts, texts);

    public override int GetHashCode() => HashCode.Combine(root, texts);
}
