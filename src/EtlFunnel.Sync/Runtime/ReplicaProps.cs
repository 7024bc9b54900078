using System.Text.Json;
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
        props = props.Values.Any(v => v is JsonElement) ? props.ToDictionary(p => p.Key, p => Clr(p.Value), StringComparer.Ordinal) : props;
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

    // Callers of the engine API may hand JSON values; they read as the plan's props do (Orchestration's PlanProps.ToValues).
    private static object? Clr(object? value) => value is not JsonElement e ? value : e.ValueKind switch
    {
        JsonValueKind.Number when e.TryGetInt64(out var l) => l,
        JsonValueKind.Number => e.GetDouble(),
        JsonValueKind.String => e.GetString(),
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.Null => null,
        _ => e.GetRawText(),
    };
}
