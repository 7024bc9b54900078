using System.Collections.Concurrent;
using System.Diagnostics;
using EtlFunnel.Execution.Models;

namespace EtlFunnel.Scripting.Isolation;

/// <summary>
/// The host's side of the hook worker: starts it (under the strongest available <see cref="SandboxKind"/>), mirrors
/// its hooks as <see cref="RemoteHook"/>s, answers its engine questions from the real engines, kills it when a call
/// runs past its budget or loading runs past <see cref="HookHostOptions.CompileTimeout"/>, and restarts it after a
/// crash or kill. No hook code is ever loaded here.
/// </summary>
internal sealed class WorkerHooks : IOrchestrationHooks, IAsyncDisposable
{
    // After the budget the worker's own guard needs up to 2 s to stop the hook and say where; then it is killed.
    private static readonly TimeSpan KillGrace = TimeSpan.FromSeconds(3);

    private readonly HookHostOptions options;
    private readonly SemaphoreSlim startGate = new(1, 1);
    private readonly Dictionary<string, RemoteHook> byKey = new(StringComparer.Ordinal);
    private readonly object snapshotLock = new();
    private IReadOnlyList<SandboxKind> candidates;
    private WorkerConnection? connection;
    private IReadOnlyList<IOrchestrationHook> flow = [];
    private IReadOnlyList<IOrchestrationHook> pipeline = [];
    private IReadOnlyList<HookDiagnostic> diagnostics = [];
    private IReadOnlyList<Transforming.IDataTransformer> transformers = [];
    private IReadOnlyList<Batching.IBatchHook> batchHooks = [];
    private bool disposed;
    private int starts;

    private WorkerHooks(HookHostOptions options, IReadOnlyList<SandboxKind> candidates)
    {
        this.options = options;
        this.candidates = candidates;
        HooksDirectory = Path.TrimEndingDirectorySeparator(Path.GetFullPath(options.HooksDirectory));
        CacheDirectory = Path.GetFullPath(options.CacheDirectory ?? HookHostOptions.DefaultCacheDirectory);
    }

    public IReadOnlyList<IOrchestrationHook> FlowHooks => Volatile.Read(ref flow);

    public IReadOnlyList<IOrchestrationHook> PipelineHooks => Volatile.Read(ref pipeline);

    public IReadOnlyList<HookDiagnostic> Diagnostics => Volatile.Read(ref diagnostics);

    public IReadOnlyList<Transforming.IDataTransformer> Transformers => Volatile.Read(ref transformers);

    public IReadOnlyList<Batching.IBatchHook> BatchHooks => Volatile.Read(ref batchHooks);

    public string HooksDirectory { get; }

    public string CacheDirectory { get; }

    public IReadOnlyList<IsolationLayer> Layers { get; private set; } = [];

    public int Starts => Volatile.Read(ref starts);

    public int? ProcessId => connection?.ProcessId;

    public event EventHandler<HookReloadedEventArgs>? Reloaded;

    public static async Task<WorkerHooks> LoadAsync(HookHostOptions options, CancellationToken cancellationToken)
    {
        // A debugger must see the worker: no pid namespace, the runtime's diagnostic socket in the real /tmp.
        var candidates = Sandbox.Candidates(options.Isolation, options.WaitForDebugger is null ? options.ForceSandbox : SandboxKind.Plain);
        if (candidates.Count == 0)
        {
            throw new HookIsolationException(
                "hooks need a sandbox and none is available here: install bubblewrap (apt-get install bubblewrap) or util-linux's unshare; " +
                "or accept weaker isolation with 'hooks: {path: ./hooks, isolation: process}' (a plain worker process with rlimits), " +
                "or 'isolation: none' (hooks in the host process, only for hooks you trust) in flows.yaml");
        }

        var hooks = new WorkerHooks(options, candidates);
        await hooks.StartAsync(initial: true, cancellationToken).ConfigureAwait(false);
        return hooks;
    }

