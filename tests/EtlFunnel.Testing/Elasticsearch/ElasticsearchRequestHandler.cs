using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace EtlFunnel.Testing.Elasticsearch;

/// <summary>Routes and answers the Elasticsearch REST endpoints the sync engine uses.</summary>
internal sealed partial class ElasticsearchRequestHandler(
    ElasticsearchTestServerOptions options,
    InMemoryCluster cluster,
    ElasticsearchFaults faults)
{
    private const string CompatibleJson = "application/vnd.elasticsearch+json;compatible-with=9";
    private const int MaxResultWindow = 10_000;
    private readonly Random _ids = new(options.Seed);
    private readonly Lock _idGate = new();
    private readonly string _clusterUuid = InMemoryCluster.NewUuid();
    private readonly System.Collections.Concurrent.ConcurrentBag<BulkScratch> _bulkScratch = [];
    private int _bulkRequestCount;

    public int BulkRequestCount => Volatile.Read(ref _bulkRequestCount);

    public async Task HandleAsync(HttpContext context)
    {
        var response = context.Response;
        response.Headers["X-Elastic-Product"] = "Elasticsearch";

        var request = context.Request;
        var compatibility = CheckCompatibility(request);
        if (compatibility is not null)
        {
            await WriteAsync(context, 400, compatibility).ConfigureAwait(false);
            return;
        }

        var (segments, query) = ParseTarget(context);
        var method = request.Method.ToUpperInvariant();
        try
        {
            await RouteAsync(context, method, segments, query).ConfigureAwait(false);
        }
        catch (JsonException e)
        {
            await WriteAsync(context, 400, EsResponses.Error(400, "x_content_parse_exception", $"failed to parse request body: {e.Message}")).ConfigureAwait(false);
        }
        catch (UnsupportedByTestServerException e)
        {
            await WriteAsync(context, 400, EsResponses.Error(400, "illegal_argument_exception", e.Message)).ConfigureAwait(false);
        }
    }

    private Task RouteAsync(HttpContext context, string method, string[] s, IQueryCollection query)
    {
        bool Is(params string[] methods) => methods.Contains(method, StringComparer.Ordinal);

        switch (s.Length)
        {
            case 0 when Is("GET", "HEAD"):
                return WriteAsync(context, 200, ClusterInfo());
            case 1 when s[0] == "_bulk" && Is("POST", "PUT"):
                return BulkAsync(context, null, query);
            case 1 when s[0] == "_refresh" && Is("POST", "GET"):
                return RefreshAsync(context, null);
            case 2 when s[0] == "_cluster" && s[1] == "health" && Is("GET"):
            case 3 when s[0] == "_cluster" && s[1] == "health" && Is("GET"):
                return WriteAsync(context, 200, ClusterHealth());
            case 1 when s[0] == "_aliases" && Is("POST"):
                return UpdateAliasesAsync(context);
            case 2 when s[0] == "_alias" && Is("GET", "HEAD"):
                return GetAliasAsync(context, null, s[1]);
            case 1 when !s[0].StartsWith('_'):
                return method switch
                {
                    "HEAD" => IndexExistsAsync(context, s[0]),
                    "PUT" => CreateIndexAsync(context, s[0]),
                    "DELETE" => DeleteIndexAsync(context, s[0]),
                    "GET" => GetIndexAsync(context, s[0]),
                    _ => NoHandlerAsync(context, method),
                };
            case 2 when !s[0].StartsWith('_'):
                return (s[1], method) switch
                {
                    ("_bulk", "POST" or "PUT") => BulkAsync(context, s[0], query),
                    ("_refresh", "POST" or "GET") => RefreshAsync(context, s[0]),
                    ("_count", "POST" or "GET") => CountAsync(context, s[0]),
                    ("_search", "POST" or "GET") => SearchAsync(context, s[0], query),
                    ("_mapping", "GET") => GetMappingAsync(context, s[0]),
                    ("_mapping", "PUT" or "POST") => PutMappingAsync(context, s[0]),
                    ("_settings", "GET") => GetSettingsAsync(context, s[0]),
                    ("_settings", "PUT") => PutSettingsAsync(context, s[0]),
                    ("_doc", "POST") => SingleWriteAsync(context, s[0], null, "index", query),
                    ("_alias" or "_aliases", "GET") => GetAliasAsync(context, s[0], null),
                    _ => NoHandlerAsync(context, method),
                };
            case 3 when !s[0].StartsWith('_'):
                return (s[1], method) switch
                {
                    ("_doc", "GET" or "HEAD") => GetDocumentAsync(context, s[0], s[2], method == "HEAD"),
                    ("_doc", "PUT" or "POST") => SingleWriteAsync(context, s[0], s[2], "index", query),
                    ("_doc", "DELETE") => SingleWriteAsync(context, s[0], s[2], "delete", query),
                    ("_create", "PUT" or "POST") => SingleWriteAsync(context, s[0], s[2], "create", query),
                    ("_update", "POST") => SingleWriteAsync(context, s[0], s[2], "update", query),
                    ("_alias" or "_aliases", "PUT" or "POST") => PutAliasAsync(context, s[0], s[2], AliasActionKind.Add),
                    ("_alias" or "_aliases", "DELETE") => PutAliasAsync(context, s[0], s[2], AliasActionKind.Remove),
                    ("_alias" or "_aliases", "GET" or "HEAD") => GetAliasAsync(context, s[0], s[2]),
                    _ => NoHandlerAsync(context, method),
                };
            default:
                return NoHandlerAsync(context, method);
        }
    }

    private Task NoHandlerAsync(HttpContext context, string method)
    {
        var uri = context.Request.Path.Value;
        return WriteAsync(context, 400, EsResponses.Error(400, "illegal_argument_exception",
            $"no handler found for uri [{uri}] and method [{method}] (the EtlFunnel test server implements only the endpoints listed in docs/testing-elasticsearch.md)"));
    }

    private JsonObject ClusterInfo() => new()
    {
        ["name"] = "etlfunnel-test-node",
        ["cluster_name"] = options.ClusterName,
        ["cluster_uuid"] = _clusterUuid,
        ["version"] = new JsonObject
        {
            ["number"] = options.VersionNumber,
            ["build_flavor"] = "default",
            ["build_type"] = "tar",
            ["build_hash"] = "0000000000000000000000000000000000000000",
            ["build_date"] = "2026-01-01T00:00:00.000Z",
            ["build_snapshot"] = false,
            ["lucene_version"] = "10.2.2",
            ["minimum_wire_compatibility_version"] = "8.19.0",
            ["minimum_index_compatibility_version"] = "8.0.0",
        },
        ["tagline"] = "You Know, for Search",
    };

    private JsonObject ClusterHealth()
    {
        var shards = cluster.IndexNames().Count;
        return new JsonObject
        {
            ["cluster_name"] = options.ClusterName,
            ["status"] = "green",
            ["timed_out"] = false,
            ["number_of_nodes"] = 1,
            ["number_of_data_nodes"] = 1,
            ["active_primary_shards"] = shards,
            ["active_shards"] = shards,
            ["relocating_shards"] = 0,
            ["initializing_shards"] = 0,
            ["unassigned_shards"] = 0,
            ["unassigned_primary_shards"] = 0,
            ["delayed_unassigned_shards"] = 0,
            ["number_of_pending_tasks"] = 0,
            ["number_of_in_flight_fetch"] = 0,
            ["task_max_waiting_in_queue_millis"] = 0,
            ["active_shards_percent_as_number"] = 100.0,
        };
    }

    private Task IndexExistsAsync(HttpContext context, string index)
    {
        bool exists;
        lock (cluster.Gate)
        {
            exists = cluster.Find(index) is not null;
        }

        context.Response.StatusCode = exists ? 200 : 404;
        context.Response.ContentLength = 0;
        return Task.CompletedTask;
    }

    private async Task CreateIndexAsync(HttpContext context, string index)
    {
        var body = await ReadJsonObjectAsync(context).ConfigureAwait(false);
        if (EsResponses.InvalidIndexNameReason(index) is { } invalid)
        {
            await WriteAsync(context, 400, InvalidIndexName(index, invalid)).ConfigureAwait(false);
            return;
        }

        JsonObject answer;
        int status;
        lock (cluster.Gate)
        {
            var isAlias = cluster.FindConcrete(index) is null && cluster.IndicesOfAlias(index).Count > 0;
            var state = isAlias ? null : cluster.Create(index);
            if (isAlias)
            {
                status = 400;
                answer = InvalidIndexName(index, $"Invalid index name [{index}], already exists as alias");
            }
            else if (state is null)
            {
                var existing = cluster.Find(index)!;
                status = 400;
                answer = EsResponses.Error(400, "resource_already_exists_exception", $"index [{index}/{existing.Uuid}] already exists",
                    new JsonObject { ["index_uuid"] = existing.Uuid, ["index"] = index });
            }
            else
            {
                if (body?["mappings"] is JsonObject mappings)
                {
                    MergeMappings(state, mappings);
                }

                if (body?["settings"] is JsonObject settings)
                {
                    MergeSettings(state.Settings, settings);
                }

                status = 200;
                answer = new JsonObject { ["acknowledged"] = true, ["shards_acknowledged"] = true, ["index"] = index };
            }
        }

        await WriteAsync(context, status, answer).ConfigureAwait(false);
    }

    private async Task DeleteIndexAsync(HttpContext context, string index)
    {
        bool deleted;
        bool alias;
        lock (cluster.Gate)
        {
            deleted = cluster.Delete(index);
            alias = !deleted && cluster.IndicesOfAlias(index).Count > 0;
        }

        if (alias)
        {
            // Elasticsearch refuses to delete the indices behind an alias by the alias's name.
            await WriteAsync(context, 400, EsResponses.Error(400, "illegal_argument_exception",
                $"The provided expression [{index}] matches an alias, specify the corresponding concrete indices instead.")).ConfigureAwait(false);
            return;
        }

        await (deleted
            ? WriteAsync(context, 200, new JsonObject { ["acknowledged"] = true })
            : WriteAsync(context, 404, EsResponses.IndexNotFound(index))).ConfigureAwait(false);
    }

    private Task GetIndexAsync(HttpContext context, string index)
    {
        JsonObject? answer = null;
        lock (cluster.Gate)
        {
            if (cluster.Find(index) is { } state)
            {
                answer = new JsonObject
                {
                    [state.Name] = new JsonObject
                    {
                        ["aliases"] = AliasesOf(state),
                        ["mappings"] = state.Mappings.DeepClone(),
                        ["settings"] = new JsonObject { ["index"] = IndexSettings(state) },
                    },
                };
            }
        }

        return answer is null ? WriteAsync(context, 404, EsResponses.IndexNotFound(index)) : WriteAsync(context, 200, answer);
    }

    private Task GetMappingAsync(HttpContext context, string index) =>
        ReadIndexAsync(context, index, state => new JsonObject { ["mappings"] = state.Mappings.DeepClone() });

    private Task PutMappingAsync(HttpContext context, string index) =>
        UpdateIndexAsync(context, index, MergeMappings);

    private Task GetSettingsAsync(HttpContext context, string index) =>
        ReadIndexAsync(context, index, state => new JsonObject { ["settings"] = new JsonObject { ["index"] = IndexSettings(state) } });

    private Task PutSettingsAsync(HttpContext context, string index) =>
        UpdateIndexAsync(context, index, (state, body) => MergeSettings(state.Settings, body["settings"] as JsonObject ?? body));

    /// <summary>Answers <c>{index: view(state)}</c>, or 404 index_not_found.</summary>
    private Task ReadIndexAsync(HttpContext context, string index, Func<IndexState, JsonNode> view)
    {
        JsonObject? answer = null;
        lock (cluster.Gate)
        {
            if (cluster.Find(index) is { } state)
            {
                answer = new JsonObject { [state.Name] = view(state) };
            }
        }

        return answer is null ? WriteAsync(context, 404, EsResponses.IndexNotFound(index)) : WriteAsync(context, 200, answer);
    }

    /// <summary>Applies the request body to an existing index and acknowledges, or answers 404 index_not_found.</summary>
    private async Task UpdateIndexAsync(HttpContext context, string index, Action<IndexState, JsonObject> update)
    {
        var body = await ReadJsonObjectAsync(context).ConfigureAwait(false) ?? [];
        bool found;
        lock (cluster.Gate)
        {
            var state = cluster.Find(index);
            found = state is not null;
            if (state is not null)
            {
                update(state, body);
            }
        }

        await (found
            ? WriteAsync(context, 200, new JsonObject { ["acknowledged"] = true })
            : WriteAsync(context, 404, EsResponses.IndexNotFound(index))).ConfigureAwait(false);
    }

    private static JsonObject IndexSettings(IndexState state)
    {
        var settings = new JsonObject
        {
            ["number_of_shards"] = "1",
            ["number_of_replicas"] = "1",
            ["provided_name"] = state.Name,
            ["creation_date"] = state.CreationDateMillis.ToString(CultureInfo.InvariantCulture),
            ["uuid"] = state.Uuid,
            ["version"] = new JsonObject { ["created"] = "9000000" },
        };
        foreach (var (key, value) in state.Settings)
        {
            settings[key] = value?.DeepClone();
        }

        return settings;
    }

    private static void MergeMappings(IndexState state, JsonObject mappings)
    {
        state.FieldTables.Clear();
        foreach (var (key, value) in mappings)
        {
            if (key == "properties" && value is JsonObject properties)
            {
                foreach (var (field, mapping) in properties)
                {
                    state.Properties[field] = mapping?.DeepClone();
                }
            }
            else
            {
                state.Mappings[key] = value?.DeepClone();
            }
        }
    }

    /// <summary>Stores settings the way Elasticsearch reports them: nested under <c>index</c>, scalar values as strings.</summary>
    private static void MergeSettings(JsonObject target, JsonObject settings)
    {
        foreach (var (rawKey, value) in settings)
        {
            if (rawKey == "index" && value is JsonObject indexLevel)
            {
                MergeSettings(target, indexLevel);
                continue;
            }

            var key = rawKey.StartsWith("index.", StringComparison.Ordinal) ? rawKey["index.".Length..] : rawKey;
            var parts = key.Split('.');
            var node = target;
            foreach (var part in parts[..^1])
            {
                if (node[part] is not JsonObject child)
                {
                    child = [];
                    node[part] = child;
                }

                node = child;
            }

            if (value is JsonObject nested)
            {
                if (node[parts[^1]] is not JsonObject child)
                {
                    child = [];
                    node[parts[^1]] = child;
                }

                MergeSettings(child, nested);
            }
            else
            {
                node[parts[^1]] = value switch
                {
                    null => null,
                    JsonArray array => array.DeepClone(),
                    JsonValue scalar when scalar.GetValueKind() == JsonValueKind.String => scalar.GetValue<string>(),
                    _ => value.ToJsonString(),
                };
            }
        }
    }

    private async Task RefreshAsync(HttpContext context, string? index)
    {
        var found = true;
        var shards = 0;
        lock (cluster.Gate)
        {
            var names = index is null ? cluster.IndexNames() : [index];
            foreach (var name in names)
            {
                if (cluster.Find(name) is { } state)
                {
                    InMemoryCluster.Refresh(state);
                    shards++;
                }
                else
                {
                    found = false;
                }
            }
        }

        await (found
            ? WriteAsync(context, 200, new JsonObject { ["_shards"] = EsResponses.Shards(shards) })
            : WriteAsync(context, 404, EsResponses.IndexNotFound(index!))).ConfigureAwait(false);
    }

    private async Task CountAsync(HttpContext context, string index)
    {
        var body = await ReadJsonObjectAsync(context).ConfigureAwait(false);
        var filter = QueryFilter.Parse(body?["query"]);
        long? count = null;
        lock (cluster.Gate)
        {
            if (cluster.Find(index) is { } state)
            {
                count = InMemoryCluster.Visible(state).LongCount(d => filter(d.Key));
            }
        }

        await (count is { } n
            ? WriteAsync(context, 200, new JsonObject { ["count"] = n, ["_shards"] = EsResponses.Shards() })
            : WriteAsync(context, 404, EsResponses.IndexNotFound(index))).ConfigureAwait(false);
    }

    private async Task SearchAsync(HttpContext context, string index, IQueryCollection query)
    {
        var started = Stopwatch.GetTimestamp();
        if (faults.SearchDelay > TimeSpan.Zero)
        {
            faults.CountDelayedSearch();
            await Task.Delay(faults.SearchDelay, context.RequestAborted).ConfigureAwait(false);
        }

        var body = await ReadJsonObjectAsync(context).ConfigureAwait(false) ?? [];
        var filter = QueryFilter.Parse(body["query"]);
        var from = IntParameter(body["from"], query["from"], 0);
        var size = IntParameter(body["size"], query["size"], 10);
        if (from < 0 || size < 0)
        {
            await WriteAsync(context, 400, EsResponses.Error(400, "illegal_argument_exception", "[from] and [size] must not be negative")).ConfigureAwait(false);
            return;
        }

        if (from + size > MaxResultWindow)
        {
            await WriteAsync(context, 400, EsResponses.Error(400, "illegal_argument_exception",
                $"Result window is too large, from + size must be less than or equal to: [{MaxResultWindow}] but was [{from + size}]. See the scroll api for a more efficient way to request large data sets.")).ConfigureAwait(false);
            return;
        }

        var sorted = ParseSort(body["sort"], out var descending);
        var includeSource = body["_source"] is not JsonValue sourceFlag || sourceFlag.GetValueKind() != JsonValueKind.False;

        List<KeyValuePair<string, StoredDocument>>? matches = null;
        lock (cluster.Gate)
        {
            if (cluster.Find(index) is { } state)
            {
                // Hits name the concrete index, also when searched through an alias.
                index = state.Name;
                matches = [.. InMemoryCluster.Visible(state).Where(d => filter(d.Key))];
            }
        }

        if (matches is null)
        {
            await WriteAsync(context, 404, EsResponses.IndexNotFound(index)).ConfigureAwait(false);
            return;
        }

        if (descending)
        {
            matches.Reverse();
        }

        var hits = new JsonArray();
        foreach (var (id, doc) in matches.Skip(from).Take(size))
        {
            var hit = new JsonObject { ["_index"] = index, ["_id"] = id, ["_score"] = sorted ? null : 1.0 };
            if (includeSource)
            {
                hit["_source"] = JsonNode.Parse(doc.Source!.Value.Span);
            }

            if (sorted)
            {
                hit["sort"] = new JsonArray(doc.SeqNo);
            }

            hits.Add(hit);
        }

        var answer = new JsonObject
        {
            ["took"] = (int)Stopwatch.GetElapsedTime(started).TotalMilliseconds,
            ["timed_out"] = false,
            ["_shards"] = EsResponses.Shards(),
            ["hits"] = new JsonObject
            {
                ["total"] = new JsonObject { ["value"] = matches.Count, ["relation"] = "eq" },
                ["max_score"] = sorted || matches.Count == 0 ? null : 1.0,
                ["hits"] = hits,
            },
        };
        await WriteAsync(context, 200, answer).ConfigureAwait(false);
    }

    /// <summary>True when hits are sorted (by index order, <c>_doc</c>); sorting by <c>_id</c> fails as on a real 8+/9 cluster.</summary>
    private static bool ParseSort(JsonNode? sort, out bool descending)
    {
        descending = false;
        if (sort is null)
        {
            return false;
        }

        var clauses = sort is JsonArray array ? [.. array] : new List<JsonNode?> { sort };
        if (clauses.Count == 0)
        {
            return false;
        }

        if (clauses.Count > 1)
        {
            throw new UnsupportedByTestServerException("the EtlFunnel test server sorts by one key only (_doc or _score)");
        }

        string field;
        string? order = null;
        switch (clauses[0])
        {
            case JsonValue value when value.GetValueKind() == JsonValueKind.String:
                field = value.GetValue<string>();
                break;
            case JsonObject obj when obj.Count == 1:
                var (name, spec) = obj.First();
                field = name;
                order = spec switch
                {
                    JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
                    JsonObject o => o["order"]?.GetValue<string>(),
                    _ => null,
                };
                break;
            default:
                throw new UnsupportedByTestServerException($"the EtlFunnel test server cannot read sort [{sort.ToJsonString()}]");
        }

        if (field == "_id")
        {
            throw new UnsupportedByTestServerException(
                "Fielddata access on the _id field is disallowed, you can re-enable it by updating the dynamic cluster setting: indices.id_field_data.enabled");
        }

        if (field is not ("_doc" or "_score"))
        {
            throw new UnsupportedByTestServerException($"the EtlFunnel test server sorts only by _doc or _score, not by [{field}]");
        }

        descending = string.Equals(order, "desc", StringComparison.OrdinalIgnoreCase);
        if (field == "_score")
        {
            // Every hit scores 1.0, so score order is index order whichever the direction.
            descending = false;
        }

        return field == "_doc";
    }

    private static int IntParameter(JsonNode? fromBody, Microsoft.Extensions.Primitives.StringValues fromQuery, int fallback)
    {
        if (fromBody is JsonValue value)
        {
            return value.GetValue<int>();
        }

        return fromQuery.Count > 0 && int.TryParse(fromQuery[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out var parsed) ? parsed : fallback;
    }

    private async Task GetDocumentAsync(HttpContext context, string index, string id, bool head)
    {
        StoredDocument? doc = null;
        var indexFound = false;
        lock (cluster.Gate)
        {
            if (cluster.Find(index) is { } state)
            {
                indexFound = true;
                index = state.Name;
                doc = state.Documents.GetValueOrDefault(id);
            }
        }

        if (head)
        {
            context.Response.StatusCode = doc?.Source is not null ? 200 : 404;
            context.Response.ContentLength = 0;
            return;
        }

        if (!indexFound)
        {
            await WriteAsync(context, 404, EsResponses.IndexNotFound(index)).ConfigureAwait(false);
            return;
        }

        if (doc?.Source is null)
        {
            await WriteAsync(context, 404, new JsonObject { ["_index"] = index, ["_id"] = id, ["found"] = false }).ConfigureAwait(false);
            return;
        }

        await WriteAsync(context, 200, new JsonObject
        {
            ["_index"] = index,
            ["_id"] = id,
            ["_version"] = doc.Version,
            ["_seq_no"] = doc.SeqNo,
            ["_primary_term"] = 1,
            ["found"] = true,
            ["_source"] = JsonNode.Parse(doc.Source.Value.Span),
        }).ConfigureAwait(false);
    }

    /// <summary>Single-document index/create/update/delete: the same semantics as one bulk item, answered as the document APIs do.</summary>
    private async Task SingleWriteAsync(HttpContext context, string index, string? id, string operation, IQueryCollection query)
    {
        var raw = operation == "delete" ? null : await ReadBodyAsync(context).ConfigureAwait(false);
        var op = new BulkOperation(operation, index, id ?? NewId(), raw, raw is not null);
        var item = Apply(op, injectFaults: false);
        if (ShouldRefresh(query))
        {
            RefreshIndices([index]);
        }

        if (item.ErrorType is not null)
        {
            await WriteAsync(context, item.Status, EsResponses.Error(item.Status, item.ErrorType, item.ErrorReason!)).ConfigureAwait(false);
            return;
        }

        await WriteAsync(context, item.Status, new JsonObject
        {
            ["_index"] = item.ConcreteIndex ?? op.Index,
            ["_id"] = op.Id,
            ["_version"] = item.Version,
            ["result"] = item.Result,
            ["_shards"] = EsResponses.WriteShards(),
            ["_seq_no"] = item.SeqNo,
            ["_primary_term"] = 1,
        }).ConfigureAwait(false);
    }

    private async Task BulkAsync(HttpContext context, string? defaultIndex, IQueryCollection query)
    {
        var started = Stopwatch.GetTimestamp();
        Interlocked.Increment(ref _bulkRequestCount);
        // The body stays in a pooled buffer: sources are copied out only when they are stored.
        var (body, length) = await ReadPooledBodyAsync(context).ConfigureAwait(false);
        var scratch = _bulkScratch.TryTake(out var reused) ? reused : new BulkScratch();
        try
        {
            await BulkAsync(context, body.AsMemory(0, length), defaultIndex, query, started, scratch).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(body);
            scratch.Clear();
            _bulkScratch.Add(scratch);
        }
    }

    private async Task BulkAsync(HttpContext context, ReadOnlyMemory<byte> body, string? defaultIndex, IQueryCollection query, long started, BulkScratch scratch)
    {
        if (faults.BulkDelay > TimeSpan.Zero)
        {
            await Task.Delay(faults.BulkDelay, context.RequestAborted).ConfigureAwait(false);
        }

        var fault = faults.NextBulkCall();
        if (fault.Status == 429)
        {
            await WriteAsync(context, 429, EsResponses.Error(429, "es_rejected_execution_exception",
                "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=0, max_coordinating_and_primary_bytes=0] (injected by the EtlFunnel test server)")).ConfigureAwait(false);
            return;
        }

        if (fault.Status == 503)
        {
            await WriteAsync(context, 503, EsResponses.Error(503, "unavailable_shards_exception",
                "primary shard is not active Timeout: [1m] (injected by the EtlFunnel test server)")).ConfigureAwait(false);
            return;
        }

        var operations = scratch.Operations;
        try
        {
            ParseBulk(body, defaultIndex, operations);
        }
        catch (BulkFormatException e)
        {
            await WriteAsync(context, 400, EsResponses.Error(400, "illegal_argument_exception", e.Message)).ConfigureAwait(false);
            return;
        }

        // As BulkRequest.validate(): one _id over 512 bytes fails the whole request with a validation error (no item runs).
        if (OverlongIds(operations) is { } overlong)
        {
            await WriteAsync(context, 400, EsResponses.Error(400, "action_request_validation_exception", overlong)).ConfigureAwait(false);
            return;
        }

        if (fault.Drop == DroppedConnectionMode.BeforeApplying)
        {
            await DropAsync(context).ConfigureAwait(false);
            return;
        }

        var results = scratch.Results;
        var errors = false;
        foreach (var op in operations)
        {
            var result = Apply(op, injectFaults: true);
            results.Add(result);
            errors |= result.ErrorType is not null;
        }

        if (ShouldRefresh(query))
        {
            RefreshIndices(operations.Select(o => o.Index).Distinct(StringComparer.Ordinal));
        }

        if (fault.Drop == DroppedConnectionMode.AfterApplying)
        {
            await DropAsync(context).ConfigureAwait(false);
            return;
        }

        var output = scratch.Response;
        using (var json = new Utf8JsonWriter(output))
        {
            json.WriteStartObject();
            json.WriteBoolean("errors", errors);
            json.WriteNumber("took", (long)Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            json.WriteStartArray("items");
            for (var i = 0; i < operations.Count; i++)
            {
                WriteItem(json, operations[i], results[i]);
            }

            json.WriteEndArray();
            json.WriteEndObject();
        }

        await WriteAsync(context, 200, output.WrittenMemory).ConfigureAwait(false);
    }

    /// <summary>One bulk item as Elasticsearch answers it: <c>{"index":{"_index":..,"_id":..,...,"status":201}}</c>.</summary>
    private static void WriteItem(Utf8JsonWriter json, BulkOperation op, ItemResult result)
    {
        json.WriteStartObject();
        json.WriteStartObject(op.Action);
        json.WriteString("_index", result.ConcreteIndex ?? op.Index);
        json.WriteString("_id", op.Id);
        if (result.ErrorType is null)
        {
            json.WriteNumber("_version", result.Version);
            json.WriteString("result", result.Result);
            json.WriteStartObject("_shards");
            json.WriteNumber("total", 2);
            json.WriteNumber("successful", 1);
            json.WriteNumber("failed", 0);
            json.WriteEndObject();
            json.WriteNumber("_seq_no", result.SeqNo);
            json.WriteNumber("_primary_term", 1);
            json.WriteNumber("status", result.Status);
        }
        else
        {
            json.WriteNumber("status", result.Status);
            json.WriteStartObject("error");
            json.WriteString("type", result.ErrorType);
            json.WriteString("reason", result.ErrorReason);
            json.WriteString("index_uuid", result.IndexUuid ?? "_na_");
            json.WriteString("shard", "0");
            json.WriteString("index", op.Index);
            json.WriteEndObject();
        }

        json.WriteEndObject();
        json.WriteEndObject();
    }

    /// <summary>Aborts the connection before any response byte, as a node that dies mid-request does.</summary>
    private static Task DropAsync(HttpContext context)
    {
        context.Items[ElasticsearchTestServer.DroppedKey] = true;
        context.Abort();
        return Task.CompletedTask;
    }

    private void ParseBulk(ReadOnlyMemory<byte> body, string? defaultIndex, List<BulkOperation> operations)
    {
        var position = 0;
        var lineNumber = 0;
        while (NextLine(body, ref position) is { } actionLine)
        {
            var i = lineNumber++;
            var (name, index, id) = ParseAction(actionLine.Span, i, operations.Count, operations.Count > 0 ? operations[^1].Index : null);
            var (version, versionType) = ParseVersioning(actionLine.Span, name, operations.Count);
            index ??= defaultIndex ?? throw new BulkFormatException($"Validation Failed: 1: index is missing for item [{operations.Count}];");
            if (id is null && name is "delete" or "update")
            {
                throw new BulkFormatException($"Validation Failed: 1: id is missing for item [{operations.Count}];");
            }

            ReadOnlyMemory<byte> source = default;
            if (name != "delete")
            {
                if (NextLine(body, ref position) is not { } sourceLine)
                {
                    throw new BulkFormatException($"The bulk request must be terminated by a newline [\\n]; no source line follows action line [{i + 1}]");
                }

                lineNumber++;
                source = sourceLine;
            }

            operations.Add(new BulkOperation(name, index, id ?? NewId(), source, name != "delete", version, versionType));
        }

        if (operations.Count == 0)
        {
            throw new BulkFormatException("Validation Failed: 1: no requests added;");
        }
    }

    /// <summary>Reads <c>{"&lt;action&gt;":{"_index":..,"_id":..}}</c>; <paramref name="line"/> is zero-based among the non-blank lines.</summary>
    private static (string Name, string? Index, string? Id) ParseAction(ReadOnlySpan<byte> text, int line, int item, string? lastIndex)
    {
        var reader = new Utf8JsonReader(text);
        string? name = null, index = null, id = null;
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                throw new BulkFormatException($"Malformed action/metadata line [{line + 1}], expected START_OBJECT");
            }

            var actions = 0;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                actions++;
                name ??= ActionName(ref reader);
                reader.Read();
                if (actions > 1 || reader.TokenType != JsonTokenType.StartObject)
                {
                    reader.Skip();
                    continue;
                }

                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    var isIndex = reader.ValueTextEquals("_index"u8);
                    var isId = reader.ValueTextEquals("_id"u8);
                    reader.Read();
                    if (isIndex && reader.TokenType != JsonTokenType.Null)
                    {
                        index = reader.TokenType == JsonTokenType.String ? IndexName(ref reader, lastIndex) : throw new BulkFormatException(
                            $"Malformed action/metadata line [{line + 1}], [_index] must be a string for item [{item}]");
                    }
                    else if (isId && reader.TokenType != JsonTokenType.Null)
                    {
                        id = reader.TokenType == JsonTokenType.String ? reader.GetString() : Encoding.UTF8.GetString(reader.ValueSpan);
                    }
                    else
                    {
                        reader.Skip();
                    }
                }
            }

            if (reader.Read())
            {
                throw new JsonException($"'{(char)text[(int)reader.TokenStartIndex]}' is invalid after a single JSON value.");
            }

            if (actions != 1)
            {
                throw new BulkFormatException($"Malformed action/metadata line [{line + 1}], expected one action but found [{actions}]");
            }
        }
        catch (JsonException e)
        {
            throw new BulkFormatException($"Malformed action/metadata line [{line + 1}]: {e.Message}");
        }

        if (name is not ("index" or "create" or "delete" or "update"))
        {
            throw new BulkFormatException($"Malformed action/metadata line [{line + 1}], expected one of [create, delete, index, update] but found [{name}]");
        }

        return (name, index, id);
    }

    // A bulk body names the same action and index on every line: reuse the strings instead of allocating them per item.
    private static string ActionName(ref Utf8JsonReader reader) =>
        reader.ValueTextEquals("index"u8) ? "index"
        : reader.ValueTextEquals("create"u8) ? "create"
        : reader.ValueTextEquals("delete"u8) ? "delete"
        : reader.ValueTextEquals("update"u8) ? "update"
        : reader.GetString()!;

    private static string IndexName(ref Utf8JsonReader reader, string? last) =>
        last is not null && reader.ValueTextEquals(last) ? last : reader.GetString()!;

    /// <summary>The next non-blank line (without its <c>\r\n</c>) from <paramref name="position"/>, or null at the end.</summary>
    private static ReadOnlyMemory<byte>? NextLine(ReadOnlyMemory<byte> body, ref int position)
    {
        var span = body.Span;
        while (position < span.Length)
        {
            var rest = span[position..];
            var end = rest.IndexOf((byte)'\n');
            var length = end < 0 ? rest.Length : end;
            var line = body.Slice(position, length);
            position += end < 0 ? rest.Length : end + 1;
            if (line.Length > 0 && line.Span[^1] == (byte)'\r')
            {
                line = line[..^1];
            }

            if (!line.Span.Trim((byte)' ').IsEmpty)
            {
                return line;
            }
        }

        return null;
    }

    /// <summary>Applies one write and returns its outcome (an error type and reason when it failed).</summary>
    private ItemResult Apply(BulkOperation op, bool injectFaults)
    {
        static ItemResult Failure(int status, string type, string reason, string? uuid) => new(status, null, 0, 0, type, reason, uuid);

        JsonDocument? sourceDocument = null;
        try
        {
            // Only updates and source-inspecting faults need a parsed source; index/create validate while they map.
            if (op.HasSource && (op.Action == "update" || (injectFaults && faults.InspectsSources)))
            {
                try
                {
                    sourceDocument = JsonDocument.Parse(op.Source);
                }
                catch (JsonException e)
                {
                    return Failure(400, "document_parsing_exception", $"[1:1] failed to parse: {e.Message}", null);
                }

                if (sourceDocument.RootElement.ValueKind != JsonValueKind.Object)
                {
                    return Failure(400, "document_parsing_exception", "[1:1] failed to parse: the source must be a JSON object", null);
                }
            }

            var parsedSource = sourceDocument?.RootElement;
            var itemSource = op.Action == "update" ? parsedSource?.GetPropertyOrNull("doc") : parsedSource;
            if (injectFaults && faults.ItemFault(op.Id, itemSource, op.Action == "delete") is { } injected)
            {
                var reason = injected.Status == 400
                    ? $"[1:1] failed to parse: document with id '{op.Id}' was rejected (injected by the EtlFunnel test server)"
                    : "rejected execution of primary operation (injected by the EtlFunnel test server)";
                return Failure(injected.Status, injected.Type, reason, null);
            }

            lock (cluster.Gate)
            {
                var state = cluster.ResolveWrite(op.Index, out var aliasError);
                if (aliasError is not null)
                {
                    return Failure(400, "illegal_argument_exception", aliasError, null);
                }

                if (state is null)
                {
                    if (op.Action == "delete" || op.Action == "update" && op.HasSource && !IsUpsert(parsedSource!.Value))
                    {
                        return op.Action == "delete"
                            ? Failure(404, "index_not_found_exception", $"no such index [{op.Index}]", null)
                            : Failure(404, "document_missing_exception", $"[{op.Id}]: document missing", null);
                    }

                    if (EsResponses.InvalidIndexNameReason(op.Index) is { } invalid)
                    {
                        return Failure(400, "invalid_index_name_exception", invalid, null);
                    }

                    state = cluster.Create(op.Index)!;
                }

                var result = op.VersionType is not null ? ApplyVersioned(state, op) : op.Action switch
                {
                    "index" => InMemoryCluster.Put(state, op.Id, op.Source.Span, create: false),
                    "create" => InMemoryCluster.Put(state, op.Id, op.Source.Span, create: true),
                    "delete" => InMemoryCluster.Remove(state, op.Id),
                    _ => InMemoryCluster.Update(state, op.Id, JsonNode.Parse(op.Source.Span)!.AsObject()),
                };

                return result.ErrorType is not null
                    ? Failure(result.Status, result.ErrorType, result.ErrorReason!, result.Status == 400 ? null : state.Uuid)
                    : new ItemResult(result.Status, result.Result, result.Version, result.SeqNo, null, null, null, state.Name);
            }
        }
        finally
        {
            sourceDocument?.Dispose();
        }
    }

    /// <summary>Index or delete under external versioning (<c>version_type</c> <c>external</c> or <c>external_gte</c>).</summary>
    private static WriteResult ApplyVersioned(IndexState state, BulkOperation op) => op.Action == "delete"
        ? InMemoryCluster.RemoveExternal(state, op.Id, op.Version!.Value, op.VersionType == "external_gte")
        : InMemoryCluster.PutExternal(state, op.Id, op.Source.Span, op.Version!.Value, op.VersionType == "external_gte");

    /// <summary>
    /// The action line's <c>version</c> and <c>version_type</c> as Elasticsearch validates them: only <c>internal</c>,
    /// <c>external</c> and <c>external_gte</c>; external types need a version in [0, 9.2e18] and work with index and delete
    /// only (create and update refuse them); a version without a type is an internal-versioning compare, not supported here.
    /// </summary>
    private static (long? Version, string? VersionType) ParseVersioning(ReadOnlySpan<byte> text, string action, int item)
    {
        if (text.IndexOf("\"version"u8) < 0)
        {
            return (null, null);
        }

        long? version = null;
        string? type = null;
        var reader = new Utf8JsonReader(text);
        reader.Read();
        reader.Read();
        reader.Read();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var isVersion = reader.ValueTextEquals("version"u8);
            var isType = reader.ValueTextEquals("version_type"u8);
            reader.Read();
            if (isVersion)
            {
                version = reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var v) ? v
                    : throw new BulkFormatException($"Validation Failed: 1: illegal version value [{Encoding.UTF8.GetString(reader.ValueSpan)}] for item [{item}];");
            }
            else if (isType)
            {
                type = reader.GetString();
            }
            else
            {
                reader.Skip();
            }
        }

        if (type is null or "internal")
        {
            if (version is not null)
            {
                throw new UnsupportedByTestServerException("the EtlFunnel test server supports `version` only with version_type external or external_gte");
            }

            return (null, null);
        }

        if (type is not ("external" or "external_gte"))
        {
            throw new BulkFormatException($"No version type match [{type}]");
        }

        if (action == "create")
        {
            throw new BulkFormatException("Validation Failed: 1: create operations do not support versioning. use index instead;");
        }

        if (action == "update")
        {
            throw new BulkFormatException($"Validation Failed: 1: version type [{type.ToUpperInvariant()}] is not supported by the update API;");
        }

        if (version is not { } given || given < 0 || given > 9_200_000_000_000_000_000)
        {
            throw new BulkFormatException($"Validation Failed: 1: illegal version value [{version?.ToString(CultureInfo.InvariantCulture) ?? "-3"}] for version type [{type.ToUpperInvariant()}];");
        }

        return (version, type);
    }

    /// <summary><c>POST /_aliases</c>: add / remove / remove_index actions, applied all or nothing.</summary>
    private async Task UpdateAliasesAsync(HttpContext context)
    {
        var body = await ReadJsonObjectAsync(context).ConfigureAwait(false);
        if (body?["actions"] is not JsonArray list)
        {
            await WriteAsync(context, 400, EsResponses.Error(400, "action_request_validation_exception", "Validation Failed: 1: Must specify at least one alias action;")).ConfigureAwait(false);
            return;
        }

        var actions = new List<AliasAction>();
        foreach (var item in list)
        {
            if (item is not JsonObject wrapper || wrapper.Count != 1)
            {
                throw new JsonException("each alias action must be an object with exactly one of [add, remove, remove_index]");
            }

            var (name, node) = wrapper.First();
            var kind = name switch
            {
                "add" => AliasActionKind.Add,
                "remove" => AliasActionKind.Remove,
                "remove_index" => AliasActionKind.RemoveIndex,
                _ => throw new JsonException($"unknown alias action [{name}], expected one of [add, remove, remove_index]"),
            };
            var spec = node as JsonObject ?? throw new JsonException($"the [{name}] alias action must be an object");
            var indices = Names(spec, "index", "indices");
            var aliases = kind == AliasActionKind.RemoveIndex ? [""] : Names(spec, "alias", "aliases");
            if (indices.Count == 0 || aliases.Count == 0)
            {
                await WriteAsync(context, 400, EsResponses.Error(400, "action_request_validation_exception",
                    indices.Count == 0 ? "Validation Failed: 1: One of [index] or [indices] is required;" : "Validation Failed: 1: One of [alias] or [aliases] is required;")).ConfigureAwait(false);
                return;
            }

            var isWrite = spec["is_write_index"] is JsonValue flag ? flag.GetValue<bool>() : (bool?)null;
            actions.AddRange(indices.SelectMany(i => aliases.Select(a => new AliasAction(kind, i, a, isWrite))));
        }

        (int Status, string Type, string Reason)? error;
        lock (cluster.Gate)
        {
            error = cluster.ApplyAliasActions(actions);
        }

        await (error is { } e
            ? WriteAsync(context, e.Status, EsResponses.Error(e.Status, e.Type, e.Reason))
            : WriteAsync(context, 200, new JsonObject { ["acknowledged"] = true, ["errors"] = false })).ConfigureAwait(false);
    }

    /// <summary><c>PUT /{index}/_alias/{name}</c> (add) and <c>DELETE /{index}/_alias/{name}</c> (remove): one alias action.</summary>
    private async Task PutAliasAsync(HttpContext context, string index, string alias, AliasActionKind kind)
    {
        var body = kind == AliasActionKind.Add ? await ReadJsonObjectAsync(context).ConfigureAwait(false) : null;
        var isWrite = body?["is_write_index"] is JsonValue flag ? flag.GetValue<bool>() : (bool?)null;
        (int Status, string Type, string Reason)? error;
        lock (cluster.Gate)
        {
            error = cluster.ApplyAliasActions([new AliasAction(kind, index, alias, isWrite)]);
        }

        await (error is { } e
            ? WriteAsync(context, e.Status, EsResponses.Error(e.Status, e.Type, e.Reason))
            : WriteAsync(context, 200, new JsonObject { ["acknowledged"] = true })).ConfigureAwait(false);
    }

    /// <summary>
    /// <c>GET /_alias/{name}</c>, <c>GET /{index}/_alias</c> and <c>GET /{index}/_alias/{name}</c>: <c>{index: {aliases: {..}}}</c>
    /// for every index (behind <paramref name="index"/>, which may itself be an alias) holding the alias; 404 with
    /// <c>"error": "alias [name] missing"</c> when none does, as Elasticsearch answers.
    /// </summary>
    private Task GetAliasAsync(HttpContext context, string? index, string? alias)
    {
        var answer = new JsonObject();
        var indexFound = true;
        lock (cluster.Gate)
        {
            List<IndexState> targets;
            if (index is null)
            {
                targets = cluster.IndicesOfAlias(alias!);
            }
            else if (cluster.FindConcrete(index) is { } concrete)
            {
                targets = [concrete];
            }
            else
            {
                targets = cluster.IndicesOfAlias(index);
                indexFound = targets.Count > 0;
            }

            foreach (var state in targets)
            {
                var aliases = AliasesOf(state);
                if (alias is not null)
                {
                    foreach (var other in aliases.Select(a => a.Key).Where(a => a != alias).ToList())
                    {
                        aliases.Remove(other);
                    }

                    if (aliases.Count == 0)
                    {
                        continue;
                    }
                }

                answer[state.Name] = new JsonObject { ["aliases"] = aliases };
            }
        }

        if (!indexFound)
        {
            return WriteAsync(context, 404, EsResponses.IndexNotFound(index!));
        }

        if (alias is not null && answer.Count == 0)
        {
            return WriteAsync(context, 404, new JsonObject { ["error"] = $"alias [{alias}] missing", ["status"] = 404 });
        }

        return WriteAsync(context, 200, answer);
    }

    /// <summary>Caller holds the cluster's gate. The index's aliases as Elasticsearch lists them.</summary>
    private static JsonObject AliasesOf(IndexState state)
    {
        var aliases = new JsonObject();
        foreach (var (name, isWrite) in state.Aliases.OrderBy(a => a.Key, StringComparer.Ordinal))
        {
            aliases[name] = isWrite is { } flag ? new JsonObject { ["is_write_index"] = flag } : new JsonObject();
        }

        return aliases;
    }

    /// <summary>The names of a single (<paramref name="one"/>) or array (<paramref name="many"/>) field of an alias action.</summary>
    private static List<string> Names(JsonObject spec, string one, string many)
    {
        var names = new List<string>();
        if (spec[one] is JsonValue single)
        {
            names.Add(single.GetValue<string>());
        }

        if (spec[many] is JsonArray array)
        {
            names.AddRange(array.Select(n => n!.GetValue<string>()));
        }
        else if (spec[many] is JsonValue text)
        {
            names.Add(text.GetValue<string>());
        }

        return names;
    }

    private static bool IsUpsert(JsonElement body) =>
        body.TryGetProperty("upsert", out _) ||
        (body.TryGetProperty("doc_as_upsert", out var flag) && flag.ValueKind == JsonValueKind.True);

    private void RefreshIndices(IEnumerable<string> indices)
    {
        lock (cluster.Gate)
        {
            foreach (var name in indices)
            {
                if (cluster.Find(name) is { } state)
                {
                    InMemoryCluster.Refresh(state);
                }
            }
        }
    }

    private static bool ShouldRefresh(IQueryCollection query) =>
        query.TryGetValue("refresh", out var value) && (value.Count == 0 || value[0] is "" or "true" or "wait_for");

    /// <summary>An auto-generated id: 20 URL-safe base64 characters like Elasticsearch's, drawn from the seeded random source.</summary>
    private string NewId()
    {
        Span<byte> bytes = stackalloc byte[15];
        lock (_idGate)
        {
            _ids.NextBytes(bytes);
        }

        return Convert.ToBase64String(bytes).Replace('+', '-').Replace('/', '_');
    }

    private static JsonObject InvalidIndexName(string index, string reason) =>
        EsResponses.Error(400, "invalid_index_name_exception", reason, new JsonObject { ["index_uuid"] = "_na_", ["index"] = index });

    private static async Task<byte[]> ReadBodyAsync(HttpContext context)
    {
        using var buffer = new MemoryStream();
        await context.Request.Body.CopyToAsync(buffer, context.RequestAborted).ConfigureAwait(false);
        return buffer.ToArray();
    }

    /// <summary>The request body in a buffer rented from the shared pool; the caller returns it.</summary>
    private static async Task<(byte[] Buffer, int Length)> ReadPooledBodyAsync(HttpContext context)
    {
        var body = context.Request.Body;
        var buffer = ArrayPool<byte>.Shared.Rent(context.Request.ContentLength is long n and > 0 and < 16 * 1024 * 1024 ? (int)n * 4 : 1 << 20);
        var length = 0;
        try
        {
            int read;
            while ((read = await body.ReadAsync(buffer.AsMemory(length), context.RequestAborted).ConfigureAwait(false)) > 0)
            {
                length += read;
                if (length == buffer.Length)
                {
                    var larger = ArrayPool<byte>.Shared.Rent(buffer.Length * 2);
                    buffer.AsSpan(0, length).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                }
            }
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }

        return (buffer, length);
    }

    private static async Task<JsonObject?> ReadJsonObjectAsync(HttpContext context)
    {
        var body = await ReadBodyAsync(context).ConfigureAwait(false);
        if (body.AsSpan().Trim(" \r\n\t"u8).IsEmpty)
        {
            return null;
        }

        return JsonNode.Parse(body) as JsonObject ?? throw new JsonException("the request body must be a JSON object");
    }

    private static Task WriteAsync(HttpContext context, int status, JsonObject body)
    {
        return WriteAsync(context, status, Encoding.UTF8.GetBytes(body.ToJsonString()));
    }

    private static Task WriteAsync(HttpContext context, int status, ReadOnlyMemory<byte> body)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = ResponseContentType(context.Request);
        if (HttpMethods.IsHead(context.Request.Method))
        {
            context.Response.ContentLength = 0;
            return Task.CompletedTask;
        }

        context.Response.ContentLength = body.Length;
        return context.Response.Body.WriteAsync(body, context.RequestAborted).AsTask();
    }

    /// <summary>Answers in the vendor media type when the client asked for it, as Elasticsearch does.</summary>
    private static string ResponseContentType(HttpRequest request) =>
        request.Headers.Accept.ToString().Contains("vnd.elasticsearch+json", StringComparison.OrdinalIgnoreCase)
            ? CompatibleJson
            : "application/json";

    /// <summary>Elasticsearch 9 accepts compatible-with=8 or 9 and refuses any other version with a 400.</summary>
    private static JsonObject? CheckCompatibility(HttpRequest request)
    {
        foreach (var header in new[] { request.Headers.Accept.ToString(), request.ContentType ?? "" })
        {
            var match = CompatibleWith().Match(header);
            if (match.Success && match.Groups[1].Value is not ("8" or "9"))
            {
                return EsResponses.Error(400, "media_type_header_exception",
                    $"Invalid media-type value on headers [Accept, Content-Type]: compatible-with={match.Groups[1].Value} is not supported, only 8 and 9 are");
            }
        }

        return null;
    }

    /// <summary>Splits the raw request target so that an id holding an encoded '/' stays one segment.</summary>
    private static (string[] Segments, IQueryCollection Query) ParseTarget(HttpContext context)
    {
        var raw = context.Features.Get<IHttpRequestFeature>()?.RawTarget ?? context.Request.Path.Value ?? "/";
        var queryStart = raw.IndexOf('?', StringComparison.Ordinal);
        var path = queryStart >= 0 ? raw[..queryStart] : raw;
        var segments = path.Split('/', StringSplitOptions.RemoveEmptyEntries).Select(Uri.UnescapeDataString).ToArray();
        return (segments, context.Request.Query);
    }

    [GeneratedRegex(@"compatible-with\s*=\s*(\d+)", RegexOptions.IgnoreCase)]
    private static partial Regex CompatibleWith();

    /// <summary>
    /// The per-request lists and response buffer of a bulk call, reused: for 5000-item bulks each is a large-object-heap
    /// allocation, and that churn would set off full collections over every stored document.
    /// </summary>
    private sealed class BulkScratch
    {
        public List<BulkOperation> Operations { get; } = [];

        public List<ItemResult> Results { get; } = [];

        public ArrayBufferWriter<byte> Response { get; } = new(1 << 16);

        public void Clear()
        {
            Operations.Clear();
            Results.Clear();
            Response.ResetWrittenCount();
        }
    }

    /// <summary>One bulk item; <see cref="Version"/> and <see cref="VersionType"/> are the action line's <c>version</c> / <c>version_type</c>.</summary>
    private readonly record struct BulkOperation(string Action, string Index, string Id, ReadOnlyMemory<byte> Source, bool HasSource,
        long? Version = null, string? VersionType = null);

    private readonly record struct ItemResult(int Status, string? Result, long Version, long SeqNo, string? ErrorType, string? ErrorReason, string? IndexUuid, string? ConcreteIndex = null);

    /// <summary>Elasticsearch's validation message for every <c>_id</c> over 512 UTF-8 bytes, or null.</summary>
    private static string? OverlongIds(List<BulkOperation> operations)
    {
        var errors = new StringBuilder();
        var n = 0;
        foreach (var op in operations)
        {
            var bytes = Encoding.UTF8.GetByteCount(op.Id);
            if (bytes > 512)
            {
                errors.Append(CultureInfo.InvariantCulture, $"{++n}: id [{op.Id}] is too long, must be no longer than 512 bytes but was: {bytes};");
            }
        }

        return n == 0 ? null : "Validation Failed: " + errors;
    }

    private sealed class BulkFormatException(string message) : Exception(message);
}
