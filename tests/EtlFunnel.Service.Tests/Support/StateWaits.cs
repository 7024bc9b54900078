using EtlFunnel.Service;

namespace EtlFunnel.Service.Tests.Support;

internal static class StateWaits
{
    // A guard against a hung test, never an assertion about speed.
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(30);

    /// <summary>Completes once <paramref name="condition"/> holds for the state (checked now and on every change).</summary>
    public static async Task<ServiceSnapshot> WaitUntilAsync(this ServiceState state, Func<ServiceSnapshot, bool> condition, string what)
    {
        var done = new TaskCompletionSource<ServiceSnapshot>(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnChanged(ServiceSnapshot s)
        {
            if (condition(s))
            {
                done.TrySetResult(s);
            }
        }

        state.Changed += OnChanged;
        try
        {
            OnChanged(state.Snapshot);
            return await done.Task.WaitAsync(Guard);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"Gave up after {Guard.TotalSeconds}s waiting for: {what}");
        }
        finally
        {
            state.Changed -= OnChanged;
        }
    }

    /// <summary>Awaits a signal a test delegate sets, with the same guard.</summary>
    public static async Task<T> Within<T>(this Task<T> task, string what)
    {
        try
        {
            return await task.WaitAsync(Guard);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"Gave up after {Guard.TotalSeconds}s waiting for: {what}");
        }
    }

    /// <summary>Awaits a signal a test delegate sets, with the same guard.</summary>
    public static async Task Within(this Task task, string what)
    {
        try
        {
            await task.WaitAsync(Guard);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"Gave up after {Guard.TotalSeconds}s waiting for: {what}");
        }
    }
}
