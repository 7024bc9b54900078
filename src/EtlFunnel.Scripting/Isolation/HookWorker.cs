using System.Collections.Concurrent;
using System.Globalization;
using System.Runtime.CompilerServices;
using EtlFunnel.Execution.Models;
using EtlFunnel.Scripting.Loading;

namespace EtlFunnel.Scripting.Isolation;

/// <summary>
/// The worker process's side: applies the OS limits to itself, loads the hooks with the in-process machinery
/// (<see cref="LocalHooks"/>: Roslyn, collectible contexts, cache, policy, budget) and answers the host's calls.
/// Exits when the host closes its stdin.
/// </summary>
internal sealed class HookWorker
{
    // How long the finalizer thread may take to reach a probe after a call; an endless finalizer never does.
    private static readonly TimeSpan FinalizerProbe = TimeSpan.FromSeconds(2);

    private readonly Stream input;
    private readonly Stream output;
    private readonly SemaphoreSlim writeGate = new(1, 1);
    private readonly ConcurrentDictionary<long, CancellationTokenSource> calls = new();
    private readonly ConcurrentDictionary<long, TaskCompletionSource<WorkerMessage>> engineCalls = new();
    private long nextEngineCall;
    private LocalHooks? hooks;

    private HookWorker(Stream input, Stream output)
    {
        this.input = input;
        this.output = output;
    }

