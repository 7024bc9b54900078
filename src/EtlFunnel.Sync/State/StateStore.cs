using System.Text;
using System.Text.Json;
using EtlFunnel.Destinations;

namespace EtlFunnel.Sync.State;

/// <summary>
/// The local-folder checkpoint store: <c>&lt;dir&gt;/run.json</c> plus <c>&lt;dir&gt;/&lt;flow&gt;/&lt;replica&gt;.json</c>,
/// every write atomic and durable (temp file fsynced, renamed, directory fsynced), so a crash or a power loss leaves
/// either the old or the new checkpoint. One writer per folder: <c>&lt;dir&gt;/.lock</c> is held (an OS file lock, released
/// when the process dies) while the store is open, and a second run on the same folder gets a clear error.
/// </summary>
internal sealed class StateStore : IStateStore
{
    /// <summary>The lock file's name inside the folder.</summary>
    public const string LockFileName = ".lock";

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };
    private readonly string _root;
    private readonly FileStream _lock;

    public StateStore(string root)
    {
        _root = Path.GetFullPath(root);
        Directory.CreateDirectory(_root);
        _lock = AcquireLock(_root);
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

    public ValueTask DisposeAsync()
    {
        _lock.Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>Holds <c>&lt;root&gt;/.lock</c> exclusively (FileShare.None is an OS lock on every platform .NET runs on).</summary>
    private static FileStream AcquireLock(string root)
    {
        var path = Path.Combine(root, LockFileName);
        try
        {
            var stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            stream.SetLength(0);
            stream.Write(Encoding.UTF8.GetBytes($"{Environment.ProcessId}\n"));
            stream.Flush();
            return stream;
        }
        catch (IOException ex)
        {
            throw new SyncConfigurationException(
                $"The checkpoint folder {root} is in use by another etlfunnel run or watch (it holds {path}). Two writers would overwrite " +
                "each other's checkpoints: wait for the other run to finish or stop it, or give this run its own folder (--state or 'state:').", ex);
        }
    }

    internal string ReplicaPath(string flow, string replica) => Path.Combine(_root, SafeName(flow), SafeName(replica) + ".json");

    /// <summary>A file-name-safe form of a name; the escaping the files destination uses too (<see cref="FileNames.Safe"/>).</summary>
    internal static string SafeName(string name) => FileNames.Safe(name);

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
        var directory = Path.GetDirectoryName(path)!;
        var created = !Directory.Exists(directory);
        Directory.CreateDirectory(directory);
        var temp = path + ".tmp";
        using (var file = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            file.Write(JsonSerializer.SerializeToUtf8Bytes(value, Json));
            // The content is on disk before the rename makes it the checkpoint.
            file.Flush(flushToDisk: true);
        }

        File.Move(temp, path, overwrite: true);
        // The rename (and a new flow folder's entry in its parent) is on disk before the save returns.
        DirectorySync.Flush(directory);
        if (created)
        {
            DirectorySync.Flush(Path.GetDirectoryName(directory)!);
        }
    }
}
