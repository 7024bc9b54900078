using System.Text;
using System.Text.Json;

namespace EtlFunnel.Sync.State;

/// <summary>Progress of one pipeline replica, saved after every confirmed chunk.</summary>
internal sealed record ReplicaState
{
    /// <summary>The run this progress belongs to; a different run id means "start over" (keeping the watermark).</summary>
    public string RunId { get; set; } = "";

    public bool Completed { get; set; }

    /// <summary>Index of the leaf relation being read (partitioned tables have several).</summary>
    public int Segment { get; set; }

    /// <summary>First heap block of the leaf not yet confirmed; -1 once the open-ended tail of the leaf is done.</summary>
    public long NextBlock { get; set; }

    /// <summary>Files destination: the byte length of the replica's file when the checkpoint was taken.</summary>
    public long FileOffset { get; set; }

    public long RowsRead { get; set; }

    public long DocsIndexed { get; set; }

    public long DeadLettered { get; set; }

    /// <summary>The watermark of the last completed run (PostgreSQL text of the incremental column's maximum).</summary>
    public string? Watermark { get; set; }

    /// <summary>The lower watermark this run reads above (before the safety margin), null for a full read.</summary>
    public string? RunFromWatermark { get; set; }

    /// <summary>The watermark this run commits when it completes.</summary>
    public string? RunToWatermark { get; set; }

    public DateTimeOffset UpdatedAt { get; set; }
}

/// <summary>The run as a whole: its id, the job fingerprint and the block count of every leaf relation at the start of the run.</summary>
internal sealed record RunManifest
{
    public string RunId { get; set; } = "";

    public string Fingerprint { get; set; } = "";

    public bool Completed { get; set; }

    /// <summary>Block counts by <c>source|relation</c>, fixed for the run so resumed replicas keep the same partition boundaries.</summary>
    public Dictionary<string, long> Blocks { get; set; } = new(StringComparer.Ordinal);

    public DateTimeOffset StartedAt { get; set; }
}

/// <summary>
/// The local-folder checkpoint store: <c>&lt;dir&gt;/run.json</c> plus <c>&lt;dir&gt;/&lt;flow&gt;/&lt;replica&gt;.json</c>,
/// every write atomic (temp file + rename), so a crash leaves either the old or the new checkpoint.
/// </summary>
internal sealed class StateStore
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };
    private readonly string _root;

    public StateStore(string root)
    {
        _root = Path.GetFullPath(root);
        Directory.CreateDirectory(_root);
    }

    public string Root => _root;

    public RunManifest? LoadManifest() => Load<RunManifest>(Path.Combine(_root, "run.json"));

    public void SaveManifest(RunManifest manifest) => Save(Path.Combine(_root, "run.json"), manifest);

    public ReplicaState? Load(string flow, string replica) => Load<ReplicaState>(ReplicaPath(flow, replica));

    public void Save(string flow, string replica, ReplicaState state) => Save(ReplicaPath(flow, replica), state);

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
