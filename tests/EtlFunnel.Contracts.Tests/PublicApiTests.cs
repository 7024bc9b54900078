using System.Runtime.CompilerServices;
using EtlFunnel.Execution.Models;
using PublicApiGenerator;

namespace EtlFunnel.Contracts.Tests;

/// <summary>
/// Users' hooks compile against the contract assembly, so its public API is frozen here. A change to
/// <c>PublicApi.approved.txt</c> is a breaking change for every hook in the field: make it on purpose.
/// To accept an intended change, copy <c>PublicApi.received.txt</c> over the approved file.
/// </summary>
public sealed class PublicApiTests
{
    [Fact]
    public void Contract_public_api_is_unchanged()
    {
        var api = typeof(OrchestratorTune).Assembly.GeneratePublicApi(new ApiGeneratorOptions
        {
            ExcludeAttributes = ["System.Runtime.Versioning.TargetFrameworkAttribute", "System.Reflection.AssemblyMetadataAttribute"],
        }).ReplaceLineEndings("\n");

        var approvedPath = Path.Combine(SourceDirectory(), "PublicApi.approved.txt");
        var receivedPath = Path.Combine(SourceDirectory(), "PublicApi.received.txt");
        var approved = File.Exists(approvedPath) ? File.ReadAllText(approvedPath).ReplaceLineEndings("\n") : "";
        if (approved != api)
        {
            File.WriteAllText(receivedPath, api);
        }

        api.Should().Be(approved, "the contract is frozen; if this change is intended, copy {0} over {1}", receivedPath, approvedPath);
    }

    [Fact]
    public void Contract_assembly_references_nothing_but_the_runtime()
    {
        var references = typeof(OrchestratorTune).Assembly.GetReferencedAssemblies().Select(a => a.Name).ToList();
        references.Should().OnlyContain(n => n == "System.Runtime" || n == "System.Collections" || n == "netstandard",
            "hooks compile against the contract alone; it must not drag other assemblies into their load context");
    }

    [Fact]
    public void Contract_types_live_in_the_seed_namespace()
    {
        typeof(OrchestratorTune).Assembly.GetExportedTypes().Select(t => t.Namespace).Distinct()
            .Should().Equal("EtlFunnel.Execution.Models");
    }

    [Fact]
    public void A_tune_ports_line_by_line_from_the_seed()
    {
        var entity = "catalog";
        var numThreads = 3;
        var replicas = new List<OrchestratorTune>();
        for (var i = 0; i < numThreads; i++)
        {
            replicas.Add(new OrchestratorTune
            {
                ParentEntityName = entity,
                NewEntityName = $"{entity}_core_{i}",
                ReplicaProps = new Dictionary<string, object?> { [ReplicaPropKeys.ReplicaId] = i, [ReplicaPropKeys.TotalReplicas] = numThreads },
            });
        }

        replicas.Select(r => r.NewEntityName).Should().Equal("catalog_core_0", "catalog_core_1", "catalog_core_2");
        replicas[2].ReplicaProps["replica_id"].Should().Be(2);
    }

    private static string SourceDirectory([CallerFilePath] string path = "") => Path.GetDirectoryName(path)!;
}