    /// <summary>
    /// A fresh worker on the folder: a worker's sandbox binds the folder it started on, so after the folder was removed and
    /// restored (a new directory) only a new worker sees the restored files (and watches them).
    /// </summary>
    public async Task<HookReloadedEventArgs> RestartAsync(CancellationToken cancellationToken)
    {
        if (connection is { IsAlive: true } alive)
        {
            await alive.KillAsync("the hooks folder was replaced; a new worker binds the restored one").ConfigureAwait(false);
        }

        return await ReloadAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<HookReloadedEventArgs> ReloadAsync(CancellationToken cancellationToken)
    {
        if (connection is not { IsAlive: true })
        {
            // (Re)starting loads the folder afresh, which is the reload.
            await StartAsync(initial: connection is null, cancellationToken).ConfigureAwait(false);
            var started = new HookReloadedEventArgs([], !Diagnostics.Any(d => d.Severity == "error"), Diagnostics);
            Reloaded?.Invoke(this, started);
            return started;
        }

        var worker = connection;
        HookReloadedEventArgs args;
        try
        {
            var reply = await worker.RequestAsync(new WorkerMessage { Type = "reload" }, options.CompileTimeout, cancellationToken).ConfigureAwait(false);
            args = Apply(reply.Snapshot!);
        }
        catch (WorkerTimeoutException)
        {
            await worker.KillAsync($"reloading the hooks took longer than {options.CompileTimeout.TotalSeconds:0} s (a compile-time bomb?)").ConfigureAwait(false);
            args = Failed(worker.DeathReason!);
        }
        catch (WorkerDiedException ex)
        {
            args = Failed(ex.Message);
        }

        Reloaded?.Invoke(this, args);
        return args;
    }

    public async ValueTask DisposeAsync()
    {
        if (disposed)
        {
            return;
        }

        disposed = true;
        if (connection is { } worker)
        {
            await worker.DisposeAsync().ConfigureAwait(false);
        }

        startGate.Dispose();
    }

    internal async Task<IReadOnlyList<OrchestratorTune>> InvokeAsync(RemoteHook hook, OrchestratorProps props, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(props);
        cancellationToken.ThrowIfCancellationRequested();
        var worker = await EnsureStartedAsync(cancellationToken).ConfigureAwait(false);
        var engines = new Dictionary<IDatabaseEngine, int>(ReferenceEqualityComparer.Instance);
        var message = new WorkerMessage { Type = "invoke", Hook = hook.Key, Props = Dto(props, engines) };
        var table = engines.ToDictionary(e => e.Value, e => e.Key);
        WorkerMessage reply;
        try
        {
            reply = await worker.RequestAsync(message, options.TimeBudget + KillGrace, cancellationToken, table).ConfigureAwait(false);
        }
        catch (WorkerTimeoutException)
        {
            var reason = $"hook '{hook.Name}' ran past its time budget of {options.TimeBudget.TotalSeconds:0.###} s and did not stop";
            await worker.KillAsync(reason).ConfigureAwait(false);
            throw new HookInvocationException(hook.Name, hook.SourcePath, null,
                $"Hook '{hook.Name}' ran past its time budget of {options.TimeBudget.TotalSeconds:0.###} s and did not stop: worker killed: {reason}; it is restarted for the next call. Make it faster or raise HookHostOptions.TimeBudget.");
        }
        catch (WorkerDiedException ex)
        {
            throw new HookInvocationException(hook.Name, hook.SourcePath, null, $"Hook '{hook.Name}' failed: {ex.Message}; the worker is restarted for the next call");
        }

        if (reply.Type == "failure")
        {
            var f = await CancelledOrFatalAsync(reply.Failure!, worker, cancellationToken).ConfigureAwait(false);

            var inner = f.ExceptionType is null ? null : new HookWorkerException(f.ExceptionType, f.ExceptionMessage ?? "");
            throw new HookInvocationException(f.HookName, f.File, f.Line, f.Message, inner);
        }

        return reply.Tunes!.Select(t => new OrchestratorTune
        {
            ParentEntityName = t.ParentEntityName,
            NewEntityName = t.NewEntityName,
            ReplicaProps = PropValues.FromJson(t.ReplicaProps),
        }).ToList();
    }

    /// <summary>Runs the folder's <c>*.test.csx</c> cases in the worker; a case that could not be stopped takes the worker down (restarted on the next call).</summary>
    public async Task<IReadOnlyList<HookTestResult>> RunTestsAsync(CancellationToken cancellationToken)
    {
        var worker = await EnsureStartedAsync(cancellationToken).ConfigureAwait(false);
        WorkerMessage reply;
        try
        {
            // Each case has its own budget in the worker; this is only the backstop for a worker that stops answering.
            reply = await worker.RequestAsync(new WorkerMessage { Type = "test" }, options.CompileTimeout + options.CompileTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch (WorkerTimeoutException)
        {
            await worker.KillAsync("running the test cases took longer than the compile timeout twice over").ConfigureAwait(false);
            throw new HookInvocationException("", HooksDirectory, null, $"worker killed: running the test cases of {HooksDirectory} took longer than {2 * options.CompileTimeout.TotalSeconds:0} s");
        }
        catch (WorkerDiedException ex)
        {
            throw new HookInvocationException("", HooksDirectory, null, $"running the test cases failed: {ex.Message}");
        }

        if (reply.Type == "failure")
        {
            throw new HookInvocationException("", HooksDirectory, null, reply.Failure!.Message);
        }

        if (reply.Abandoned == true)
        {
            await worker.KillAsync("a test case ran past its time budget and could not be stopped").ConfigureAwait(false);
        }

        return reply.Tests!.Select(t => new HookTestResult(t.TestFile, t.Case, t.Passed, t.File, t.Line, t.Column, t.Message, TimeSpan.FromMilliseconds(t.DurationMs))).ToList();
    }

    internal async Task<IReadOnlyList<Transforming.TransformedDocument>> TransformAsync(RemoteTransformer transformer, Transforming.TransformTarget target,
        IReadOnlyList<Transforming.SourceDocument> rows, TimeSpan budget, CancellationToken cancellationToken)
    {
        using var request = new Transforming.TransformRequest(rows.Sum(r => r.Json.Length + (r.Id.Length * 3) + 9));
        foreach (var row in rows)
        {
            request.Add(row.Id, row.Operation, row.Json);
        }

        var reply = await TransformFramesAsync(transformer, target, request, budget, cancellationToken).ConfigureAwait(false);
        var results = new Transforming.TransformedDocument[rows.Count];
        for (var i = 0; i < results.Length; i++)
        {
            var row = rows[i];
            var outcome = reply.Outcome(i);
            var json = outcome == Transforming.TransformOutcome.Written && row.Operation == RowOperation.Upsert
                ? reply.IsUnchanged(i) ? row.Json : reply.Json(i).ToArray()
                : null;
            results[i] = new Transforming.TransformedDocument(outcome, reply.NewId(i) ?? row.Id, row.Operation, reply.Index(i), json, reply.Error(i));
        }

        return results;
    }

    /// <summary>One batch to the worker and back in the binary form: one round trip, no object per row on the wire.</summary>
    internal async Task<Transforming.TransformReply> TransformFramesAsync(RemoteTransformer transformer, Transforming.TransformTarget target,
        Transforming.TransformRequest request, TimeSpan budget, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var worker = await EnsureStartedAsync(cancellationToken).ConfigureAwait(false);
        var message = new WorkerMessage
        {
            Type = "transform",
            Hook = transformer.Key,
            Target = new TargetDto(target.Flow, target.Schema, target.Table),
            BudgetMs = budget.TotalMilliseconds,
            Body = request.Body,
        };
        WorkerMessage reply;
        try
        {
            reply = await worker.RequestAsync(message, budget + KillGrace, cancellationToken).ConfigureAwait(false);
        }
        catch (WorkerTimeoutException)
        {
            var reason = $"transformer '{transformer.Name}' ran past its per-batch time budget of {budget.TotalMilliseconds:0} ms and did not stop";
            await worker.KillAsync(reason).ConfigureAwait(false);
            throw new Transforming.TransformTimeoutException($"{transformer.SourcePath}: {reason}: worker killed; the batch was not written or acknowledged, and the worker is restarted for the next batch.");
        }
        catch (WorkerDiedException ex)
        {
            throw new Transforming.TransformTimeoutException($"{transformer.SourcePath}: transformer '{transformer.Name}' failed: {ex.Message}; the batch was not written or acknowledged.");
        }

        if (reply.Type == "failure")
        {
            var f = await CancelledOrFatalAsync(reply.Failure!, worker, cancellationToken).ConfigureAwait(false);

            throw new Transforming.TransformTimeoutException(f.Message);
        }

        try
        {
            return Transforming.TransformReply.Read(reply.Body, request.Count);
        }
        catch (InvalidDataException ex)
        {
            await worker.KillAsync($"it broke the protocol ({ex.Message})").ConfigureAwait(false);
            throw new Transforming.TransformTimeoutException($"{transformer.SourcePath}: transformer '{transformer.Name}': the worker's answer was malformed ({ex.Message}): worker killed; the batch was not written or acknowledged.");
        }
    }

    /// <summary>One batch-level hook call: one round trip under <paramref name="budget"/>; a throw, time-out or dead worker is a <see cref="Batching.BatchHookException"/>.</summary>
    internal async Task<WorkerMessage> BatchHookAsync(RemoteBatchHook hook, WorkerMessage message, string method, TimeSpan budget, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var worker = await EnsureStartedAsync(cancellationToken).ConfigureAwait(false);
        message.Hook = hook.Key;
        message.BudgetMs = budget.TotalMilliseconds;
        WorkerMessage reply;
        try
        {
            reply = await worker.RequestAsync(message, budget + KillGrace, cancellationToken).ConfigureAwait(false);
        }
        catch (WorkerTimeoutException)
        {
            var reason = $"{method} in '{hook.Name}' ran past its time budget of {budget.TotalMilliseconds:0} ms and did not stop";
            await worker.KillAsync(reason).ConfigureAwait(false);
            throw new Batching.BatchHookException($"{hook.SourcePath}: {reason}: worker killed; it is restarted for the next call.");
        }
        catch (WorkerDiedException ex)
        {
            throw new Batching.BatchHookException($"{hook.SourcePath}: {method} in '{hook.Name}' failed: {ex.Message}");
        }

        if (reply.Type == "failure")
        {
            var f = await CancelledOrFatalAsync(reply.Failure!, worker, cancellationToken).ConfigureAwait(false);
            throw new Batching.BatchHookException(f.Message);
        }

        return reply;
    }

    /// <summary>A failure reply: a cancelled call throws; a fatal one (the hook left the worker unusable) kills the worker, restarted on the next call.</summary>
    private static async Task<FailureDto> CancelledOrFatalAsync(FailureDto f, WorkerConnection worker, CancellationToken cancellationToken)
    {
        if (f.Cancelled)
        {
            throw new OperationCanceledException(cancellationToken);
        }

        if (f.Fatal)
        {
            await worker.KillAsync(f.Message).ConfigureAwait(false);
        }

        return f;
    }

    private async Task<WorkerConnection> EnsureStartedAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (connection is { IsAlive: true } alive)
        {
            return alive;
        }

        await StartAsync(initial: false, cancellationToken).ConfigureAwait(false);
        return connection is { IsAlive: true } started
            ? started
            : throw new HookInvocationException("", HooksDirectory, null, $"worker killed: it could not be restarted ({connection?.DeathReason ?? "the hooks folder is gone"})");
    }

    private async Task StartAsync(bool initial, CancellationToken cancellationToken)
    {
        await startGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (connection is { IsAlive: true })
            {
                return;
            }

            if (connection is { } dead)
            {
                await dead.DisposeAsync().ConfigureAwait(false);
                connection = null;
            }

            if (!Directory.Exists(HooksDirectory))
            {
                // Nothing to sandbox (and nothing to bind-mount); a later reload starts the worker once it exists.
                Volatile.Write(ref flow, []);
                Volatile.Write(ref pipeline, []);
                Volatile.Write(ref diagnostics, [new HookDiagnostic(HooksDirectory, 0, 0, "warning", "EF0004", "the hooks folder does not exist; no hooks are loaded (create it, or pass another folder)")]);
                return;
            }

            Directory.CreateDirectory(CacheDirectory);
            var failures = new List<string>();
            foreach (var kind in candidates)
            {
                var worker = WorkerConnection.Start(Sandbox.StartInfo(kind, HooksDirectory, CacheDirectory, options.WorkerEnvironment, options.WorkerMemoryLimitBytes), options.WorkerOutput, this);
                Interlocked.Increment(ref starts);
                var hello = new WorkerMessage
                {
                    Type = "hello",
                    Version = WorkerProtocol.Version,
                    Settings = new WorkerSettings
                    {
                        Root = HooksDirectory,
                        Cache = CacheDirectory,
                        BudgetMs = options.TimeBudget.TotalMilliseconds,
                        DebounceMs = options.ReloadDebounce.TotalMilliseconds,
                        Watch = options.Watch,
                        CompileOnly = options.CompileOnly,
                        Trim = options.TrimNativeMemory,
                        SkipPolicy = options.SkipSemanticPolicy,
                        TrustedPlugins = [.. options.TrustedPlugins],
                        CpuSeconds = (long)Math.Ceiling(options.WorkerCpuLimit.TotalSeconds),
                        MemoryBytes = options.WorkerMemoryLimitBytes,
                        HostNetNamespace = Sandbox.Namespace("net"),
                        HostMountNamespace = Sandbox.Namespace("mnt"),
                        Sandbox = kind.ToString(),
                        WaitForDebuggerMs = options.WaitForDebugger?.TotalMilliseconds,
                    },
                };

                try
                {
                    var reply = await worker.RequestAsync(hello, options.CompileTimeout + (options.WaitForDebugger ?? TimeSpan.Zero), cancellationToken).ConfigureAwait(false);
                    if (reply.Type != "snapshot")
                    {
                        throw new WorkerDiedException(reply.Error ?? "the worker refused the handshake");
                    }

                    connection = worker;
                    Layers = (reply.Layers ?? []).Select(l => new IsolationLayer(l.Name, l.Active, l.Detail)).ToList();
                    candidates = candidates.SkipWhile(c => c != kind).ToList(); // restarts use what worked
                    Apply(reply.Snapshot!);
                    return;
                }
                catch (WorkerTimeoutException)
                {
                    await worker.KillAsync($"loading the hooks took longer than {options.CompileTimeout.TotalSeconds:0} s (a compile-time bomb?)").ConfigureAwait(false);
                    connection = worker;
                    Failed(worker.DeathReason!);
                    return;
                }
                catch (WorkerDiedException ex) when (initial)
                {
                    failures.Add($"{kind}: {ex.Message}");
                    await worker.DisposeAsync().ConfigureAwait(false);
                }
                catch (WorkerDiedException)
                {
                    connection = worker;
                    throw;
                }
            }

            throw new HookIsolationException($"the hook worker could not be started: {string.Join("; ", failures)}");
        }
        finally
        {
            startGate.Release();
        }
    }

    private HookReloadedEventArgs Failed(string reason)
    {
        var failure = new HookDiagnostic(HooksDirectory, 0, 0, "error", "EF0098", $"worker killed: {reason}; the last good hooks stay active");
        Volatile.Write(ref diagnostics, [failure]);
        return new HookReloadedEventArgs([], false, [failure]);
    }

    /// <summary>A line a hook logged in the worker: to <see cref="HookHostOptions.HookLog"/>, else the worker's output.</summary>
    internal void OnLog(LogDto line)
    {
        var entry = new HookLogEntry(line.File, line.Line, line.Level, line.Message);
        if (line.File.Length == 0 && options.HookLog is null)
        {
            (options.WorkerOutput ?? (text => Console.Error.WriteLine("[hook worker] " + text)))(line.Message); // the worker's own line
            return;
        }

        if (options.HookLog is { } log)
        {
            log(entry);
        }
        else if (options.WorkerOutput is { } output)
        {
            output("[hook] " + entry);
        }
        else
        {
            Console.Error.WriteLine("[hook] " + entry);
        }
    }

    internal void OnEvent(SnapshotDto snapshot)
    {
        var args = Apply(snapshot);
        Reloaded?.Invoke(this, args);
    }

    private HookReloadedEventArgs Apply(SnapshotDto snapshot)
    {
        lock (snapshotLock)
        {
            var hooks = snapshot.Hooks.Select(h =>
            {
                if (!byKey.TryGetValue(h.Key, out var hook))
                {
                    hook = new RemoteHook(this, h.Key, h.Name, h.Path, Enum.Parse<HookLevel>(h.Level));
                    byKey[h.Key] = hook;
                }

                return hook;
            }).ToList();
            foreach (var gone in byKey.Keys.Except(snapshot.Hooks.Select(h => h.Key)).ToList())
            {
                byKey.Remove(gone);
            }

            var found = snapshot.Diagnostics.Select(d => new HookDiagnostic(d.File, d.Line, d.Column, d.Severity, d.Id, d.Message)).ToList();
            Volatile.Write(ref flow, hooks.Where(h => h.Level == HookLevel.Flow).ToList<IOrchestrationHook>());
            Volatile.Write(ref pipeline, hooks.Where(h => h.Level == HookLevel.Pipeline).ToList<IOrchestrationHook>());
            Volatile.Write(ref diagnostics, found);
            Volatile.Write(ref transformers, snapshot.Transformers.Select(t => new RemoteTransformer(this, t.Key, t.Name, t.Path, t.AppliesTo, t.Version)).ToList<Transforming.IDataTransformer>());
            Volatile.Write(ref batchHooks, snapshot.BatchHooks.Select(h => new RemoteBatchHook(this, h.Key, h.Name, h.Path, h.AppliesTo, h.Version, (Batching.BatchHookKinds)h.Kinds)).ToList<Batching.IBatchHook>());
            return new HookReloadedEventArgs(snapshot.Changed, snapshot.Succeeded, found);
        }
    }

    private static PropsDto Dto(OrchestratorProps props, Dictionary<IDatabaseEngine, int> engines)
    {
        EngineDto Engine(IDatabaseEngine engine)
        {
            if (!engines.TryGetValue(engine, out var id))
            {
                id = engines.Count + 1;
                engines[engine] = id;
            }

            return new EngineDto { Id = id, Kind = engine.Kind, Name = engine.Name };
        }

        return new PropsDto
        {
            Entity = props.Entity.Select(e => new EntityDto
            {
                Name = e.Name,
                Source = Engine(e.SourceDBConn),
                Dest = Engine(e.DestDBConn),
                Auxiliary = e.AuxiliaryDBConnMap.Count == 0 ? null : e.AuxiliaryDBConnMap.ToDictionary(a => a.Key, a => Engine(a.Value), StringComparer.Ordinal),
            }).ToList(),
            Machine = Machine(props.Machine),
            Cluster = props.ClusterMachines.Count == 0 ? null : [.. props.ClusterMachines.Select(Machine)],
            Parent = props.Parent is { } p ? new TuneDto { ParentEntityName = p.ParentEntityName, NewEntityName = p.NewEntityName, ReplicaProps = PropValues.ToJson(p.ReplicaProps) } : null,
        };
    }

    private static MachineDto Machine(MachineInfo machine) => new()
    {
        LogicalCores = machine.LogicalCores,
        TotalMemoryBytes = machine.TotalMemoryBytes,
        Region = machine.Region,
        HostName = machine.HostName,
        Labels = machine.Labels.ToDictionary(l => l.Key, l => l.Value, StringComparer.Ordinal),
    };
}

/// <summary>A transformer that lives in the worker: one round trip per batch.</summary>
internal sealed class RemoteTransformer(WorkerHooks owner, string key, string name, string sourcePath, string appliesTo, string version) : Transforming.IDataTransformer, Transforming.IFrameTransformer
{
    private readonly string[] patterns = appliesTo.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    public string Key => key;

