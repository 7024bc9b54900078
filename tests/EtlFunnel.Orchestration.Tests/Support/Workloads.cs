using System.Collections.Immutable;
using EtlFunnel.Execution.Models;
using EtlFunnel.Orchestration.Config;
using EtlFunnel.Orchestration.Discovery;

namespace EtlFunnel.Orchestration.Tests.Support;

/// <summary>A fixed-stats engine for planner-logic tests that need no database (discovery tests use the real server).</summary>
internal sealed class FixedStatsEngine : IDatabaseEngine
{
    private readonly TableStats _stats;

    public FixedStatsEngine(TableStats stats) => _stats = stats;

    public string Kind => "postgres";

    public string Name => "fixed";

    public TableStats GetTableStats() => _stats;

    public Task<TableStats> GetTableStatsAsync(CancellationToken cancellationToken = default) => Task.FromResult(_stats);

    public ConnectionStats MeasureConnection() => new() { RoundTripLatency = TimeSpan.FromMilliseconds(1) };

    public Task<ConnectionStats> MeasureConnectionAsync(CancellationToken cancellationToken = default) => Task.FromResult(MeasureConnection());
}

internal static class Workloads
{
    public static MachineInfo Machine(int cores = 4, string region = "TEST") => new() { LogicalCores = cores, TotalMemoryBytes = 8L << 30, Region = region, HostName = "test" };

    /// <summary>Flows named flow0.. each with the given tables (name, rows).</summary>
    public static ImmutableArray<FlowEntity> Flows(int flowCount, params (string Table, long Rows)[] tables) =>
        [.. Enumerable.Range(0, flowCount).Select(f => Flow($"flow{f}", tables))];

    public static FlowEntity Flow(string name, params (string Table, long Rows)[] tables)
    {
        var pipelines = tables.Select(t =>
        {
            var parts = t.Table.Split('.');
            var info = new TableInfo { Schema = parts[0], Name = parts[1], Rows = t.Rows, Bytes = t.Rows * 100, PrimaryKey = ["id"] };
            return new PipelineEntity
            {
                Entity = new OrchestratorEntityDef
                {
                    Name = t.Table,
                    SourceDBConn = new FixedStatsEngine(new TableStats { TotalRows = t.Rows, TotalBytes = t.Rows * 100, TableCount = 1 }),
                    DestDBConn = new FixedStatsEngine(new TableStats()),
                },
                Table = info,
                Index = $"{parts[0]}_{parts[1]}",
                Key = ["id"],
            };
        }).ToImmutableArray();
        return new FlowEntity
        {
            Entity = new OrchestratorEntityDef
            {
                Name = name,
                SourceDBConn = new FixedStatsEngine(new TableStats { TotalRows = tables.Sum(t => t.Rows), TableCount = tables.Length }),
                DestDBConn = new FixedStatsEngine(new TableStats()),
            },
            SourceName = "test:5432/db",
            Destination = new DestinationConfig(DestinationKind.Files, "/tmp/out", new ConfigLocation("flows.yaml", 1, 1)),
            Pipelines = pipelines,
        };
    }
}
