using System.Buffers.Binary;
using System.Security.Cryptography;

namespace EtlFunnel.Scripting.Loading;

/// <summary>
/// Compiled hooks on disk, one file per key: <c>magic | len | dll | len | pdb | SHA-256 of the preceding bytes</c>.
/// Written to a temporary file and moved into place, so readers see a whole entry or none; an entry that fails its
/// checksum is deleted and the hook recompiled.
/// </summary>
internal sealed class CompileCache
{
    private static readonly byte[] Magic = "EFHOOK1\0"u8.ToArray();
    private readonly string directory;

    public CompileCache(string directory)
    {
        this.directory = directory;
    }

    public string Directory => directory;

    public string PathOf(string key) => Path.Combine(directory, key + ".hook");

    public (byte[] Assembly, byte[] Pdb)? TryGet(string key)
    {
        var path = PathOf(key);
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }

        if (Parse(bytes) is { } entry)
        {
            return entry;
        }

        Remove(key);
        return null;
    }

    public void Put(string key, byte[] assembly, byte[] pdb)
    {
        try
        {
            System.IO.Directory.CreateDirectory(directory);
            var payload = new byte[Magic.Length + 4 + assembly.Length + 4 + pdb.Length];
            var span = payload.AsSpan();
            Magic.CopyTo(span);
            var at = Magic.Length;
            BinaryPrimitives.WriteInt32LittleEndian(span[at..], assembly.Length);
            assembly.CopyTo(span[(at + 4)..]);
            at += 4 + assembly.Length;
            BinaryPrimitives.WriteInt32LittleEndian(span[at..], pdb.Length);
            pdb.CopyTo(span[(at + 4)..]);

            var temp = Path.Combine(directory, $"{key}.{Guid.NewGuid():N}.tmp");
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write))
            {
                stream.Write(payload);
                stream.Write(SHA256.HashData(payload));
                stream.Flush(flushToDisk: true);
            }

            File.Move(temp, PathOf(key), overwrite: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // A cache that cannot be written only costs a recompile next time.
        }
    }

    public void Remove(string key)
    {
        try
        {
            File.Delete(PathOf(key));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Left for the next writer to overwrite.
        }
    }

    private static (byte[] Assembly, byte[] Pdb)? Parse(byte[] bytes)
    {
        const int HashLength = 32;
        if (bytes.Length < Magic.Length + 8 + HashLength || !bytes.AsSpan(0, Magic.Length).SequenceEqual(Magic))
        {
            return null;
        }

        var payload = bytes.AsSpan(0, bytes.Length - HashLength);
        if (!SHA256.HashData(payload).AsSpan().SequenceEqual(bytes.AsSpan(bytes.Length - HashLength)))
        {
            return null;
        }

        var at = Magic.Length;
        var assemblyLength = BinaryPrimitives.ReadInt32LittleEndian(payload[at..]);
        if (assemblyLength < 0 || at + 4 + assemblyLength + 4 > payload.Length)
        {
            return null;
        }

        var assembly = payload.Slice(at + 4, assemblyLength).ToArray();
        at += 4 + assemblyLength;
        var pdbLength = BinaryPrimitives.ReadInt32LittleEndian(payload[at..]);
        if (pdbLength < 0 || at + 4 + pdbLength != payload.Length)
        {
            return null;
        }

        return (assembly, payload.Slice(at + 4, pdbLength).ToArray());
    }
}
