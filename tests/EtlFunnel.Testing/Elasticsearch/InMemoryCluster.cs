using System.Text.Json;
using System.Text.Json.Nodes;

namespace EtlFunnel.Testing.Elasticsearch;

/// <summary>One stored document version; a null source is a delete tombstone, kept so a re-create continues the version.</summary>
internal sealed record StoredDocument(ReadOnlyMemory<byte>? Source, long Version, long SeqNo);

/// <summary>
/// Append-only memory for document sources: 1 MB slabs on the large object heap, so that a million stored documents are
/// not copied from generation to generation by the garbage collector (the test server shares the cores with what it tests).
/// </summary>
internal sealed class SourceArena
{
    private const int SlabSize = 1 << 20;
    private byte[] _slab = [];
    private int _used;

    public ReadOnlyMemory<byte> Store(ReadOnlySpan<byte> source)
    {
        if (source.Length > SlabSize / 8)
        {
            return source.ToArray();
        }

        if (_slab.Length - _used < source.Length)
        {
            _slab = GC.AllocateUninitializedArray<byte>(SlabSize);
            _used = 0;
        }

        source.CopyTo(_slab.AsSpan(_used));
        var stored = _slab.AsMemory(_used, source.Length);
        _used += source.Length;
        return stored;
    }
}

/// <summary>An index: its documents, mappings and settings. Guarded by the cluster's lock.</summary>
internal sealed class IndexState(string name, string uuid, long creationDateMillis)
{
    public string Name { get; } = name;

    public string Uuid { get; } = uuid;

    public long CreationDateMillis { get; } = creationDateMillis;

    /// <summary>The index's mappings; always holds a <c>properties</c> object.</summary>
    public JsonObject Mappings { get; } = new() { ["properties"] = new JsonObject() };

    public JsonObject Properties => (JsonObject)Mappings["properties"]!;

    public JsonObject Settings { get; } = [];

    public Dictionary<string, StoredDocument> Documents { get; } = new(StringComparer.Ordinal);

    public SourceArena Sources { get; } = new();

    /// <summary>Lookup cache over <see cref="Mappings"/>; cleared whenever the mappings change.</summary>
    public Dictionary<JsonObject, FieldTable> FieldTables { get; } = new(ReferenceEqualityComparer.Instance);

    /// <summary>What search and count see when the server requires a refresh; null means "the live documents".</summary>
    public Dictionary<string, StoredDocument>? Searchable { get; set; }

    public long NextSeqNo { get; set; }

    public int RefreshCount { get; set; }
}

/// <summary>Outcome of one write to the store.</summary>
internal readonly record struct WriteResult(int Status, string Result, long Version, long SeqNo, string? ErrorType = null, string? ErrorReason = null);