    public string Name => name;

    public string SourcePath => sourcePath;

    public string VersionKey => version;

    public string AppliesTo => appliesTo;

    public bool Matches(Transforming.TransformTarget target) => Transforming.TransformerHook.Matches(patterns, target);

    public Task<IReadOnlyList<Transforming.TransformedDocument>> TransformAsync(Transforming.TransformTarget target, IReadOnlyList<Transforming.SourceDocument> rows, TimeSpan budget, CancellationToken cancellationToken = default)
        => owner.TransformAsync(this, target, rows, budget, cancellationToken);

    public Task<Transforming.TransformReply> TransformFramesAsync(Transforming.TransformTarget target, Transforming.TransformRequest request, TimeSpan budget, CancellationToken cancellationToken)
        => owner.TransformFramesAsync(this, target, request, budget, cancellationToken);
}

/// <summary>Batch-level hooks that live in the worker: one round trip per call.</summary>
internal sealed class RemoteBatchHook(WorkerHooks owner, string key, string name, string sourcePath, string appliesTo, string version, Batching.BatchHookKinds kinds) : Batching.IBatchHook
{
    private readonly string[] patterns = appliesTo.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    public string Key => key;

    public string Name => name;

    public string SourcePath => sourcePath;

    public string VersionKey => version;

