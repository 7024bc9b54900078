using EtlFunnel.Execution.Models;

namespace EtlFunnel.Scripting.Tests.Support;

internal static class Props
{
    public static OrchestratorEntityDef Entity(string name, long rows = 0) => new()
    {
        Name = name,
        SourceDBConn = new StaticDatabaseEngine(new TableStats { TotalRows = rows, TableCount = 1 }),
        DestDBConn = new StaticDatabaseEngine(new TableStats()),
    };

    public static OrchestratorProps Of(int cores, params OrchestratorEntityDef[] entities) => new()
    {
        Entity = entities,
        Machine = new MachineInfo { LogicalCores = cores, TotalMemoryBytes = 8L << 30, Region = "EU" },
    };
}
