using EtlFunnel.Testing.Postgres;

namespace EtlFunnel.Orchestration.Tests.Support;

/// <summary>One database per test process loaded with samples/quickstart/schema.sql (a few seconds), shared by the tests that only read it.</summary>
public sealed class QuickstartDatabase : IAsyncLifetime
{
    public string ConnectionString { get; private set; } = "";

    public async Task InitializeAsync()
    {
        var server = await PostgresServer.GetAsync();
        ConnectionString = await server.CreateDatabaseAsync("quickstart");
        await PostgresServer.ExecuteAsync(ConnectionString, await File.ReadAllTextAsync(Repo.Path("samples", "quickstart", "schema.sql")));
    }

    public Task DisposeAsync() => Task.CompletedTask;
}

[CollectionDefinition(Name)]
public sealed class QuickstartCollection : ICollectionFixture<QuickstartDatabase>
{
    public const string Name = "quickstart database";
}