    public string AppliesTo => appliesTo;

    public Batching.BatchHookKinds Kinds => kinds;

    public bool Matches(Transforming.TransformTarget target) => Transforming.TransformerHook.Matches(patterns, target);

    public async Task<WriteRule> WriteRuleAsync(PipelineInfo pipeline, TimeSpan budget, CancellationToken cancellationToken = default)
        => (await owner.BatchHookAsync(this, new WorkerMessage { Type = "write-rule", Pipeline = pipeline }, "WriteRule", budget, cancellationToken).ConfigureAwait(false)).WriteRule!;

    public async Task<TerminationRule> TerminationAsync(PipelineInfo pipeline, TimeSpan budget, CancellationToken cancellationToken = default)
        => (await owner.BatchHookAsync(this, new WorkerMessage { Type = "termination", Pipeline = pipeline }, "Termination", budget, cancellationToken).ConfigureAwait(false)).Termination!;

    public async Task<CheckpointDecision> CheckpointAsync(CheckpointInfo checkpoint, TimeSpan budget, CancellationToken cancellationToken = default)
    {
        var reply = await owner.BatchHookAsync(this, new WorkerMessage { Type = "checkpoint", Checkpoint = checkpoint }, "OnCheckpoint", budget, cancellationToken).ConfigureAwait(false);
        var d = reply.Decisions![0];
        return d.Action == 1 ? CheckpointDecision.Stop(d.Reason ?? "(no reason given)") : CheckpointDecision.Continue;
    }

