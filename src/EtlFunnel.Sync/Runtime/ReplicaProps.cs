using EtlFunnel.Execution.Models;

namespace EtlFunnel.Sync.Runtime;

/// <summary>The batching knobs a plan can set per replica (see <see cref="ReplicaPropKeys"/>), read by <see cref="ReplicaPropValues"/> as the planner validates them.</summary>
internal sealed record ReplicaProps(int BatchSize, int BatchBytes, int MaxInFlight)
{
    public const int DefaultBatchSize = 5000;
    public const int DefaultBatchBytes = 5 * 1024 * 1024;
    public const int DefaultMaxInFlight = 2;

    // fetch_size is read only to refuse a bad value the way the planner does: binary COPY streams, so it has no use.
    private const int DefaultFetchSize = 10000;

    public static ReplicaProps From(IReadOnlyDictionary<string, object?> props, string replica)
    {
        try
        {
            _ = ReplicaPropValues.PositiveInt(props, ReplicaPropKeys.FetchSize, DefaultFetchSize);
            return new(
                ReplicaPropValues.PositiveInt(props, ReplicaPropKeys.BatchSize, DefaultBatchSize),
                ReplicaPropValues.PositiveInt(props, ReplicaPropKeys.BatchBytes, DefaultBatchBytes),
                ReplicaPropValues.PositiveInt(props, ReplicaPropKeys.MaxInFlight, DefaultMaxInFlight));
        }
        catch (FormatException ex)
        {
            throw new SyncConfigurationException($"Replica '{replica}': {ex.Message}.", ex);
        }
    }
}
