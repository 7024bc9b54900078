// Test cases of pipeline-by-rows.csx: 1 partition under 1M rows, 2 above, 4 above 10M.
// Run them with `etlfunnel hooks test --hooks hooks`; FakeDatabaseEngine stands in for the table's stats.
#load "pipeline-by-rows.csx"

void TestSmallTableStaysWhole()
{
    var tunes = GetPipelineOrchestration(Props.Pipeline().Entity("public.small", rows: 10_000).Build());

    Check.Replicas(1, tunes, "public.small");
}

void TestBigTablesAreSplitByRows()
{
    var props = Props.Pipeline(Machines.With(cores: 8))
        .Entity("sales.orders", rows: 2_000_000)
        .Entity("sales.events", rows: 20_000_000)
        .Build();

    var tunes = GetPipelineOrchestration(props);

    Check.Replicas(2, tunes, "sales.orders");
    Check.Replicas(4, tunes, "sales.events");
}

void TestStatsAreAskedOncePerTable()
{
    var engine = FakeDatabaseEngine.Table(rows: 5_000_000);
    GetPipelineOrchestration(Props.Pipeline().Entity("sales.orders", engine).Build());

    Check.Equal(1, engine.StatsCalls);
}