    public static async Task<int> RunAsync(string[] args)
    {
        _ = args;
        var (input, output) = Native.TakeProtocolStreams();
        var worker = new HookWorker(input, output);
        try
        {
            return await worker.ServeAsync().ConfigureAwait(false);
        }
#pragma warning disable CA1031 // The worker reports any failure to the host and exits; it has nobody else to tell.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            await Console.Error.WriteLineAsync($"hook worker failed: {ex}").ConfigureAwait(false);
            return 70;
        }
    }

    private async Task<int> ServeAsync()
    {
        var hello = await WorkerProtocol.ReadAsync(input, CancellationToken.None).ConfigureAwait(false);
        if (hello is not { Type: "hello", Settings: { } settings })
        {
            return 64;
        }

        if (hello.Version != WorkerProtocol.Version)
        {
            await SendAsync(new WorkerMessage { Type = "fatal", Id = hello.Id, Error = $"protocol version {hello.Version} is not the worker's {WorkerProtocol.Version}" }).ConfigureAwait(false);
            return 64;
        }

        // Hooks block on engine questions (GetTableStats() is synchronous): enough threads that the answer's continuation
        // never waits for the pool to inject one.
        ThreadPool.GetMinThreads(out var workers, out var io);
        ThreadPool.SetMinThreads(Math.Max(workers, 16), io);
        var layers = ApplyLimits(settings);
        if (settings.WaitForDebuggerMs is { } waitMs)
        {
            await WaitForDebuggerAsync(TimeSpan.FromMilliseconds(waitMs)).ConfigureAwait(false);
        }

        var options = new HookHostOptions
        {
            HooksDirectory = settings.Root,
            CacheDirectory = settings.Cache,
            TimeBudget = TimeSpan.FromMilliseconds(settings.BudgetMs),
            ReloadDebounce = TimeSpan.FromMilliseconds(settings.DebounceMs),
            Watch = settings.Watch,
            CompileOnly = settings.CompileOnly,
            TrimNativeMemory = settings.Trim,
            SkipSemanticPolicy = settings.SkipPolicy,
            TrustedPlugins = settings.TrustedPlugins,
            Isolation = HookIsolation.None,
        };

        hooks = await LocalHooks.LoadAsync(options).ConfigureAwait(false);
        var loaded = hooks.Diagnostics;
        await SendAsync(new WorkerMessage
        {
            Type = "snapshot",
            Id = hello.Id,
            Layers = layers,
            Snapshot = Snapshot(hooks, new HookReloadedEventArgs([], !loaded.Any(d => d.Severity == "error"), loaded), isEvent: false),
        }).ConfigureAwait(false);

        hooks.Reloaded += (_, e) => _ = SendAsync(new WorkerMessage { Type = "snapshot", Snapshot = Snapshot(hooks, e, isEvent: true) });
        while (await WorkerProtocol.ReadAsync(input, CancellationToken.None).ConfigureAwait(false) is { } message)
        {
            switch (message.Type)
            {
                case "reload":
                    _ = Task.Run(() => ReloadAsync(message.Id));
                    break;
                case "invoke":
                    var cts = new CancellationTokenSource();
                    calls[message.Id] = cts;
                    _ = Task.Run(() => InvokeAsync(message, cts));
                    break;
                case "transform":
                    var tcts = new CancellationTokenSource();
                    calls[message.Id] = tcts;
                    _ = Task.Run(() => TransformAsync(message, tcts));
                    break;
                case "write-rule" or "termination" or "checkpoint" or "backlog":
                    var bcts = new CancellationTokenSource();
                    calls[message.Id] = bcts;
                    _ = Task.Run(() => BatchHookAsync(message, bcts));
                    break;
                case "test":
                    _ = Task.Run(() => TestAsync(message.Id));
                    break;
                case "cancel":
                    if (calls.TryGetValue(message.Id, out var call))
                    {
                        await call.CancelAsync().ConfigureAwait(false);
                    }

                    break;
                case "engine-reply":
                    if (engineCalls.TryRemove(message.Id, out var pending))
                    {
                        pending.TrySetResult(message);
                    }

                    break;
                default:
                    break;
            }
        }

        return 0;
    }

    /// <summary>
    /// <c>hooks test --wait-for-debugger</c>: says which process to attach to (over the protocol, so the host logs it where
    /// the user looks), polls <see cref="System.Diagnostics.Debugger.IsAttached"/> until the timeout, and goes on either way.
    /// </summary>
    private async Task WaitForDebuggerAsync(TimeSpan timeout)
    {
        var pid = Environment.ProcessId;
        await SendAsync(new WorkerMessage { Type = "log", Log = new LogDto("warning", "", 0,
            $"hook worker: process {pid} is waiting up to {timeout.TotalSeconds:0} s for a debugger to attach (attach to process {pid}; docs/hooks.md, \"Debugging a hook\")") }).ConfigureAwait(false);
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (!System.Diagnostics.Debugger.IsAttached && waited.Elapsed < timeout)
        {
            await Task.Delay(100).ConfigureAwait(false);
        }

        await SendAsync(new WorkerMessage { Type = "log", Log = new LogDto(System.Diagnostics.Debugger.IsAttached ? "info" : "warning", "", 0,
            System.Diagnostics.Debugger.IsAttached
                ? $"hook worker: a debugger is attached to process {pid}; loading the hooks"
                : $"hook worker: no debugger attached to process {pid} after {timeout.TotalSeconds:0} s; going on without one") }).ConfigureAwait(false);
    }

    private async Task ReloadAsync(long id)
    {
        var args = await hooks!.ReloadAsync().ConfigureAwait(false);
        await SendAsync(new WorkerMessage { Type = "snapshot", Id = id, Snapshot = Snapshot(hooks, args, isEvent: false) }).ConfigureAwait(false);
    }

    private async Task TestAsync(long id)
    {
        WorkerMessage reply;
        var abandoned = false;
        try
        {
            (var results, abandoned) = await hooks!.RunTestsAsync().ConfigureAwait(false);
            reply = new WorkerMessage
            {
                Type = "tested",
                Id = id,
                Abandoned = abandoned,
                Tests = results.Select(r => new TestResultDto(r.TestFile, r.Case, r.Passed, r.File, r.Line, r.Column, r.Message, r.Duration.TotalMilliseconds)).ToList(),
            };
        }
#pragma warning disable CA1031 // Anything else is reported to the host as the test run's failure.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            reply = Failure(id, "", null, null, $"the worker failed to run the test cases: {ex.GetType().Name}: {ex.Message}");
        }

        await SendAsync(reply).ConfigureAwait(false);
        if (abandoned)
        {
            Environment.Exit(71); // a case's thread could not be stopped
        }
    }

    private async Task InvokeAsync(WorkerMessage message, CancellationTokenSource cts)
    {
        WorkerMessage reply;
        var fatal = false;
        try
        {
            var hook = hooks!.FlowHooks.Concat(hooks.PipelineHooks).FirstOrDefault(h => KeyOf(h) == message.Hook);
            if (hook is null)
            {
                reply = Failure(message.Id, message.Hook ?? "", null, null, "the hook was replaced by a reload while it was being called; plan again");
            }
            else
            {
                var props = Props(message.Props!, message.Id, cts.Token);
                try
                {
                    var tunes = await hook.InvokeAsync(props, cts.Token).ConfigureAwait(false);
                    List<TuneDto> dtos;
                    try
                    {
                        dtos = tunes.Select(t => new TuneDto { ParentEntityName = t.ParentEntityName ?? "", NewEntityName = t.NewEntityName ?? "", ReplicaProps = PropValues.ToJson(t.ReplicaProps) }).ToList();
                        reply = new WorkerMessage { Type = "result", Id = message.Id, Tunes = dtos };
                    }
                    catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or InvalidCastException)
                    {
                        reply = Failure(message.Id, hook.Name, hook.SourcePath, null, $"Hook '{hook.Name}' returned tunes that cannot leave the worker: {ex.Message}");
                    }
                }
                catch (HookInvocationException ex)
                {
                    reply = Failure(message.Id, ex.HookName, ex.File, ex.Line, ex.Message, ex.InnerException);

                    // GuardedHook could not stop it (a blocking call): its thread is lost, so this worker must go.
                    if (ex.Message.Contains("was abandoned", StringComparison.Ordinal))
                    {
                        fatal = true;
                        reply.Failure!.Fatal = true;
                        reply.Failure.Message += " worker killed: its thread could not be stopped; the worker is restarted.";
                    }
                }
                catch (OperationCanceledException) when (cts.IsCancellationRequested)
                {
                    reply = Failure(message.Id, hook.Name, null, null, "cancelled");
                    reply.Failure!.Cancelled = true;
                }

                if (!FinalizersRun())
                {
                    fatal = true;
                    reply = Failure(message.Id, hook.Name, hook.SourcePath, null,
                        $"worker killed: a finalizer did not return within {FinalizerProbe.TotalSeconds:0} s after hook '{hook.Name}' ran (an endless loop in a finalizer?); the worker is restarted");
                    reply.Failure!.Fatal = true;
                }
            }
        }
