namespace EtlFunnel.Service;

/// <summary>A member of the cluster as watch's status shows it: what it announced, whether it is alive, the replicas it owns now.</summary>
internal sealed record ClusterMemberView(string Name, string Silo, int Cores, string? Region, bool Alive, int Replicas);

/// <summary>One reading of the cluster watch hands its runs to (<c>watch --cluster</c> or <c>cluster:</c>).</summary>
/// <param name="ClusterId">The cluster's id.</param>
/// <param name="Server">The state database, as <c>host:port/db</c> (no password).</param>
/// <param name="Members">Every member alive now or still owning a replica.</param>
/// <param name="Failovers">Lease takeovers from an owner that stopped renewing, over every run of the cluster.</param>
internal sealed record ClusterView(string ClusterId, string Server, IReadOnlyList<ClusterMemberView> Members, long Failovers)
{
    /// <summary>Members alive now.</summary>
    public int AliveMembers => Members.Count(m => m.Alive);
}

/// <summary>
/// A value read on demand (the cluster's status for watch's and the worker's status endpoints): a request reads it when the
/// last reading is older than <paramref name="maxAge"/> (concurrent requests share one read), so nothing polls the state
/// database while nobody looks. A failed read keeps the last good value and says why.
/// </summary>
/// <typeparam name="T">What is read.</typeparam>
internal sealed class CachedReading<T>(Func<CancellationToken, Task<T>> read, TimeSpan maxAge, TimeProvider? time = null) : IDisposable
    where T : class
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private volatile Reading _last = new(null, "not read yet", DateTimeOffset.MinValue);

    /// <summary>A reading: the value (the last good one when the read failed), the error of the last read, when it was taken.</summary>
    public sealed record Reading(T? View, string? Error, DateTimeOffset At);

    /// <summary>The last reading, without reading again (the metrics callbacks, after <see cref="GetAsync"/>).</summary>
    public Reading Last => _last;

    /// <summary>The value as of at most <c>maxAge</c> ago.</summary>
    public async Task<Reading> GetAsync(CancellationToken cancellationToken)
    {
        if (_time.GetUtcNow() - _last.At < maxAge)
        {
            return _last;
        }

        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var now = _time.GetUtcNow();
            if (now - _last.At < maxAge)
            {
                return _last;
            }

            try
            {
                _last = new Reading(await read(cancellationToken).ConfigureAwait(false), null, now);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                throw;
            }
#pragma warning disable CA1031 // Any failure to read is shown on the page and in etlfunnel_cluster_status_up, never a 500.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                _last = _last with { Error = ex.Message, At = now };
            }

            return _last;
        }
        finally
        {
            _gate.Release();
        }
    }

    public void Dispose() => _gate.Dispose();
}
