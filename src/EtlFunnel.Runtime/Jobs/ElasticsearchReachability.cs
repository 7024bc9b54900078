using System.Net.Sockets;
using EtlFunnel.Destinations;
using EtlFunnel.Orchestration.Config;

namespace EtlFunnel.Runtime.Jobs;

/// <summary>Before a run writes anything: every Elasticsearch destination answers, else a <see cref="ConfigException"/> at its config line.</summary>
internal static class ElasticsearchReachability
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    /// <summary>Pings each distinct Elasticsearch destination of the flows <paramref name="includeFlow"/> accepts (through the shared client).</summary>
    public static async Task CheckAsync(EtlConfig config, Func<string, bool> includeFlow, CancellationToken cancellationToken)
    {
        var seen = new HashSet<ElasticsearchDestination>();
        foreach (var flow in config.Flows.Where(f => f.Destination.Kind == DestinationKind.Elasticsearch && includeFlow(f.Name)))
        {
            var destination = ElasticsearchDestinations.From(flow.Destination);
            if (!seen.Add(destination))
            {
                continue;
            }

            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(Timeout);
            string? reason;
            try
            {
                var response = await ElasticsearchClients.For(destination).PingAsync(timeout.Token).ConfigureAwait(false);
                reason = response.ApiCallDetails.HttpStatusCode is null ? Reason(response.ApiCallDetails.OriginalException) : null;
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                reason = $"no answer within {Timeout.TotalSeconds:0}s";
            }

            if (reason is not null)
            {
                throw new ConfigException(flow.Destination.Location,
                    $"cannot reach Elasticsearch at {destination.Uri.GetLeftPart(UriPartial.Authority)} ({reason}); check destination.elasticsearch or {DestinationOverride.Variable}");
            }
        }
    }

    /// <summary>The innermost cause in words (<c>connection refused</c>, a DNS or TLS failure), without exception type names.</summary>
    private static string Reason(Exception? exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is SocketException socket)
            {
                return socket.SocketErrorCode switch
                {
                    SocketError.ConnectionRefused => "connection refused",
                    SocketError.HostNotFound or SocketError.NoData => "host not found",
                    SocketError.TimedOut => "connection timed out",
                    _ => socket.Message.ToLowerInvariant(),
                };
            }

            if (e is System.Security.Authentication.AuthenticationException tls)
            {
                return "TLS handshake failed: " + tls.Message.TrimEnd('.') + "; check ca_file or fingerprint";
            }
        }

        var innermost = exception;
        while (innermost?.InnerException is not null)
        {
            innermost = innermost.InnerException;
        }

        return innermost?.Message.TrimEnd('.') ?? "no response";
    }
}
