namespace EtlFunnel.Scripting.Loading;

/// <summary>
/// One loaded version of one hook file (a script or a plugin folder). Counts calls in flight so that a version
/// replaced by a reload is unloaded only after its last call has finished.
/// </summary>
internal abstract class HookFileVersion
{
    private int inFlight;
    private int retired;
    private int unloaded;

    protected HookFileVersion(string sourcePath, string key)
    {
        SourcePath = sourcePath;
        Key = key;
    }

    public string SourcePath { get; }

    public string Key { get; }

    public abstract IReadOnlyList<IOrchestrationHook> Hooks { get; }

    /// <summary>The data-plane transformers this version declares (scripts only, for now).</summary>
    public virtual IReadOnlyList<Transforming.TransformerHook> Transformers => [];

    /// <summary>The batch-level hooks (write rule, termination, checkpoint, backlog) this version declares (scripts only).</summary>
    public virtual IReadOnlyList<Batching.BatchHook> BatchHooks => [];

    /// <summary>True once the version was replaced and its last call finished (its context is then unloaded).</summary>
    public bool IsUnloaded => Volatile.Read(ref unloaded) == 1;

    public void Enter() => Interlocked.Increment(ref inFlight);

    public void Exit()
    {
        if (Interlocked.Decrement(ref inFlight) == 0 && Volatile.Read(ref retired) == 1)
        {
            UnloadOnce();
        }
    }

    public void Retire()
    {
        Volatile.Write(ref retired, 1);
        if (Volatile.Read(ref inFlight) == 0)
        {
            UnloadOnce();
        }
    }

    protected abstract void Unload();

    private void UnloadOnce()
    {
        if (Interlocked.Exchange(ref unloaded, 1) == 0)
        {
            // Not inline: the last call's completion may run this on the hook's own stack and execution context.
            ThreadPool.UnsafeQueueUserWorkItem(static version => version.Unload(), this, preferLocal: false);
        }
    }
}