    public async Task<IReadOnlyList<BacklogDecision>> BacklogAsync(IReadOnlyList<BacklogRecord> records, TimeSpan budget, CancellationToken cancellationToken = default)
    {
        var reply = await owner.BatchHookAsync(this, new WorkerMessage { Type = "backlog", Records = [.. records] }, "OnBacklog", budget, cancellationToken).ConfigureAwait(false);
        return reply.Decisions!.Select(d => (BacklogAction)d.Action switch
        {
            BacklogAction.Retry => BacklogDecision.Retry,
            BacklogAction.Stop => BacklogDecision.Stop(d.Reason ?? "(no reason given)"),
            _ => BacklogDecision.Skip,
        }).ToList();
    }
}

/// <summary>A hook that lives in the worker; invoking it is one round trip (plus the engine questions it asks).</summary>
internal sealed class RemoteHook(WorkerHooks owner, string key, string name, string sourcePath, HookLevel level) : IOrchestrationHook
{
    public string Key => key;

    public string Name => name;

    public string SourcePath => sourcePath;

    public HookLevel Level => level;

    public Task<IReadOnlyList<OrchestratorTune>> InvokeAsync(OrchestratorProps props, CancellationToken cancellationToken = default)
        => owner.InvokeAsync(this, props, cancellationToken);
}

internal sealed class WorkerDiedException(string message) : Exception(message);

internal sealed class WorkerTimeoutException() : Exception("the worker did not answer in time");

/// <summary>One running worker process and its protocol stream.</summary>
internal sealed class WorkerConnection : IAsyncDisposable
{
    private const int StderrLines = 30;
    private readonly Process process;
    private readonly Stream input;
    private readonly Stream output;
    private readonly WorkerHooks owner;
    private readonly SemaphoreSlim writeGate = new(1, 1);
    private readonly ConcurrentDictionary<long, TaskCompletionSource<WorkerMessage>> pending = new();
    private readonly ConcurrentDictionary<long, (Dictionary<int, IDatabaseEngine> Engines, CancellationToken Token)> engines = new();
    private readonly Queue<string> stderrTail = new();
    private readonly List<string> notable = []; // crash headlines, kept even when a stack trace floods the tail
    private readonly Action<string> log;
    private readonly Task reader;
    private string? killReason;
    private long nextId;
    private volatile bool alive = true;

