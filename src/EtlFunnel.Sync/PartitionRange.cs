using System.Globalization;

namespace EtlFunnel.Sync;

/// <summary>
/// A replica's share of a table: the half-open interval [Start, End) of the unit interval, as exact fractions.
/// The engine maps a fraction f to heap block floor(f × B), B being the table's block count inside the run's snapshot,
/// so equal fractions give equal block boundaries and sibling ranges are disjoint and cover the table.
/// </summary>
public readonly record struct PartitionRange
{
    /// <summary>Creates [start/denominator, end/denominator).</summary>
    public PartitionRange(long startNumerator, long endNumerator, long denominator)
    {
        if (denominator <= 0 || startNumerator < 0 || endNumerator > denominator || startNumerator > endNumerator)
        {
            throw new ArgumentException(
                $"A partition range needs 0 <= start <= end <= denominator and denominator > 0; got [{startNumerator}/{denominator}, {endNumerator}/{denominator}).");
        }

        StartNumerator = startNumerator;
        EndNumerator = endNumerator;
        Denominator = denominator;
    }

    /// <summary>The whole table, [0, 1).</summary>
    public static PartitionRange Whole { get; } = new(0, 1, 1);

    /// <summary>Numerator of the start fraction.</summary>
    public long StartNumerator { get; }

    /// <summary>Numerator of the end fraction.</summary>
    public long EndNumerator { get; }

    /// <summary>Common denominator of both fractions.</summary>
    public long Denominator { get; }

    /// <summary>True when the range ends at 1, so it also covers blocks added after the block count was taken.</summary>
    public bool IsOpenEnded => EndNumerator == Denominator;

    /// <summary>Replica <paramref name="replicaId"/> of <paramref name="totalReplicas"/> equal shares of the whole table.</summary>
    public static PartitionRange ForReplica(int replicaId, int totalReplicas) => Whole.Split(replicaId, totalReplicas);

    /// <summary>Share <paramref name="replicaId"/> of <paramref name="totalReplicas"/> equal shares of this range (a pipeline replica under a flow replica).</summary>
    public PartitionRange Split(int replicaId, int totalReplicas)
    {
        if (totalReplicas <= 0 || replicaId < 0 || replicaId >= totalReplicas)
        {
            throw new ArgumentOutOfRangeException(nameof(replicaId), $"replica_id {replicaId} is outside 0..total_replicas-1 (total_replicas = {totalReplicas}).");
        }

        var width = EndNumerator - StartNumerator;
        return new PartitionRange(
            checked((StartNumerator * totalReplicas) + (width * replicaId)),
            checked((StartNumerator * totalReplicas) + (width * (replicaId + 1))),
            checked(Denominator * totalReplicas));
    }

    /// <summary>The first block of this range in a relation of <paramref name="blocks"/> blocks: floor(start × blocks).</summary>
    internal long StartBlock(long blocks) => (long)((Int128)StartNumerator * blocks / Denominator);

    /// <summary>The block where this range stops (exclusive), or null when it is open-ended.</summary>
    internal long? EndBlock(long blocks) => IsOpenEnded ? null : (long)((Int128)EndNumerator * blocks / Denominator);

    /// <inheritdoc />
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"[{StartNumerator}/{Denominator}, {EndNumerator}/{Denominator})");
}
