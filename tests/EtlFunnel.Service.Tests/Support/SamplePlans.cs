using System.Text.Json.Nodes;

namespace EtlFunnel.Service.Tests.Support;

/// <summary>Plans in the shape <c>etlfunnel plan --format json</c> prints.</summary>
internal static class SamplePlans
{
    public static JsonObject Plan(params (string Flow, int Replicas, string[] Tables)[] flows)
    {
        var flowArray = new JsonArray();
        foreach (var (flow, replicas, tables) in flows)
        {
            for (var r = 0; r < replicas; r++)
            {
                var name = replicas == 1 ? flow : $"{flow}#{r}";
                var pipelines = new JsonArray();
                foreach (var table in tables)
                {
                    pipelines.Add(new JsonObject
                    {
                        ["name"] = $"{name}/{table}",
                        ["parent"] = table,
                        ["table"] = $"public.{table}",
                        ["index"] = $"{table}-idx",
                        ["replicaId"] = 0,
                        ["totalReplicas"] = 1,
                        ["props"] = new JsonObject { ["batch_size"] = 500 },
                        ["partition"] = new JsonObject { ["start"] = "0/1", ["end"] = "1/1", ["index"] = 0, ["count"] = 1 },
                    });
                }

                flowArray.Add(new JsonObject
                {
                    ["name"] = name,
                    ["parent"] = flow,
                    ["replicaId"] = r,
                    ["totalReplicas"] = replicas,
                    ["props"] = new JsonObject { ["replica_id"] = r, ["total_replicas"] = replicas },
                    ["pipelines"] = pipelines,
                });
            }
        }

        return new JsonObject
        {
            ["machine"] = new JsonObject { ["region"] = "eu", ["cores"] = 8, ["memoryBytes"] = 34359738368L },
            ["flows"] = flowArray,
        };
    }
}