    private WorkerConnection(Process process, Action<string>? log, WorkerHooks owner)
    {
        this.process = process;
        this.owner = owner;
        this.log = log ?? (line => Console.Error.WriteLine("[hook worker] " + line));
        input = process.StandardInput.BaseStream;
        output = process.StandardOutput.BaseStream;
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                return;
            }

            lock (stderrTail)
            {
                if (notable.Count < 4 && (e.Data.StartsWith("Stack overflow", StringComparison.Ordinal) || e.Data.StartsWith("Unhandled exception", StringComparison.Ordinal)
                    || e.Data.Contains("OutOfMemory", StringComparison.Ordinal) || (notable.Count > 0 && notable[^1].StartsWith("Unhandled", StringComparison.Ordinal))))
                {
                    notable.Add(e.Data);
                }

                stderrTail.Enqueue(e.Data);
                while (stderrTail.Count > StderrLines)
                {
                    stderrTail.Dequeue();
                }
            }

            this.log(e.Data);
        };
        process.BeginErrorReadLine();
        reader = Task.Run(ReadLoopAsync);
    }

    public bool IsAlive => alive;

    public string? DeathReason { get; private set; }

    public int? ProcessId => alive ? process.Id : null;

    public static WorkerConnection Start(ProcessStartInfo startInfo, Action<string>? log, WorkerHooks owner)
    {
        Process process;
        try
        {
            process = Launcher.Start(startInfo);
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new WorkerDiedException($"{startInfo.FileName} cannot be started: {ex.Message}");
        }

        return new WorkerConnection(process, log, owner);
    }

    /// <summary>
    /// Starts processes from one thread that lives as long as the host. bubblewrap's <c>--die-with-parent</c> (and the
    /// worker's own parent-death signal) fire when the *thread* that forked them exits, and the thread pool retires
    /// idle threads: a worker started from a pool thread was SIGKILLed at random some time later.
    /// </summary>
    private static class Launcher
    {
        private static readonly System.Collections.Concurrent.BlockingCollection<(ProcessStartInfo Info, TaskCompletionSource<Process> Started)> Requests = Create();

        public static Process Start(ProcessStartInfo info)
        {
            var started = new TaskCompletionSource<Process>(TaskCreationOptions.RunContinuationsAsynchronously);
            Requests.Add((info, started));
            return started.Task.GetAwaiter().GetResult();
        }

        private static System.Collections.Concurrent.BlockingCollection<(ProcessStartInfo, TaskCompletionSource<Process>)> Create()
        {
            var requests = new System.Collections.Concurrent.BlockingCollection<(ProcessStartInfo, TaskCompletionSource<Process>)>();
            var thread = new Thread(() =>
            {
                foreach (var (info, started) in requests.GetConsumingEnumerable())
                {
                    try
                    {
                        started.TrySetResult(Process.Start(info) ?? throw new WorkerDiedException($"{info.FileName} did not start"));
                    }
#pragma warning disable CA1031 // Handed to the caller.
                    catch (Exception ex)
#pragma warning restore CA1031
                    {
                        started.TrySetException(ex);
                    }
                }
            })
            {
                IsBackground = true,
                Name = "hook worker launcher",
            };
            thread.Start();
            return requests;
        }
    }

    public async Task<WorkerMessage> RequestAsync(WorkerMessage message, TimeSpan timeout, CancellationToken cancellationToken, Dictionary<int, IDatabaseEngine>? callEngines = null)
    {
        if (!alive)
        {
            throw new WorkerDiedException(DeathReason ?? "the worker is not running");
        }

        message.Id = Interlocked.Increment(ref nextId);
        var reply = new TaskCompletionSource<WorkerMessage>(TaskCreationOptions.RunContinuationsAsynchronously);
        pending[message.Id] = reply;
        if (callEngines is not null)
        {
            engines[message.Id] = (callEngines, cancellationToken);
        }

        try
        {
            await WorkerProtocol.WriteAsync(input, message, writeGate, CancellationToken.None).ConfigureAwait(false);
            try
            {
                return await reply.Task.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                throw new WorkerTimeoutException();
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested && message.Type is "invoke" or "transform" or "write-rule" or "termination" or "checkpoint" or "backlog")
            {
                // Tell the worker; it stops the hook through its token. The caller sees a cancellation.
                await WorkerProtocol.WriteAsync(input, new WorkerMessage { Type = "cancel", Id = message.Id }, writeGate, CancellationToken.None).ConfigureAwait(false);
                throw;
            }
        }
        catch (IOException ex)
        {
            await reader.WaitAsync(TimeSpan.FromSeconds(2), CancellationToken.None).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            throw new WorkerDiedException(DeathReason ?? $"the worker's pipe broke: {ex.Message}");
        }
        finally
        {
            pending.TryRemove(message.Id, out _);
            engines.TryRemove(message.Id, out _);
        }
    }

    public async Task KillAsync(string reason)
    {
        killReason ??= reason;
        try
        {
            process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }

        await reader.WaitAsync(TimeSpan.FromSeconds(5), CancellationToken.None).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        DeathReason ??= reason;
        alive = false;
    }

    public async ValueTask DisposeAsync()
    {
        if (alive)
        {
            try
            {
                input.Close(); // end of stdin: the worker exits on its own
            }
            catch (IOException)
            {
                // Already broken.
            }

            try
            {
                await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(3)).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                await KillAsync("the host shut down").ConfigureAwait(false);
            }
        }

        await reader.WaitAsync(TimeSpan.FromSeconds(5), CancellationToken.None).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        alive = false;
        process.Dispose();
        writeGate.Dispose();
    }

    private async Task ReadLoopAsync()
    {
        try
        {
            while (await WorkerProtocol.ReadAsync(output, CancellationToken.None).ConfigureAwait(false) is { } message)
            {
                switch (message.Type)
                {
                    case "engine":
                        _ = Task.Run(() => AnswerEngineAsync(message));
                        break;
                    case "log" when message.Log is { } line:
                        owner.OnLog(line);
                        break;
                    case "snapshot" when message.Snapshot is { Event: true } snapshot:
                        owner.OnEvent(snapshot);
                        break;
                    default:
                        if (pending.TryGetValue(message.Id, out var waiter))
                        {
                            waiter.TrySetResult(message);
                        }

                        break;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or InvalidDataException or System.Text.Json.JsonException or ObjectDisposedException)
        {
            if (killReason is null && !process.HasExited)
            {
                killReason = $"it broke the protocol ({ex.Message})";
                try
                {
                    process.Kill(entireProcessTree: true);
                }
                catch (InvalidOperationException)
                {
                    // Gone.
                }
            }
        }

        alive = false;
        DeathReason = killReason ?? await ExitReasonAsync().ConfigureAwait(false);
        foreach (var waiter in pending.Values)
        {
            waiter.TrySetException(new WorkerDiedException("worker killed: " + DeathReason));
        }
    }

    private async Task<string> ExitReasonAsync()
    {
        try
        {
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            return "it closed its protocol stream but did not exit";
        }

        process.WaitForExit(); // drains the stderr reader
        string[] tail;
        lock (stderrTail)
        {
            tail = [.. notable, .. stderrTail];
        }

        var code = process.ExitCode;
        var what = tail.FirstOrDefault(l => l.Contains("Stack overflow", StringComparison.OrdinalIgnoreCase)) is not null ? "a stack overflow"
            : tail.FirstOrDefault(l => l.StartsWith("Unhandled exception", StringComparison.Ordinal)) is { } unhandled ? $"an unhandled exception on a background thread ({Trim(unhandled)}{NextLine(tail, unhandled)})"
            : tail.FirstOrDefault(l => l.Contains("OutOfMemory", StringComparison.Ordinal)) is not null ? "running out of memory"
            : code == 137 || code == -9 ? "SIGKILL"
            : code == 152 || code == -24 ? "its CPU-time limit (SIGXCPU)"
            : tail.LastOrDefault() is { } last ? Trim(last) : "no message";
        return $"it exited with code {code} after {what}";
    }

    private static string NextLine(string[] tail, string line)
    {
        var at = Array.IndexOf(tail, line);
        return at >= 0 && at + 1 < tail.Length ? " " + Trim(tail[at + 1]) : "";
    }

    private static string Trim(string line) => line.Length > 300 ? line[..300] + "…" : line.Trim();

    private async Task AnswerEngineAsync(WorkerMessage request)
    {
        var reply = new WorkerMessage { Type = "engine-reply", Id = request.Id };
        if (request.Invoke is not { } invoke || !engines.TryGetValue(invoke, out var call) || request.Engine is not { } id || !call.Engines.TryGetValue(id, out var engine))
        {
            reply.Error = "this engine belongs to a call that has finished; ask engines only while the hook runs";
        }
        else
        {
            try
            {
                if (request.Call == "stats")
                {
                    var s = await engine.GetTableStatsAsync(call.Token).ConfigureAwait(false);
                    reply.Stats = new StatsDto { TotalRows = s.TotalRows, TotalBytes = s.TotalBytes, TableCount = s.TableCount, PartitionCount = s.PartitionCount, RowsAreExact = s.RowsAreExact };
                }
                else if (request.Call == "measure")
                {
                    var c = await engine.MeasureConnectionAsync(call.Token).ConfigureAwait(false);
                    reply.Connection = new ConnectionDto { RoundTripMs = c.RoundTripLatency.TotalMilliseconds, ThroughputBytesPerSecond = c.ThroughputBytesPerSecond };
                }
                else
                {
                    reply.Error = $"unknown engine call '{request.Call}'";
                }
            }
#pragma warning disable CA1031 // The engine's failure is the hook's to see, as it would be in-process.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                reply.Error = $"{engine.Kind} engine '{engine.Name}' failed: {ex.GetType().Name}: {ex.Message}";
            }
        }

        try
        {
            await WorkerProtocol.WriteAsync(input, reply, writeGate, CancellationToken.None).ConfigureAwait(false);
        }
        catch (IOException)
        {
            // The worker is gone; its reader reports why.
        }
    }
}
