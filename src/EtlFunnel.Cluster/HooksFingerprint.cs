using System.Security.Cryptography;
using System.Text;

namespace EtlFunnel.Cluster;

/// <summary>
/// The content hash of a hooks folder: SHA-256 over every file's relative path and bytes (sorted, '/'-separated; folders
/// starting with '.' such as the compile cache are skipped). A worker runs a replica only when its hash equals the plan's.
/// </summary>
internal static class HooksFingerprint
{
    /// <summary>What a missing or empty folder hashes to (planned without hooks).</summary>
    public const string None = "none";

    public static string Compute(string? directory)
    {
        if (directory is null || !Directory.Exists(directory))
        {
            return None;
        }

        var root = Path.GetFullPath(directory);
        var files = Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(root, f).Replace(Path.DirectorySeparatorChar, '/'))
            .Where(rel => !rel.Split('/').Any(part => part.StartsWith('.')))
            .Order(StringComparer.Ordinal)
            .ToList();
        if (files.Count == 0)
        {
            return None;
        }

        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var rel in files)
        {
            var bytes = File.ReadAllBytes(Path.Combine(root, rel));
            hash.AppendData(Encoding.UTF8.GetBytes($"{rel}\0{bytes.Length}\0"));
            hash.AppendData(bytes);
        }

        return "sha256:" + Convert.ToHexStringLower(hash.GetHashAndReset());
    }
}
