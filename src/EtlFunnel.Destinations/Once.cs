namespace EtlFunnel.Destinations;

/// <summary>
/// Computes a value once, the first time someone asks, and serves it to everyone after; a failed or cancelled
/// attempt is not cached, so the next caller tries again. Catalog snapshots and latency probes are shared this way
/// across every entity (and every hook call) of a plan.
/// </summary>
internal sealed class Once<T>
    where T : class
{
    private readonly Func<CancellationToken, Task<T>> _factory;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private T? _value;

    public Once(Func<CancellationToken, Task<T>> factory) => _factory = factory;

    public async Task<T> GetAsync(CancellationToken cancellationToken)
    {
        if (_value is { } ready)
        {
            return ready;
        }

        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return _value ??= await _factory(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }
}
