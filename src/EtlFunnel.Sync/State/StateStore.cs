using System.Text;
using System.Text.Json;

namespace EtlFunnel.Sync.State;

/// <summary>
/// The local-folder checkpoint store: <c>&lt;dir&gt;/run.json</c> plus <c>&lt;dir&gt;/&lt;flow&gt;/&lt;replica&gt;.json</c>,
/// every write atomic (temp file + rename), so a crash leaves either the old or the new checkpoint.
/// </summary>
internal sealed class StateStore : IStateStore
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };
    private readonly string _root;

    public StateStore(string root)
    {
        _root = Path.GetFullPath(root);
        Directory.CreateDirectory(_root);
    }

    public string Root => _root;

    public string Description => _root;

    public RunManifest? LoadManifest() => Load<RunManifest>(Path.Combine(_root, "run.json"));

    public void SaveManifest(RunManifest manifest) => Save(Path.Combine(_root, "run.json"), manifest);

    public Task SaveManifestAsync(RunManifest manifest, CancellationToken cancellationToken)
    {
        SaveManifest(manifest);
        return Task.CompletedTask;
    }

    public ReplicaState? Load(string flow, string replica) => Load<ReplicaState>(ReplicaPath(flow, replica));

    public void Save(string flow, string replica, ReplicaState state) => Save(ReplicaPath(flow, replica), state);

    public Task SaveAsync(string flow, string replica, ReplicaState state, CancellationToken cancellationToken)
    {
        Save(flow, replica, state);
        return Task.CompletedTask;
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    internal string ReplicaPath(string flow, string replica) => Path.Combine(_root, SafeName(flow), SafeName(replica) + ".json");

    /// <summary>A file-name-safe form of a name (escaping is reversible, so distinct names stay distinct).</summary>
    internal static string SafeName(string name)
    {
        var sb = new StringBuilder(name.Length);
        foreach (var ch in name)
        {
            if (char.IsAsciiLetterOrDigit(ch) || ch is '-' or '_' or '.')
            {
                sb.Append(ch);
            }
            else
            {
                sb.Append('%').Append(((int)ch).ToString("X4", System.Globalization.CultureInfo.InvariantCulture));
            }
        }

        var s = sb.ToString();
        return s is "." or ".." ? s.Replace(".", "%002E", StringComparison.Ordinal) : s;
    }

    private static T? Load<T>(string path)
        where T : class
    {
        if (!File.Exists(path))
        {
            return null;
        }

        try
        {
            return JsonSerializer.Deserialize<T>(File.ReadAllBytes(path), Json);
        }
        catch (JsonException ex)
        {
            throw new SyncConfigurationException($"Checkpoint file {path} is not valid JSON ({ex.Message}). Delete it to start that replica over.", ex);
        }
    }

    private static void Save<T>(string path, T value)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var temp = path + ".tmp";
        File.WriteAllBytes(temp, JsonSerializer.SerializeToUtf8Bytes(value, Json));
        File.Move(temp, path, overwrite: true);
    }
}