#pragma warning disable CA1031 // Anything else is reported to the host as this call's failure.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            reply = Failure(message.Id, message.Hook ?? "", null, null, $"the worker failed to run the hook: {ex.GetType().Name}: {ex.Message}");
        }
        finally
        {
            calls.TryRemove(message.Id, out _);
            cts.Dispose();
        }

        await SendAsync(reply).ConfigureAwait(false);
        if (fatal)
        {
            Environment.Exit(71);
        }
    }

    private async Task TransformAsync(WorkerMessage message, CancellationTokenSource cts)
    {
        WorkerMessage reply;
        try
        {
            var transformer = hooks!.Transformers.FirstOrDefault(t => TransformerKey(t) == message.Hook);
            if (transformer is null)
            {
                reply = Failure(message.Id, message.Hook ?? "", null, null, "the transformer was replaced by a reload; transform the batch again with the current version");
            }
            else
            {
                var rows = Transforming.TransformRequest.Read(message.Body);
                var t = message.Target!;
                try
                {
                    using var results = await transformer.RunBatchAsync(new Transforming.TransformTarget(t.Flow, t.Schema, t.Table), rows, TimeSpan.FromMilliseconds(message.BudgetMs ?? 1000), cts.Token).ConfigureAwait(false);

                    // Sent here, while the pooled reply buffer is still ours.
                    await SendAsync(new WorkerMessage { Type = "transformed", Id = message.Id, Body = results.Body }).ConfigureAwait(false);
                    return;
                }
                catch (Transforming.TransformTimeoutException ex)
                {
                    reply = Failure(message.Id, transformer.Name, transformer.SourcePath, null, ex.Message);
                    reply.Failure!.ExceptionType = "timeout";

                    // A batch that did not stop at its budget checks holds a thread forever: this worker must go.
                    if (ex.Message.Contains("cannot stop", StringComparison.Ordinal))
                    {
                        reply.Failure.Fatal = true;
                    }
                }
                catch (OperationCanceledException) when (cts.IsCancellationRequested)
                {
                    reply = Failure(message.Id, transformer.Name, null, null, "cancelled");
                    reply.Failure!.Cancelled = true;
                }
            }
        }
#pragma warning disable CA1031 // Anything else is reported to the host as this batch's failure.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            reply = Failure(message.Id, message.Hook ?? "", null, null, $"the worker failed to run the transformer: {ex.GetType().Name}: {ex.Message}");
        }
        finally
        {
            calls.TryRemove(message.Id, out _);
            cts.Dispose();
        }

        await SendAsync(reply).ConfigureAwait(false);
        if (reply.Failure is { Fatal: true })
        {
            Environment.Exit(71);
        }
    }

    internal static string TransformerKey(Transforming.IDataTransformer t) => string.Join('|', "Transform", t.Name, t.SourcePath, t.VersionKey);

    internal static string BatchHookKey(Batching.IBatchHook h) => string.Join('|', "Batch", h.Name, h.SourcePath, h.VersionKey);

    /// <summary>One batch-level hook call (write rule, termination, checkpoint or backlog): one answer, or a failure at the script's line.</summary>
    private async Task BatchHookAsync(WorkerMessage message, CancellationTokenSource cts)
    {
        WorkerMessage reply;
        try
        {
            var hook = hooks!.BatchHooks.FirstOrDefault(h => BatchHookKey(h) == message.Hook);
            var budget = TimeSpan.FromMilliseconds(message.BudgetMs ?? 1000);
            if (hook is null)
            {
                reply = Failure(message.Id, message.Hook ?? "", null, null, "the hook was replaced by a reload; call it again with the current version");
            }
            else
            {
                try
                {
                    reply = new WorkerMessage { Type = message.Type + "-result", Id = message.Id };
                    switch (message.Type)
                    {
                        case "write-rule":
                            reply.WriteRule = await hook.WriteRuleAsync(message.Pipeline!, budget, cts.Token).ConfigureAwait(false);
                            break;
                        case "termination":
                            reply.Termination = await hook.TerminationAsync(message.Pipeline!, budget, cts.Token).ConfigureAwait(false);
                            break;
                        case "checkpoint":
                            var decision = await hook.CheckpointAsync(message.Checkpoint!, budget, cts.Token).ConfigureAwait(false);
                            reply.Decisions = [new DecisionDto(decision.Stops ? 1 : 0, decision.Reason)];
                            break;
                        default:
                            var decisions = await hook.BacklogAsync(message.Records!, budget, cts.Token).ConfigureAwait(false);
                            reply.Decisions = decisions.Select(d => new DecisionDto((int)d.Action, d.Reason)).ToList();
                            break;
                    }
                }
                catch (Batching.BatchHookException ex)
                {
                    reply = Failure(message.Id, hook.Name, hook.SourcePath, null, ex.Message);

                    // A call that did not stop at its budget checks holds a thread forever: this worker must go.
                    if (ex.Message.Contains("cannot stop", StringComparison.Ordinal))
                    {
                        reply.Failure!.Fatal = true;
                    }
                }
                catch (OperationCanceledException) when (cts.IsCancellationRequested)
                {
                    reply = Failure(message.Id, hook.Name, null, null, "cancelled");
                    reply.Failure!.Cancelled = true;
                }
            }
        }
#pragma warning disable CA1031 // Anything else is reported to the host as this call's failure.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            reply = Failure(message.Id, message.Hook ?? "", null, null, $"the worker failed to run the hook: {ex.GetType().Name}: {ex.Message}");
        }
        finally
        {
            calls.TryRemove(message.Id, out _);
            cts.Dispose();
        }

        await SendAsync(reply).ConfigureAwait(false);
        if (reply.Failure is { Fatal: true })
        {
            Environment.Exit(71);
        }
    }

    private static WorkerMessage Failure(long id, string hook, string? file, int? line, string text, Exception? inner = null) => new()
    {
        Type = "failure",
        Id = id,
        Failure = new FailureDto { HookName = hook, File = file, Line = line, Message = text, ExceptionType = inner?.GetType().FullName, ExceptionMessage = inner?.Message },
    };

    private OrchestratorProps Props(PropsDto dto, long invoke, CancellationToken token)
    {
        var engines = new Dictionary<int, IDatabaseEngine>();
        IDatabaseEngine Engine(EngineDto e)
        {
            if (!engines.TryGetValue(e.Id, out var engine))
            {
                engine = new EngineProxy(this, invoke, e.Id, e.Kind, e.Name);
                engines[e.Id] = engine;
            }

            return engine;
        }

        return new OrchestratorProps
        {
            Entity = dto.Entity.Select(e => new OrchestratorEntityDef
            {
                Name = e.Name,
                SourceDBConn = Engine(e.Source),
                DestDBConn = Engine(e.Dest),
                AuxiliaryDBConnMap = (e.Auxiliary ?? []).ToDictionary(a => a.Key, a => Engine(a.Value), StringComparer.Ordinal),
            }).ToList(),
            Machine = Machine(dto.Machine),
            ClusterMachines = dto.Cluster is null ? [] : [.. dto.Cluster.Select(Machine)],
            Parent = dto.Parent is { } p ? new OrchestratorTune { ParentEntityName = p.ParentEntityName, NewEntityName = p.NewEntityName, ReplicaProps = PropValues.FromJson(p.ReplicaProps) } : null,
            CancellationToken = token,
            Log = new WorkerLog(this),
        };
    }

    private static MachineInfo Machine(MachineDto dto) => new()
    {
        LogicalCores = dto.LogicalCores,
        TotalMemoryBytes = dto.TotalMemoryBytes,
        Region = dto.Region,
        HostName = dto.HostName,
        Labels = dto.Labels,
    };

    internal async Task<WorkerMessage> AskEngineAsync(long invoke, int engine, string call, CancellationToken cancellationToken)
    {
        var id = Interlocked.Increment(ref nextEngineCall);
        var pending = new TaskCompletionSource<WorkerMessage>(TaskCreationOptions.RunContinuationsAsynchronously);
        engineCalls[id] = pending;
        using var registration = cancellationToken.Register(() => pending.TrySetCanceled(cancellationToken));
        await SendAsync(new WorkerMessage { Type = "engine", Id = id, Invoke = invoke, Engine = engine, Call = call }).ConfigureAwait(false);
        var reply = await pending.Task.ConfigureAwait(false);
        return reply.Error is { } error ? throw new InvalidOperationException(error) : reply;
    }

    private async Task SendAsync(WorkerMessage message)
        => await WorkerProtocol.WriteAsync(output, message, writeGate, CancellationToken.None).ConfigureAwait(false);

    internal static string KeyOf(IOrchestrationHook hook)
        => string.Join('|', hook.Level, hook.Name, hook.SourcePath, hook is GuardedHook g ? g.Version.Key : hook is ListedHook l ? l.Key : "");

    private static SnapshotDto Snapshot(LocalHooks hooks, HookReloadedEventArgs args, bool isEvent) => new()
    {
        Hooks = hooks.FlowHooks.Concat(hooks.PipelineHooks).Select(h => new HookDto(KeyOf(h), h.Name, h.SourcePath, h.Level.ToString())).ToList(),
        Diagnostics = args.Diagnostics.Select(d => new DiagnosticDto(d.File, d.Line, d.Column, d.Severity, d.Id, d.Message)).ToList(),
        Transformers = hooks.Transformers.Select(t => new TransformerDto(TransformerKey(t), t.Name, t.SourcePath, t.AppliesTo, t.VersionKey)).ToList(),
        BatchHooks = hooks.BatchHooks.Select(h => new BatchHookDto(BatchHookKey(h), h.Name, h.SourcePath, h.AppliesTo, h.VersionKey, (int)h.Kinds)).ToList(),
        Changed = [.. args.ChangedFiles],
        Succeeded = args.Succeeded,
        Event = isEvent,
    };

    /// <summary>True when a finalizable object made now is finalized promptly, i.e. no finalizer is stuck.</summary>
    /// <remarks>
    /// Twice: objects found dead by the same collection are finalized in no set order, so the first probe may run
    /// before the call's garbage; the second is queued behind whatever finalizer the first collection started.
    /// </remarks>
    private static bool FinalizersRun()
    {
        for (var round = 0; round < 2; round++)
        {
            using var done = new ManualResetEventSlim();
            MakeProbe(done);
            GC.Collect(0, GCCollectionMode.Forced, blocking: true);
            if (!done.Wait(FinalizerProbe))
            {
                return false;
            }
        }

        return true;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void MakeProbe(ManualResetEventSlim done) => _ = new FinalizerProbeObject(done);

    /// <summary>Applies the limits the worker sets on itself and reports every layer as detected from inside.</summary>
    private static List<LayerDto> ApplyLimits(WorkerSettings settings)
    {
        var layers = new List<LayerDto>();
        var linux = OperatingSystem.IsLinux();
        if (linux)
        {
            Native.KillWithParent();
            Native.SetNoNewPrivileges();
            var vm = VmSizeBytes();
            var addressSpace = vm + (ulong)settings.MemoryBytes * 3 + (1UL << 30);
            var asOk = Native.SetLimit(Native.RlimitAs, addressSpace);
            var cpuOk = Native.SetLimit(Native.RlimitCpu, (ulong)Math.Max(1, settings.CpuSeconds));
            var filesOk = Native.SetLimit(Native.RlimitNofile, 256);
            layers.Add(new("rlimits", asOk && cpuOk && filesOk,
                $"RLIMIT_AS={Mb(Native.GetLimit(Native.RlimitAs))}, RLIMIT_CPU={Native.GetLimit(Native.RlimitCpu)} s, RLIMIT_NOFILE={Native.GetLimit(Native.RlimitNofile)}"));
        }
        else
        {
            layers.Add(new("rlimits", false, "not on Linux: no setrlimit"));
        }

        var heap = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        layers.Add(new("memory", heap <= settings.MemoryBytes, $"GC heap hard limit {heap / (1 << 20)} MB"));

        var netNs = Sandbox.Namespace("net");
        var ownNet = netNs is not null && settings.HostNetNamespace is not null && netNs != settings.HostNetNamespace;
        layers.Add(new("network", ownNet, ownNet ? $"own network namespace {netNs}: no route to the host's network" : "shares the host's network"));

        var mntNs = Sandbox.Namespace("mnt");
        var hidden = !File.Exists("/etc/passwd") && !Directory.Exists("/home");
        var rootWritable = CanWrite(settings.Root);
        var fsOn = mntNs != settings.HostMountNamespace && hidden && !rootWritable;
        layers.Add(new("filesystem", fsOn, fsOn
            ? "minimal read-only root: system libraries, the runtime, the application, the hooks folder (read-only) and the compile cache (writable)"
            : $"the host's file system{(rootWritable ? ", hooks folder writable" : "")}"));

        var noNewPrivs = linux && ReadStatus("NoNewPrivs") == "1";
        layers.Add(new("no_new_privs", noNewPrivs, noNewPrivs ? "PR_SET_NO_NEW_PRIVS set: setuid binaries cannot raise privileges" : "not set"));

        var variables = Environment.GetEnvironmentVariables().Keys.Cast<string>().Where(k => !k.StartsWith("DOTNET_", StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList();
        layers.Add(new("environment", true, variables.Count == 0 ? "empty (only DOTNET_* runtime settings)" : $"only {string.Join(", ", variables)}"));

        var ownPid = linux && Environment.ProcessId < 10 && settings.Sandbox == nameof(SandboxKind.Bubblewrap);
        layers.Add(new("processes", ownPid, ownPid ? "own pid namespace, dies with the host; no shell or tools in its file system" : "dies with the host (parent-death signal)"));
        layers.Insert(0, new("worker", true, $"hooks run in process {Environment.ProcessId} ({settings.Sandbox.ToLowerInvariant()}), never in the host"));
        return layers;
    }

    private static bool CanWrite(string dir)
    {
        try
        {
            var probe = Path.Combine(dir, ".etlfunnel-write-probe-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
            File.WriteAllText(probe, "");
            File.Delete(probe);
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static string? ReadStatus(string key)
    {
        try
        {
            return File.ReadLines("/proc/self/status").Where(l => l.StartsWith(key + ":", StringComparison.Ordinal)).Select(l => l[(key.Length + 1)..].Trim()).FirstOrDefault();
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static ulong VmSizeBytes()
        => ReadStatus("VmSize") is { } size && ulong.TryParse(size.Split(' ')[0], CultureInfo.InvariantCulture, out var kb) ? kb * 1024 : 0;

    private static string Mb(ulong? bytes) => bytes is { } b ? $"{b / (1 << 20)} MB" : "?";

    private sealed class FinalizerProbeObject(ManualResetEventSlim done)
    {
        ~FinalizerProbeObject()
        {
            try
            {
                done.Set();
            }
            catch (ObjectDisposedException)
            {
                // The probe already gave up.
            }
        }
    }

    /// <summary>
    /// <c>param.Log</c> in the worker: each line is a protocol message to the host, which logs it. Capped per call (a hook
    /// logging in a loop cannot flood the host), lines cut at 4,096 characters.
    /// </summary>
    private sealed class WorkerLog(HookWorker worker) : IHookLog
    {
        private const int MaxLines = 1000;
        private const int MaxChars = 4096;
        private int lines;

        public void Info(string message, string file = "", int line = 0) => Send("info", message, file, line);

        public void Warning(string message, string file = "", int line = 0) => Send("warning", message, file, line);

        public void Error(string message, string file = "", int line = 0) => Send("error", message, file, line);

        private void Send(string level, string? message, string? file, int line)
        {
            var n = Interlocked.Increment(ref lines);
            if (n > MaxLines + 1)
            {
                return;
            }

            var text = n > MaxLines ? $"further log lines of this call are dropped (more than {MaxLines})" : message ?? "";
            if (text.Length > MaxChars)
            {
                text = string.Concat(text.AsSpan(0, MaxChars), "…");
            }

            // Sent in order on the one write gate; the call's result follows its log lines on the same pipe.
            worker.SendAsync(new WorkerMessage { Type = "log", Log = new LogDto(n > MaxLines ? "warning" : level, file ?? "", line, text) }).GetAwaiter().GetResult();
        }
    }

    /// <summary>An engine in the worker: numbers come from the host over the pipe; it holds no connection.</summary>
    private sealed class EngineProxy(HookWorker worker, long invoke, int id, string kind, string name) : IDatabaseEngine
    {
        public string Kind => kind;

        public string Name => name;

        public TableStats GetTableStats() => GetTableStatsAsync().GetAwaiter().GetResult();

        public async Task<TableStats> GetTableStatsAsync(CancellationToken cancellationToken = default)
        {
            var s = (await worker.AskEngineAsync(invoke, id, "stats", cancellationToken).ConfigureAwait(false)).Stats!;
            return new TableStats { TotalRows = s.TotalRows, TotalBytes = s.TotalBytes, TableCount = s.TableCount, PartitionCount = s.PartitionCount, RowsAreExact = s.RowsAreExact };
        }

        public ConnectionStats MeasureConnection() => MeasureConnectionAsync().GetAwaiter().GetResult();

        public async Task<ConnectionStats> MeasureConnectionAsync(CancellationToken cancellationToken = default)
        {
            var c = (await worker.AskEngineAsync(invoke, id, "measure", cancellationToken).ConfigureAwait(false)).Connection!;
            return new ConnectionStats { RoundTripLatency = TimeSpan.FromMilliseconds(c.RoundTripMs), ThroughputBytesPerSecond = c.ThroughputBytesPerSecond };
        }

        public override string ToString() => $"{kind} {name}";
    }
}
