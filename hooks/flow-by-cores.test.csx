// Test cases of flow-by-cores.csx (not a hook: *.test.csx files are never loaded as hooks).
// Run them with `etlfunnel hooks test --hooks hooks`; each Test... method is one case, in the hook worker.
#load "flow-by-cores.csx"

void TestOneReplicaPerCore()
{
    var props = Props.Flow(Machines.With(cores: 8, memoryGb: 32, region: "EU")).Entity("shop").Entity("crm").Build();

    var tunes = GetFlowOrchestration(props);

    Check.Replicas(8, tunes, "shop");
    Check.Replicas(8, tunes, "crm");
}

void TestReplicaPropsNumberTheReplicas()
{
    var tunes = GetFlowOrchestration(Props.Flow(Machines.With(cores: 2)).Entity("shop").Build());

    Check.Equal("shop_core_1", tunes[1].NewEntityName);
    Check.Equal((object)1, tunes[1].ReplicaProps["replica_id"]);
    Check.Equal((object)2, tunes[1].ReplicaProps["total_replicas"]);
}
