namespace EtlFunnel.Sync.State;

/// <summary>
/// Where a run keeps its manifest and the checkpoint of every replica. A save returns only once the checkpoint is
/// durable, so a crash right after it never loses it.
/// </summary>
internal interface IStateStore : IAsyncDisposable
{
    /// <summary>Where the checkpoints are, for messages (never contains a password).</summary>
    string Description { get; }

    RunManifest? LoadManifest();

    Task SaveManifestAsync(RunManifest manifest, CancellationToken cancellationToken);

    ReplicaState? Load(string flow, string replica);

    Task SaveAsync(string flow, string replica, ReplicaState state, CancellationToken cancellationToken);
}

/// <summary>Opens the store a <see cref="SyncOptions"/> names: the PostgreSQL table when set, else the folder.</summary>
internal static class StateStores
{
    public static async Task<IStateStore> OpenAsync(SyncOptions options, CancellationToken cancellationToken) =>
        options.StateTable is { } table
            ? await PostgresStateStore.OpenAsync(table, options, cancellationToken).ConfigureAwait(false)
            : new StateStore(options.StateDirectory);
}
