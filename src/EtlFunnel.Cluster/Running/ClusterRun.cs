using System.Text.Json;
using EtlFunnel.Cluster.Grains;
using EtlFunnel.Cluster.Leases;
using EtlFunnel.Cluster.Members;
using EtlFunnel.Cluster.Placement;
using EtlFunnel.Cluster.Worker;
using EtlFunnel.Orchestration.Plans;
using EtlFunnel.Sync;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using Orleans.Hosting;

namespace EtlFunnel.Cluster.Running;

/// <summary>What <c>run --cluster</c> hands the cluster.</summary>
internal sealed record ClusterRunRequest
{
    public required ExecutionPlan Plan { get; init; }

    public required string HooksHash { get; init; }

    /// <summary>
    /// The plan as the sync engine's job (this machine's flows.yaml joined in): the planner exports the run's snapshot of
    /// every source database it reads and holds it open until every replica is done.
    /// </summary>
    public required SyncJob Job { get; init; }

    /// <summary>Checkpoint table in the cluster database (<c>schema.table</c>).</summary>
    public string StateTable { get; init; } = PostgresStateTable.DefaultTable;

    /// <summary>Checkpoint scope; each replica keeps <c>&lt;scope&gt;/cluster/&lt;flow&gt;/&lt;replica&gt;</c>.</summary>
    public string Scope { get; init; } = PostgresStateTable.DefaultScope;

    public bool Incremental { get; init; }

    /// <summary>The run's id (its lease rows); a new one by default.</summary>
    public string RunId { get; init; } = Guid.NewGuid().ToString("n");

    /// <summary>How long to wait for a first worker before failing.</summary>
    public TimeSpan WaitForWorkers { get; init; } = TimeSpan.FromSeconds(60);
}

/// <summary>The outcome of a cluster run: the engine's report merged from every replica, and where they ran.</summary>
internal sealed record ClusterRunResult(SyncReport Report, IReadOnlyDictionary<string, int> ReplicasPerMember, int Takeovers, int Members)
{
    /// <summary>
    /// Documents the workers' transformers wrote per version (<c>name@version</c> → count), summed over the replicas' completed
    /// attempts; empty when no transformer ran.
    /// </summary>
    public IReadOnlyDictionary<string, long> TransformerCounts { get; init; } = new Dictionary<string, long>(StringComparer.Ordinal);
}

/// <summary>
/// The caller's side of <c>run --cluster</c>: one pending lease row per pipeline replica, then a loop that places waiting
/// replicas on live members (most free cores, labels), re-places those whose owner stopped renewing (a dead worker; the
/// new grain resumes from the replica's checkpoints) and ends when every replica has an outcome.
/// </summary>
internal sealed class ClusterRun(ClusterSettings settings, ILoggerFactory loggerFactory) : IAsyncDisposable
{
    private readonly ILogger _log = loggerFactory.CreateLogger("EtlFunnel.Cluster.Run");
    private readonly SemaphoreSlim _connectGate = new(1, 1);
    private Task<IHost>? _connecting;
    private CancellationToken _lifetime;
    private bool _connectionTaken;

    /// <summary>
    /// Keep one Orleans client for every <see cref="RunAsync"/> of this instance (<c>watch</c>: one client for the process's
    /// lifetime, its runs may overlap) until <see cref="DisposeAsync"/>; a failed connection is tried again by the next run.
    /// Off (<c>run</c>): the run takes the connection and stops it when it ends.
    /// </summary>
    public bool KeepConnected { get; init; }

    /// <summary>
    /// Starts connecting the Orleans client now, so that the caller overlaps it with planning (about a second on this machine);
    /// <see cref="RunAsync"/> takes that connection. <see cref="DisposeAsync"/> stops it if no run took it.
    /// </summary>
    public void StartConnecting(CancellationToken cancellationToken)
    {
        if (_connecting is null)
        {
            _lifetime = cancellationToken;
            _connecting = ConnectAsync(cancellationToken);
        }
    }

    /// <summary>
    /// Stops a connection started by <see cref="StartConnecting"/> that no run took (planning failed, say), or, with
    /// <see cref="KeepConnected"/>, the client every run shared.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        _connectGate.Dispose();
        if (_connecting is not { } connecting || (_connectionTaken && !KeepConnected))
        {
            return;
        }