/// <summary>The in-memory document store behind the test server; one lock keeps every operation atomic.</summary>
internal sealed class InMemoryCluster(bool searchRequiresRefresh, TimeProvider time)
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, IndexState> _indices = new(StringComparer.Ordinal);

    public Lock Gate => _gate;

    public bool SearchRequiresRefresh { get; } = searchRequiresRefresh;

    public IReadOnlyList<string> IndexNames()
    {
        lock (_gate)
        {
            return [.. _indices.Keys.Order(StringComparer.Ordinal)];
        }
    }

    /// <summary>Caller holds <see cref="Gate"/>.</summary>
    public IndexState? Find(string index) => _indices.GetValueOrDefault(index);

    /// <summary>Caller holds <see cref="Gate"/>. Returns null when the index already exists.</summary>
    public IndexState? Create(string index)
    {
        if (_indices.ContainsKey(index))
        {
            return null;
        }

        var state = new IndexState(index, NewUuid(), time.GetUtcNow().ToUnixTimeMilliseconds());
        if (SearchRequiresRefresh)
        {
            state.Searchable = new Dictionary<string, StoredDocument>(StringComparer.Ordinal);
        }

        _indices[index] = state;
        return state;
    }

    /// <summary>Caller holds <see cref="Gate"/>.</summary>
    public bool Delete(string index) => _indices.Remove(index);

    /// <summary>Caller holds <see cref="Gate"/>.</summary>
    public static void Refresh(IndexState index)
    {
        index.RefreshCount++;
        if (index.Searchable is not null)
        {
            index.Searchable = new Dictionary<string, StoredDocument>(index.Documents, StringComparer.Ordinal);
        }
    }

    /// <summary>Caller holds <see cref="Gate"/>. Live documents in index order (the order of their last write).</summary>
    public static IEnumerable<KeyValuePair<string, StoredDocument>> Visible(IndexState index) =>
        (index.Searchable ?? index.Documents).Where(d => d.Value.Source is not null).OrderBy(d => d.Value.SeqNo);

    /// <summary>Caller holds <see cref="Gate"/>. Index (create = false) or create (create = true) a document.</summary>
    public static WriteResult Put(IndexState index, string id, ReadOnlySpan<byte> source, bool create)
    {
        var existing = index.Documents.GetValueOrDefault(id);
        if (create && existing?.Source is not null)
        {
            return new WriteResult(409, "", existing.Version, existing.SeqNo, "version_conflict_engine_exception",
                $"[{id}]: version conflict, document already exists (current version [{existing.Version}])");
        }

        if (DynamicMapping.Apply(index.Mappings, index.FieldTables, source, id) is { } refused)
        {
            return new WriteResult(400, "", 0, 0, refused.Type, refused.Reason);
        }

        var version = (existing?.Version ?? 0) + 1;
        var seqNo = index.NextSeqNo++;
        index.Documents[id] = new StoredDocument(index.Sources.Store(source), version, seqNo);
        var created = existing?.Source is null;
        return new WriteResult(created ? 201 : 200, created ? "created" : "updated", version, seqNo);
    }

    /// <summary>Caller holds <see cref="Gate"/>.</summary>
    public static WriteResult Remove(IndexState index, string id)
    {
        var existing = index.Documents.GetValueOrDefault(id);
        var version = (existing?.Version ?? 0) + 1;
        var seqNo = index.NextSeqNo++;
        index.Documents[id] = new StoredDocument(null, version, seqNo);
        return existing?.Source is null
            ? new WriteResult(404, "not_found", version, seqNo)
            : new WriteResult(200, "deleted", version, seqNo);
    }

    /// <summary>Caller holds <see cref="Gate"/>. Partial update: <c>doc</c> merged into the source, <c>doc_as_upsert</c> / <c>upsert</c> honoured.</summary>
    public static WriteResult Update(IndexState index, string id, JsonObject body)
    {
        var existing = index.Documents.GetValueOrDefault(id);
        var doc = body["doc"] as JsonObject;
        if (existing?.Source is null)
        {
            JsonNode? upsert = body["upsert"]?.DeepClone();
            if (upsert is null && doc is not null && body["doc_as_upsert"]?.GetValue<bool>() == true)
            {
                upsert = doc.DeepClone();
            }

            if (upsert is null)
            {
                return new WriteResult(404, "", 0, 0, "document_missing_exception", $"[{id}]: document missing");
            }

            return Put(index, id, JsonSerializer.SerializeToUtf8Bytes(upsert), create: false);
        }

        if (doc is null)
        {
            return new WriteResult(400, "", 0, 0, "action_request_validation_exception",
                "Validation Failed: 1: script or doc is missing (the test server supports only partial updates with doc);");
        }

        var merged = JsonNode.Parse(existing.Source.Value.Span)!.AsObject();
        MergeInto(merged, doc);
        var mergedText = JsonSerializer.SerializeToUtf8Bytes(merged);
        if (mergedText.AsSpan().SequenceEqual(existing.Source.Value.Span))
        {
            return new WriteResult(200, "noop", existing.Version, existing.SeqNo);
        }

        return Put(index, id, mergedText, create: false);
    }

    /// <summary>
    /// Caller holds <see cref="Gate"/>. Index under external versioning: the document (live or a delete tombstone) must hold a
    /// lower version (<c>external</c>) or a lower-or-equal one (<c>external_gte</c>), else 409 <c>version_conflict_engine_exception</c>;
    /// the stored version becomes the given one.
    /// </summary>
    public static WriteResult PutExternal(IndexState index, string id, ReadOnlySpan<byte> source, long version, bool orEqual)
    {
        var existing = index.Documents.GetValueOrDefault(id);
        if (VersionConflict(id, existing, version, orEqual) is { } conflict)
        {
            return conflict;
        }

        if (DynamicMapping.Apply(index.Mappings, index.FieldTables, source, id) is { } refused)
        {
            return new WriteResult(400, "", 0, 0, refused.Type, refused.Reason);
        }

        var seqNo = index.NextSeqNo++;
        index.Documents[id] = new StoredDocument(index.Sources.Store(source), version, seqNo);
        var created = existing?.Source is null;
        return new WriteResult(created ? 201 : 200, created ? "created" : "updated", version, seqNo);
    }

    /// <summary>Caller holds <see cref="Gate"/>. Delete under external versioning; the tombstone keeps the given version (404 <c>not_found</c> when nothing was live).</summary>
    public static WriteResult RemoveExternal(IndexState index, string id, long version, bool orEqual)
    {
        var existing = index.Documents.GetValueOrDefault(id);
        if (VersionConflict(id, existing, version, orEqual) is { } conflict)
        {
            return conflict;
        }

        var seqNo = index.NextSeqNo++;
        index.Documents[id] = new StoredDocument(null, version, seqNo);
        return existing?.Source is null
            ? new WriteResult(404, "not_found", version, seqNo)
            : new WriteResult(200, "deleted", version, seqNo);
    }

    private static WriteResult? VersionConflict(string id, StoredDocument? existing, long version, bool orEqual)
    {
        if (existing is null || version > existing.Version || (orEqual && version == existing.Version))
        {
            return null;
        }

        return new WriteResult(409, "", existing.Version, existing.SeqNo, "version_conflict_engine_exception", orEqual
            ? $"[{id}]: version conflict, current version [{existing.Version}] is higher than the one provided [{version}]"
            : $"[{id}]: version conflict, current version [{existing.Version}] is higher or equal to the one provided [{version}]");
    }

    public static string NewUuid()
    {
        return Convert.ToBase64String(Guid.NewGuid().ToByteArray()).TrimEnd('=').Replace('+', '-').Replace('/', '_');
    }

    private static void MergeInto(JsonObject target, JsonObject patch)
    {
        foreach (var (key, value) in patch)
        {
            if (value is JsonObject patchObject && target[key] is JsonObject targetObject)
            {
                MergeInto(targetObject, patchObject);
            }
            else
            {
                target[key] = value?.DeepClone();
            }
        }
    }
}
