using Elastic.Clients.Elasticsearch;
using Elastic.Clients.Elasticsearch.IndexManagement;
using Microsoft.Extensions.Logging;

namespace EtlFunnel.Destinations;

/// <summary>
/// Full runs into Elasticsearch write each index into a physical index of their own, named after the run, and point the alias
/// (the configured index name) at it in one atomic <c>POST /_aliases</c> when every replica succeeded; so documents of rows
/// deleted since the previous full run are gone with the previous physical index, and readers never see a partial index.
/// </summary>
internal static class ElasticsearchAliases
{
    /// <summary>The physical index of <paramref name="index"/> for run <paramref name="runId"/>; the same on every resume of the run.</summary>
    public static string PhysicalIndex(string index, string runId) => index + "-" + runId.ToLowerInvariant();

    /// <summary>
    /// Creates the run's physical index unless it exists (a resumed run), with the mappings of the index that
    /// <paramref name="alias"/> names now (the alias's index, or a concrete index of that name), so mappings created by hand
    /// carry over from run to run. Settings are not copied: put them in an index template for <c>&lt;index&gt;-*</c>.
    /// </summary>
    public static async Task EnsurePhysicalIndexAsync(ElasticsearchClient client, string alias, string physical, CancellationToken ct)
    {
        if ((await client.Indices.ExistsAsync(physical, ct).ConfigureAwait(false)).Exists)
        {
            return;
        }

        Elastic.Clients.Elasticsearch.Mapping.TypeMapping? mappings = null;
        var current = await client.Indices.GetMappingAsync(new GetMappingRequest(Indices.Parse(alias)), ct).ConfigureAwait(false);
        if (current.IsValidResponse && current.Mappings is { Count: 1 } found)
        {
            mappings = found.Values.Single().Mappings;
        }
        else if (current.ApiCallDetails.HttpStatusCode != 404)
        {
            throw new InvalidOperationException(
                $"Could not read the mappings of Elasticsearch index '{alias}': {current.ElasticsearchServerError?.Error?.Reason ?? current.ApiCallDetails.OriginalException?.Message ?? "unknown error"}.");
        }

        var created = await client.Indices.CreateAsync(new CreateIndexRequest(physical) { Mappings = mappings }, ct).ConfigureAwait(false);
        if (!created.IsValidResponse && created.ElasticsearchServerError?.Error?.Type != "resource_already_exists_exception")
        {
            throw new InvalidOperationException(
                $"Could not create Elasticsearch index '{physical}' (behind alias '{alias}'): {created.ElasticsearchServerError?.Error?.Reason ?? created.ApiCallDetails.OriginalException?.Message ?? "unknown error"}.");
        }
    }

    /// <summary>
    /// Points alias <paramref name="alias"/> at <paramref name="physical"/> only, in one request: removes it from the indices it
    /// pointed at and removes a concrete index named <paramref name="alias"/> (left by versions that wrote it directly); then
    /// deletes the indices the alias left. Throws when Elasticsearch refuses the swap (the alias is then unchanged).
    /// </summary>
    public static async Task SwapAsync(ElasticsearchClient client, string alias, string physical, ILogger log, CancellationToken ct)
    {
        var (previous, concrete) = await CurrentAsync(client, alias, ct).ConfigureAwait(false);
        var actions = new List<IndexUpdateAliasesAction>();
        foreach (var old in previous.Where(p => p != physical))
        {
            actions.Add(new IndexUpdateAliasesAction { Remove = new RemoveAction { Index = old, Alias = alias } });
        }

        if (concrete)
        {
            actions.Add(new IndexUpdateAliasesAction { RemoveIndex = new RemoveIndexAction { Index = alias } });
        }

        actions.Add(new IndexUpdateAliasesAction { Add = new AddAction { Index = physical, Alias = alias } });
        var response = await client.Indices.UpdateAliasesAsync(new UpdateAliasesRequest { Actions = actions }, ct).ConfigureAwait(false);
        if (!response.IsValidResponse)
        {
            throw new InvalidOperationException(
                $"Elasticsearch refused to point alias '{alias}' at '{physical}' (HTTP {response.ApiCallDetails.HttpStatusCode?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none"}): " +
                $"{response.ElasticsearchServerError?.Error?.Type}: {response.ElasticsearchServerError?.Error?.Reason ?? response.ApiCallDetails.OriginalException?.Message ?? "unknown error"}. " +
                $"Readers still see the previous index; rerun the job to retry the swap (the run resumes and writes nothing again).");
        }

        log.LogInformation("Alias {Alias} now points at {Index}{Migrated}", alias, physical, concrete ? $" (the concrete index {alias} of an earlier version was removed)" : "");
        foreach (var old in previous.Where(p => p != physical))
        {
            var deleted = await client.Indices.DeleteAsync(old, ct).ConfigureAwait(false);
            if (deleted.IsValidResponse)
            {
                log.LogInformation("Deleted {Index}, the previous index behind alias {Alias}", old, alias);
            }
            else
            {
                log.LogWarning("Could not delete {Index}, the previous index behind alias {Alias}: {Error}; delete it by hand", old, alias,
                    deleted.ElasticsearchServerError?.Error?.Reason ?? deleted.ApiCallDetails.OriginalException?.Message);
            }
        }
    }

    /// <summary>The indices alias <paramref name="alias"/> points at, and whether a concrete index of that name exists.</summary>
    private static async Task<(List<string> Indices, bool Concrete)> CurrentAsync(ElasticsearchClient client, string alias, CancellationToken ct)
    {
        // GET /{alias}/_alias answers for the concrete index of that name, or for the indices behind the alias of that name.
        var response = await client.Indices.GetAliasAsync(new GetAliasRequest(Indices.Parse(alias)), ct).ConfigureAwait(false);
        if (response.ApiCallDetails.HttpStatusCode == 404)
        {
            return ([], false);
        }

        if (!response.IsValidResponse)
        {
            throw new InvalidOperationException(
                $"Could not read alias '{alias}' from Elasticsearch: {response.ElasticsearchServerError?.Error?.Reason ?? response.ApiCallDetails.OriginalException?.Message ?? "unknown error"}.");
        }

        var indices = new List<string>();
        var concrete = false;
        foreach (var (index, aliases) in response.Aliases ?? new Dictionary<string, IndexAliases>())
        {
            if (index == alias)
            {
                concrete = true;
            }
            else if (aliases.Aliases?.ContainsKey(alias) == true)
            {
                indices.Add(index);
            }
        }

        return (indices, concrete);
    }
}
