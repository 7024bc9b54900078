using System.Diagnostics.Metrics;
using System.Reflection;

namespace EtlFunnel.Service;

/// <summary>
/// The service's metrics as <see cref="System.Diagnostics.Metrics"/> instruments (exported by OpenTelemetry on
/// <c>/metrics</c>): observable counters and gauges read from the immutable <see cref="ServiceSnapshot"/> at each scrape,
/// a run duration histogram, the last success per flow and build info. One instance per status server; its
/// <see cref="Meter"/> is what the server's OpenTelemetry view lets through, so two servers in one process never mix.
/// </summary>
internal sealed class ServiceMetrics : IDisposable
{
    /// <summary>The meter's name (the <c>otel_scope_name</c> of these series).</summary>
    public const string MeterName = "EtlFunnel.Service";

    private readonly ServiceState _state;
    private readonly Histogram<double> _runDuration;

    public ServiceMetrics(ServiceState state, CachedReading<ClusterView>? cluster = null)
    {
        _state = state ?? throw new ArgumentNullException(nameof(state));
        Meter = new Meter(MeterName, Version);
        PerFlow("etlfunnel_rows_synced", "Rows read from PostgreSQL and synced, per flow.", c => c.Rows, counter: true);
        PerFlow("etlfunnel_docs_indexed", "Documents Elasticsearch accepted, per flow.", c => c.DocsIndexed, counter: true);
        PerFlow("etlfunnel_retries", "Retried requests, per flow.", c => c.Retries, counter: true);
        PerFlow("etlfunnel_dead_letters", "Documents given up on and dead-lettered, per flow.", c => c.DeadLetters, counter: true);
        PerFlow("etlfunnel_runs", "Finished runs, per flow.", c => c.Runs, counter: true);
        PerFlow("etlfunnel_failed_runs", "Runs that failed, per flow.", c => c.FailedRuns, counter: true);
        PerFlow("etlfunnel_skipped_ticks", "Schedule ticks skipped because the flow's previous run was still going, per flow.", c => c.SkippedTicks, counter: true);
        PerFlow("etlfunnel_docs_per_second", "Documents indexed per second in the flow's last run.", c => c.LastDocsPerSecond, counter: false);
        PerFlow("etlfunnel_last_run_success", "1 if the flow's last run succeeded, 0 if it failed or was cancelled, absent before the first run.",
            c => c.LastRun is null ? null : c.LastRun.Outcome == RunOutcome.Succeeded ? 1 : 0, counter: false);
        PerFlow("etlfunnel_last_success_timestamp_seconds", "Unix time the flow's last successful run finished, absent before one.",
            c => c.LastSuccess?.ToUnixTimeMilliseconds() / 1000.0, counter: false);
        PerStream("etlfunnel_cdc_lag_bytes", "WAL bytes between the source's pg_current_wal_lsn() and the last position every apply lane applied, per CDC flow; absent while its stream is not streaming.",
            x => x.LagBytes, counter: false);
        PerStream("etlfunnel_cdc_lag_seconds", "Seconds since the commit of the oldest transaction a CDC stream received but has not applied in full; 0 when caught up; absent while not streaming.",
            x => x.LagSeconds, counter: false);
        PerStream("etlfunnel_cdc_streaming", "1 while the CDC flow's stream is streaming the WAL, 0 otherwise (starting, snapshot, restarting, retrying, stopped).",
            x => x.Phase == StreamPhase.Streaming ? 1 : 0, counter: false);
        PerStream("etlfunnel_cdc_lanes", "Apply lanes of the CDC flow's running stream (the pipeline replicas of its biggest table).", x => x.Lanes, counter: false);
        PerStream("etlfunnel_cdc_stream_restarts", "Times the CDC flow's stream was restarted because a new plan changed its lane count or tables.", x => x.Restarts, counter: true);
        Meter.CreateObservableCounter("etlfunnel_hook_reloads", () => _state.Snapshot.Hooks.Reloads, description: "Hook loads and reloads attempted (successful or not).");
        Meter.CreateObservableCounter("etlfunnel_hook_failures", () => _state.Snapshot.Hooks.Failures, description: "Hook loads and reloads that failed (the last good plan stayed active).");
        Meter.CreateObservableGauge("etlfunnel_hooks_broken", () => _state.Snapshot.Hooks.Broken ? 1 : 0, description: "1 while the hooks are broken.");
        Meter.CreateObservableGauge("etlfunnel_source_unreachable", () => _state.Snapshot.SourceUnreachable is null ? 0 : 1, description: "1 while a re-plan cannot reach a flow's source.");
        Meter.CreateObservableGauge("etlfunnel_restart_needed", () => _state.Snapshot.RestartNeeded is null ? 0 : 1, description: "1 while flows.yaml on disk differs from what the service loaded (restart to apply).");
        Meter.CreateObservableGauge("etlfunnel_plan_version", () => _state.Snapshot.Plan?.Version ?? 0, description: "Version of the active plan (1 = first plan; 0 = none yet).");
        Meter.CreateObservableGauge("etlfunnel_healthy", () => _state.Snapshot.Health.Healthy ? 1 : 0, description: "1 while /healthz answers 200.");
        Meter.CreateObservableGauge("etlfunnel_ready", () => _state.Snapshot.Readiness.Ready ? 1 : 0, description: "1 while /readyz answers 200 (ready or degraded).");
        Meter.CreateObservableGauge("etlfunnel_build_info", () => new Measurement<int>(1, new KeyValuePair<string, object?>("version", Version)),
            description: "Always 1; the version label says which build runs.");
        if (cluster is not null)
        {
            // The same series as a worker's --status-port endpoint (docs/cluster.md), read at each scrape (see StatusServer).
            Meter.CreateObservableGauge("etlfunnel_cluster_members", () => cluster.Last.View?.AliveMembers ?? 0,
                description: "Members of the cluster watch hands its runs to, alive now (announced, not left, heartbeat within the member TTL).");
            Meter.CreateObservableGauge("etlfunnel_cluster_replicas", () => PerMember(cluster.Last.View),
                description: "Pipeline replicas each member owns now (running, unexpired leases), per member name and silo; alive members and members still owning a lease.");
            Meter.CreateObservableCounter("etlfunnel_cluster_failovers", () => cluster.Last.View?.Failovers ?? 0,
                description: "Leases taken over from an owner that stopped renewing them (a dead or paused worker), over every run of the cluster.");
            Meter.CreateObservableGauge("etlfunnel_cluster_status_up", () => cluster.Last is { View: not null, Error: null } ? 1 : 0,
                description: "1 when the last reading of the cluster's state database succeeded, 0 when it failed (the other cluster series then hold their last values).");
        }

        _runDuration = Meter.CreateHistogram<double>("etlfunnel_run_duration", unit: "s", description: "Wall time of finished runs, per flow and outcome.");
        _state.RunRecorded += OnRunRecorded;
    }

