using EtlFunnel.Destinations;
using EtlFunnel.Orchestration.Config;
using EtlFunnel.Orchestration.Plans;
using EtlFunnel.Sync;

namespace EtlFunnel.Runtime.Jobs;

/// <summary>
/// Maps an <see cref="ExecutionPlan"/> onto the sync engine's <see cref="SyncJob"/>. The plan never holds passwords, so every
/// flow replica is joined to its configured flow (<see cref="FlowReplicaPlan.Parent"/>) for the connection string and destination.
/// </summary>
internal static class SyncJobBuilder
{
    /// <summary>Builds the job for the flow replicas of <paramref name="plan"/> accepted by <paramref name="includeFlow"/> (all when null).</summary>
    public static SyncJob Build(
        ExecutionPlan plan,
        EtlConfig config,
        SyncOptions options,
        Func<string, string?> environment,
        Func<string, bool>? includeFlow = null)
    {
        // ETLFUNNEL_ELASTICSEARCH_URL is already in the config (DestinationOverride, applied before discovery).
        var flowsByName = config.Flows.ToDictionary(f => f.Name, StringComparer.Ordinal);
        var flows = new List<SyncFlow>();
        foreach (var replica in plan.Flows)
        {
            if (includeFlow is not null && !includeFlow(replica.Parent))
            {
                continue;
            }

            if (!flowsByName.TryGetValue(replica.Parent, out var flow))
            {
                throw new InvalidOperationException($"The plan's flow replica '{replica.Name}' names flow '{replica.Parent}', which is not in {config.File}; re-plan with this config.");
            }

            // The plan's partitions are already absolute shares of each table (the flow replica's share split further).
            flows.Add(new SyncFlow
            {
                Name = replica.Name,
                ConfiguredFlow = replica.Parent,
                SourceConnectionString = flow.SourceConnectionString,
                Destination = Destination(flow.Destination),
                Pipelines = [.. replica.Pipelines.Select(p => Pipeline(p))],
                // All replicas of a flow share its slot (named after the configured flow, not the replica).
                Cdc = CdcSettings(flow),
            });
        }

        return new SyncJob { Flows = flows, Options = options };
    }

    /// <summary>A flow's slot, publication and TRUNCATE policy: from <c>mode: cdc</c>, else the defaults (<c>etlfunnel_&lt;flow&gt;</c>, stop).</summary>
    public static EtlFunnel.Sync.Cdc.CdcFlowSettings CdcSettings(FlowConfig flow) => flow.Cdc is { } cdc
        ? new EtlFunnel.Sync.Cdc.CdcFlowSettings(cdc.Slot, cdc.Publication)
        {
            Truncate = cdc.TruncateDeletesAll ? EtlFunnel.Sync.Cdc.CdcTruncatePolicy.DeleteAll : EtlFunnel.Sync.Cdc.CdcTruncatePolicy.Stop,
            ConfiguredAt = $"flow '{flow.Name}' at {cdc.Location}",
        }
        : new EtlFunnel.Sync.Cdc.CdcFlowSettings(ConfigLoader.DefaultCdcName(flow.Name), ConfigLoader.DefaultCdcName(flow.Name)) { ConfiguredAt = $"flow '{flow.Name}' at {flow.Location}" };

    /// <summary>The document count a flow replica's pipelines were planned with (table rows split by partition), for progress and ETA.</summary>
    public static long EstimatedRows(PipelineReplicaPlan pipeline)
    {
        var share = (double)(pipeline.Partition.End.Numerator * pipeline.Partition.Start.Denominator - pipeline.Partition.Start.Numerator * pipeline.Partition.End.Denominator)
            / (pipeline.Partition.End.Denominator * (double)pipeline.Partition.Start.Denominator);
        return (long)Math.Round(Math.Max(0, pipeline.Stats.Rows) * share);
    }

    private static SyncDestination Destination(DestinationConfig destination) => destination.Kind switch
    {
        DestinationKind.Files => new FilesDestination(destination.Target),
        _ => ElasticsearchDestinations.From(destination),
    };

    private static SyncPipeline Pipeline(PipelineReplicaPlan pipeline)
    {
        return new SyncPipeline
        {
            ReplicaName = pipeline.Name,
            Schema = pipeline.Table.Schema,
            Table = pipeline.Table.Name,
            KeyColumns = pipeline.Key,
            IndexName = pipeline.Index,
            IncrementalColumn = pipeline.Incremental,
            IncrementalTimeMargin = pipeline.IncrementalMargin?.Time,
            IncrementalNumericMargin = pipeline.IncrementalMargin?.Amount,
            Partition = Range(pipeline.Partition),
            Props = PlanProps.ToValues(pipeline.Props),
        };
    }

    /// <summary>The plan's [start, end) fractions as the engine's range, over their common denominator.</summary>
    public static PartitionRange Range(PlanPartition partition)
    {
        var (start, end) = (partition.Start, partition.End);
        var denominator = checked(start.Denominator / Gcd(start.Denominator, end.Denominator) * end.Denominator);
        return new PartitionRange(
            checked(start.Numerator * (denominator / start.Denominator)),
            checked(end.Numerator * (denominator / end.Denominator)),
            denominator);
    }

    private static long Gcd(long a, long b)
    {
        while (b != 0)
        {
            (a, b) = (b, a % b);
        }

        return a;
    }
}
