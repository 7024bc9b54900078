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

    /// <summary>The aliases that point at this index, each with its <c>is_write_index</c> flag (null when not given).</summary>
    public Dictionary<string, bool?> Aliases { get; set; } = new(StringComparer.Ordinal);
}

/// <summary>The kinds of <c>POST /_aliases</c> actions.</summary>
internal enum AliasActionKind
{
    Add,
    Remove,
    RemoveIndex,
}

/// <summary>One <c>POST /_aliases</c> action on one index (an action naming several indices or aliases is expanded).</summary>
internal sealed record AliasAction(AliasActionKind Kind, string Index, string Alias, bool? IsWriteIndex = null);

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

    /// <summary>
    /// Caller holds <see cref="Gate"/>. The index named <paramref name="index"/>, or the one index an alias of that name points
    /// at (reads through an alias of several indices are not supported: null).
    /// </summary>
    public IndexState? Find(string index) =>
        _indices.GetValueOrDefault(index) ?? (IndicesOfAlias(index) is [var only] ? only : null);

    /// <summary>Caller holds <see cref="Gate"/>. The concrete index of that name (not through an alias).</summary>
    public IndexState? FindConcrete(string index) => _indices.GetValueOrDefault(index);

    /// <summary>Caller holds <see cref="Gate"/>. The indices an alias points at, in name order (empty: no such alias).</summary>
    public List<IndexState> IndicesOfAlias(string alias) =>
        [.. _indices.Values.Where(i => i.Aliases.ContainsKey(alias)).OrderBy(i => i.Name, StringComparer.Ordinal)];

    /// <summary>
    /// Caller holds <see cref="Gate"/>. Where a write to <paramref name="name"/> goes, as Elasticsearch resolves it: the index, the
    /// one index of an alias, or its write index; null with no error when nothing has that name (auto-create); an error for an
    /// alias of several indices without a write index.
    /// </summary>
    public IndexState? ResolveWrite(string name, out string? error)
    {
        error = null;
        if (_indices.GetValueOrDefault(name) is { } concrete)
        {
            return concrete;
        }

        var targets = IndicesOfAlias(name);
        if (targets.Count == 0)
        {
            return null;
        }

        var writeIndex = targets.Where(t => t.Aliases[name] == true).ToList();
        if (writeIndex.Count == 1)
        {
            return writeIndex[0];
        }

        if (targets.Count == 1 && targets[0].Aliases[name] != false)
        {
            return targets[0];
        }

        error = $"no write index is defined for alias [{name}]. The write index may be explicitly disabled using is_write_index=false or the alias points to multiple indices without one being designated as a write index";
        return null;
    }

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

    /// <summary>Caller holds <see cref="Gate"/>. Deletes a concrete index (its aliases go with it).</summary>
    public bool Delete(string index) => _indices.Remove(index);

    /// <summary>
    /// Caller holds <see cref="Gate"/>. Applies <c>POST /_aliases</c> actions all or nothing, as Elasticsearch does: every
    /// <c>remove_index</c> first, then <c>add</c> / <c>remove</c> in order, and only when all of them are valid. Returns the
    /// error (status, type, reason) or null when applied.
    /// </summary>
    public (int Status, string Type, string Reason)? ApplyAliasActions(IReadOnlyList<AliasAction> actions)
    {
        var deleted = new HashSet<string>(StringComparer.Ordinal);
        var aliases = _indices.ToDictionary(i => i.Key, i => new Dictionary<string, bool?>(i.Value.Aliases, StringComparer.Ordinal), StringComparer.Ordinal);
        bool Exists(string index) => aliases.ContainsKey(index) && !deleted.Contains(index);
        bool IsAlias(string name) => aliases.Any(a => !deleted.Contains(a.Key) && a.Value.ContainsKey(name));

        foreach (var action in actions.Where(a => a.Kind == AliasActionKind.RemoveIndex))
        {
            if (!Exists(action.Index))
            {
                return IsAlias(action.Index)
                    ? (400, "illegal_argument_exception", $"The provided expression [{action.Index}] matches an alias, specify the corresponding concrete indices instead.")
                    : (404, "index_not_found_exception", $"no such index [{action.Index}]");
            }

            deleted.Add(action.Index);
        }

        foreach (var action in actions.Where(a => a.Kind != AliasActionKind.RemoveIndex))
        {
            if (!Exists(action.Index))
            {
                return (404, "index_not_found_exception", $"no such index [{action.Index}]");
            }

            if (action.Kind == AliasActionKind.Add)
            {
                if (EsResponses.InvalidIndexNameReason(action.Alias) is { } invalid)
                {
                    return (400, "invalid_alias_name_exception", $"Invalid alias name [{action.Alias}]: {invalid}");
                }

                if (Exists(action.Alias))
                {
                    return (400, "invalid_alias_name_exception", $"Invalid alias name [{action.Alias}]: an index or data stream exists with the same name as the alias");
                }

                aliases[action.Index][action.Alias] = action.IsWriteIndex;
            }
            else if (!aliases[action.Index].Remove(action.Alias))
            {
                return (404, "aliases_not_found_exception", $"aliases [{action.Alias}] missing");
            }
        }

        foreach (var index in deleted)
        {
            _indices.Remove(index);
        }

        foreach (var (name, state) in _indices)
        {
            state.Aliases = aliases[name];
        }

        return null;
    }

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