    /// <summary>The informational version of this build (e.g. <c>0.1.0+1a2b3c</c>).</summary>
    public static string Version { get; } =
        typeof(ServiceMetrics).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";

    /// <summary>This server's meter.</summary>
    public Meter Meter { get; }

    public void Dispose()
    {
        _state.RunRecorded -= OnRunRecorded;
        Meter.Dispose();
    }

    private void OnRunRecorded(RunRecord run) =>
        _runDuration.Record((run.Finished - run.Started).TotalSeconds,
            new KeyValuePair<string, object?>("flow", run.Flow), new KeyValuePair<string, object?>("outcome", run.Outcome.ToString().ToLowerInvariant()));

    private static IEnumerable<Measurement<int>> PerMember(ClusterView? view)
    {
        foreach (var m in view?.Members ?? [])
        {
            yield return new Measurement<int>(m.Replicas, new KeyValuePair<string, object?>("member", m.Name), new KeyValuePair<string, object?>("silo", m.Silo));
        }
    }

    private void PerStream(string name, string description, Func<CdcStreamState, double?> value, bool counter)
    {
        IEnumerable<Measurement<double>> Observe()
        {
            foreach (var (flow, stream) in _state.Snapshot.Streams)
            {
                if (value(stream) is { } v)
                {
                    yield return new Measurement<double>(v, new KeyValuePair<string, object?>("flow", flow));
                }
            }
        }

        if (counter)
        {
            Meter.CreateObservableCounter(name, Observe, description: description);
        }
        else
        {
            Meter.CreateObservableGauge(name, Observe, description: description);
        }
    }

    private void PerFlow(string name, string description, Func<FlowCounters, double?> value, bool counter)
    {
        IEnumerable<Measurement<double>> Observe()
        {
            foreach (var (flow, counters) in _state.Snapshot.Flows)
            {
                if (value(counters) is { } v)
                {
                    yield return new Measurement<double>(v, new KeyValuePair<string, object?>("flow", flow));
                }
            }
        }

        if (counter)
        {
            Meter.CreateObservableCounter(name, Observe, description: description);
        }
        else
        {
            Meter.CreateObservableGauge(name, Observe, description: description);
        }
    }
}
