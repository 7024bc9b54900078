namespace EtlFunnel.Testing.Elasticsearch;

/// <summary>One request the test server answered: method, path (with query), status (0 when the connection was dropped) and the request's content encoding and type.</summary>
public sealed record RecordedRequest(string Method, string Path, int Status, string? ContentEncoding, string? ContentType)
{
    /// <summary>The request's <c>Authorization</c> header as sent (e.g. <c>ApiKey ...</c>, <c>Basic ...</c>), or null.</summary>
    public string? Authorization { get; init; }
}