        _connectionTaken = true;
        try
        {
            using var host = await connecting.ConfigureAwait(false);
            await host.StopAsync(CancellationToken.None).ConfigureAwait(false);
        }
#pragma warning disable CA1031 // An early connection nobody used: its failure has nothing left to affect.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            _log.LogDebug(ex, "The cluster client connected ahead of the run could not be stopped cleanly");
        }
    }

    public async Task<ClusterRunResult> RunAsync(ClusterRunRequest request, CancellationToken cancellationToken)
    {
        // Connecting overlaps the snapshot export and the lease rows below (and planning, when the caller started it); a kept
        // client connects (again) on first use.
        if (!KeepConnected)
        {
            StartConnecting(cancellationToken);
        }

        await using var dataSource = ClusterData.Open(settings);
        await ClusterSchema.EnsureAsync(dataSource, settings.Described, cancellationToken).ConfigureAwait(false);
        var leases = new LeaseStore(dataSource);
        var members = new MemberRegistry(dataSource, settings.ClusterId);
        var replicas = request.Plan.AllPipelines().ToDictionary(
            p => LeaseStore.KeyOf(request.RunId, p.Flow.Name, p.Pipeline.Name),
            p => (p.Flow, p.Pipeline, Placement: ReplicaPlacement.From(p.Pipeline.Props, p.Flow.Props)),
            StringComparer.Ordinal);

        // One point in time for the whole cluster: the same coordinator a single-machine run opens (ACCESS SHARE locks, then
        // pg_export_snapshot), here, open until the last replica (re-runs after a failover included) is done. Workers import it.
        await using var snapshots = await ExportedSnapshots.OpenAsync(request.Job, cancellationToken).ConfigureAwait(false);
        var handoffs = request.Job.Flows.ToDictionary(f => f.Name, snapshots.For, StringComparer.Ordinal);
        foreach (var (source, id) in snapshots.SnapshotIds)
        {
            _log.LogInformation("Run {RunId}: snapshot {Snapshot:l} of {Source:l} exported; every replica reads in it", request.RunId, id, source);
        }

        await leases.CreateAsync(request.RunId, request.Plan.AllPipelines().Select(p => (p.Flow.Name, p.Pipeline.Name)), cancellationToken).ConfigureAwait(false);

        var live = await WaitForMembersAsync(members, request.WaitForWorkers, cancellationToken).ConfigureAwait(false);
        foreach (var m in live.Where(m => m.HooksHash != request.HooksHash))
        {
            _log.LogWarning("Worker {Host} ({Silo}) runs hooks {Theirs}, the plan was made with {Ours}: it will refuse this run's replicas", m.Machine.HostName, m.Silo, m.HooksHash, request.HooksHash);
        }

        var client = await ClientAsync(cancellationToken).ConfigureAwait(false);
        var grains = client.Services.GetRequiredService<IGrainFactory>();

        var planJson = PlanJson.Serialize(request.Plan);
        var attempts = new Dictionary<string, int>(StringComparer.Ordinal);
        var dispatched = new Dictionary<string, (string Silo, DateTimeOffset At)>(StringComparer.Ordinal);
        var failedOver = new HashSet<(string, long)>();
        var refusals = new System.Collections.Concurrent.ConcurrentDictionary<string, string>(StringComparer.Ordinal);
        var seenMembers = new HashSet<string>(StringComparer.Ordinal);
        var time = TimeProvider.System;
        var lastLog = DateTimeOffset.MinValue;
        IReadOnlyList<LeaseRow> rows;
        try
        {
            while (true)
            {
                rows = await leases.ReadRunAsync(request.RunId, cancellationToken).ConfigureAwait(false);
                live = [.. (await members.LiveAsync(settings.MemberTtl, cancellationToken).ConfigureAwait(false)).Where(m => !refusals.ContainsKey(m.Silo))];
                foreach (var m in live.Where(m => seenMembers.Add(m.Silo)))
                {
                    _log.LogInformation("Cluster member {Host} ({Silo}): {Cores} cores, region {Region}", m.Machine.HostName, m.Silo, m.Machine.LogicalCores, m.Machine.Region ?? "-");
                }

                var now = time.GetUtcNow();
                var load = new Dictionary<string, int>(StringComparer.Ordinal);
                foreach (var row in rows)
                {
                    var silo = row.Status == "running" && !row.Expired && row.Owner is not null ? row.Owner.Split(' ')[0]
                        : row.Status == "pending" && dispatched.TryGetValue(row.Key, out var d) && now - d.At < settings.LeaseTtl ? d.Silo
                        : null;
                    if (silo is not null)
                    {
                        load[silo] = load.GetValueOrDefault(silo) + 1;
                    }
                }

                var open = rows.Where(r => r.Status is "pending" or "running").ToList();
                if (open.Count == 0)
                {
                    break;
                }

                if (live.Count == 0 && !refusals.IsEmpty && !open.Any(r => r.Status == "running" && !r.Expired))
                {
                    // Every worker refused (different hooks, say): nothing can run; say why instead of waiting forever.
                    var why = string.Join("; ", refusals.Values.Distinct(StringComparer.Ordinal));
                    foreach (var row in open)
                    {
                        await leases.FailAsync(row.Key, $"no worker may run it: {why}", cancellationToken).ConfigureAwait(false);
                    }

                    continue;
                }

                foreach (var row in open)
                {
                    var waiting = row.Status == "pending" && (!dispatched.TryGetValue(row.Key, out var d) || now - d.At >= settings.LeaseTtl);
                    var orphaned = row.Status == "running" && row.Expired;
                    if (!waiting && !orphaned)
                    {
                        continue;
                    }

                    var (flow, pipeline, placement) = replicas[row.Key];
                    var member = placement.Choose(live, load);
                    if (member is null)
                    {
                        continue;
                    }

                    if (orphaned && failedOver.Add((row.Key, row.Epoch)))
                    {
                        _log.LogWarning("Replica {Flow}/{Replica}: its owner {Owner} stopped renewing the lease (epoch {Epoch}); placing it on {Host} ({Silo}), it resumes from its checkpoint",
                            row.Flow, row.Replica, row.Owner?.Split(' ')[0], row.Epoch, member.Machine.HostName, member.Silo);
                    }

                    var attempt = attempts[row.Key] = attempts.GetValueOrDefault(row.Key) + 1;
                    dispatched[row.Key] = (member.Silo, now);
                    load[member.Silo] = load.GetValueOrDefault(member.Silo) + 1;
                    var grain = grains.GetGrain<IReplicaGrain>(TargetSiloPlacementDirector.GrainKey(row.Key, attempt, member.Silo));
                    var assignment = new ReplicaAssignment
                    {
                        RunId = request.RunId,
                        Flow = flow.Name,
                        Replica = pipeline.Name,
                        PlanJson = planJson,
                        HooksHash = request.HooksHash,
                        StateTable = request.StateTable,
                        Scope = request.Scope,
                        Incremental = request.Incremental,
                        SnapshotId = handoffs[flow.Name].SnapshotId,
                        Blocks = new Dictionary<string, long>(handoffs[flow.Name].Blocks, StringComparer.Ordinal),
                    };
                    var silo = member.Silo;
                    _ = grain.StartAsync(assignment).ContinueWith(t =>
                    {
                        if (t.IsFaulted)
                        {
                            _log.LogDebug("Start of {Lease} on {Silo} failed ({Error}); it is placed again", row.Key, silo, t.Exception?.GetBaseException().Message);
                        }
                        else if (t.Result.Outcome == StartOutcome.Refused && refusals.TryAdd(silo, t.Result.Message))
                        {
                            _log.LogWarning("Worker {Silo} refused replicas: {Reason:l}", silo, t.Result.Message);
                        }
                    }, TaskScheduler.Default);
                }

                if (now - lastLog >= TimeSpan.FromSeconds(5))
                {
                    lastLog = now;
                    _log.LogInformation("Cluster: {Done}/{Total} replicas done, {Running} running on {Members} members",
                        rows.Count - open.Count, rows.Count, open.Count(r => r.Status == "running"), live.Count);
                }

                await Task.Delay(settings.PollInterval, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await CancelAsync(dataSource, request.RunId).ConfigureAwait(false);
            rows = await leases.ReadRunAsync(request.RunId, CancellationToken.None).ConfigureAwait(false);
        }
        finally
        {
            if (!KeepConnected)
            {
                await client.StopAsync(CancellationToken.None).ConfigureAwait(false);
                client.Dispose();
            }
        }

        return Result(rows, replicas.ToDictionary(r => r.Key, r => (r.Value.Flow, r.Value.Pipeline), StringComparer.Ordinal), seenMembers.Count);
    }

    private static ClusterRunResult Result(IReadOnlyList<LeaseRow> rows, Dictionary<string, (FlowReplicaPlan Flow, PipelineReplicaPlan Pipeline)> replicas, int members)
    {
        var reports = new List<ReplicaReport>();
        var perMember = new Dictionary<string, int>(StringComparer.Ordinal);
        var transformed = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var row in rows)
        {
            foreach (var (version, documents) in row.Transformed is null ? [] : JsonSerializer.Deserialize<Dictionary<string, long>>(row.Transformed) ?? [])
            {
                transformed[version] = transformed.GetValueOrDefault(version) + documents;
            }

            var (_, pipeline) = replicas[row.Key];
            var report = row.Report is null ? null : JsonSerializer.Deserialize<ReplicaReport>(row.Report);
            reports.Add(report ?? new ReplicaReport
            {
                Flow = row.Flow,
                Replica = row.Replica,
                Table = $"{pipeline.Table.Schema}.{pipeline.Table.Name}",
                Index = pipeline.Index,
                Outcome = row.Status == "succeeded" ? SyncOutcome.Succeeded : row.Status is "cancelled" or "pending" or "running" ? SyncOutcome.Cancelled : SyncOutcome.Failed,
                Error = row.Error,
            });
            if (row.Owner is { } owner)
            {
                var silo = owner.Split(' ')[0];
                perMember[silo] = perMember.GetValueOrDefault(silo) + 1;
            }
        }

        var outcome = reports.All(r => r.Outcome == SyncOutcome.Succeeded) ? SyncOutcome.Succeeded
            : reports.Any(r => r.Outcome == SyncOutcome.Failed) ? SyncOutcome.Failed
            : reports.Any(r => r.Outcome == SyncOutcome.CompletedWithRejections) ? SyncOutcome.CompletedWithRejections
            : SyncOutcome.Cancelled;
        var duration = reports.Count == 0 ? TimeSpan.Zero : reports.Max(r => r.Duration);
        return new ClusterRunResult(new SyncReport { Outcome = outcome, Replicas = reports, Duration = duration }, perMember, rows.Sum(r => r.Takeovers), members)
        {
            TransformerCounts = transformed,
        };
    }

    /// <summary>The live members of the cluster (waiting up to <paramref name="wait"/> for a first one), for the hooks to plan with.</summary>
    public static async Task<IReadOnlyList<Member>> MembersAsync(ClusterSettings settings, ILoggerFactory loggerFactory, TimeSpan wait, CancellationToken ct)
    {
        await using var dataSource = ClusterData.Open(settings);
        await ClusterSchema.EnsureAsync(dataSource, settings.Described, ct).ConfigureAwait(false);
        return await new ClusterRun(settings, loggerFactory)
            .WaitForMembersAsync(new MemberRegistry(dataSource, settings.ClusterId), wait, ct).ConfigureAwait(false);
    }

    private async Task<IReadOnlyList<Member>> WaitForMembersAsync(MemberRegistry members, TimeSpan wait, CancellationToken ct)
    {
        var until = TimeProvider.System.GetUtcNow() + wait;
        var said = false;
        while (true)
        {
            var live = await members.LiveAsync(settings.MemberTtl, ct).ConfigureAwait(false);
            if (live.Count > 0)
            {
                return live;
            }

            if (TimeProvider.System.GetUtcNow() >= until)
            {
                throw new ClusterException(
                    $"{settings.Described}: no worker of cluster '{settings.ClusterId}' is running (waited {wait.TotalSeconds:0} s). Start one with " +
                    $"'etlfunnel worker --cluster <the same database> --config <flows.yaml>' (docs/cluster.md), then run again.");
            }

            if (!said)
            {
                said = true;
                _log.LogInformation("Waiting for a worker of cluster {Cluster} in {Server}", settings.ClusterId, settings.Server);
            }

            await Task.Delay(TimeSpan.FromMilliseconds(500), ct).ConfigureAwait(false);
        }
    }

    /// <summary>The run's Orleans client: the connection started ahead, or with <see cref="KeepConnected"/> the shared one (connected again after a failure).</summary>
    private async Task<IHost> ClientAsync(CancellationToken cancellationToken)
    {
        if (!KeepConnected)
        {
            _connectionTaken = true;
            return await _connecting!.ConfigureAwait(false);
        }

        await _connectGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_connecting is { IsCompleted: true, IsCompletedSuccessfully: false })
            {
                _log.LogInformation("Connecting to cluster {Cluster} again (the last attempt failed)", settings.ClusterId);
                _connecting = null;
            }

            _connecting ??= ConnectAsync(_lifetime);
            _connectionTaken = true;
            return await _connecting.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _connectGate.Release();
        }
    }

    private async Task<IHost> ConnectAsync(CancellationToken ct)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        ClusterLogging.Configure(builder.Logging, loggerFactory);
        builder.UseOrleansClient(c =>
        {
            c.Configure<ClusterOptions>(o =>
            {
                o.ClusterId = settings.ClusterId;
                o.ServiceId = "etlfunnel";
            });
            c.UseAdoNetClustering(o =>
            {
                o.Invariant = "Npgsql";
                o.ConnectionString = settings.OrleansConnectionString;
            });
            c.Configure<GatewayOptions>(o => o.GatewayListRefreshPeriod = TimeSpan.FromSeconds(2));
        });
        var host = builder.Build();
        await host.StartAsync(ct).ConfigureAwait(false);
        return host;
    }

    private static async Task CancelAsync(Npgsql.NpgsqlDataSource dataSource, string runId)
    {
        // Owners see their renewal fail and stop (their checkpoints stay valid: a new run of the same scope resumes).
        await using var cmd = dataSource.CreateCommand("UPDATE etlfunnel_cluster.leases SET status = 'cancelled', updated_at = now() WHERE run_id = $1 AND status IN ('pending', 'running')");
        cmd.Parameters.AddWithValue(runId);
        await cmd.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
    }
}
