using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace EtlFunnel.Service;

/// <summary>The JSON bodies of <c>GET /healthz</c> and <c>GET /runs</c>, written from one snapshot.</summary>
internal static class StatusJson
{
    private static readonly JsonWriterOptions Options = new()
    {
        Indented = true,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary><c>/readyz</c>: <c>{"status":"ready|degraded|not ready","reasons":[...],"planVersion":N,"sourceUnreachable":...}</c>.</summary>
    public static string Readiness(ServiceSnapshot s, Readiness readiness) => Write(w =>
    {
        w.WriteStartObject();
        w.WriteString("status", readiness.Status);
        w.WriteStartArray("reasons");
        foreach (var r in readiness.Reasons)
        {
            w.WriteStringValue(r);
        }

        w.WriteEndArray();
        if (s.Plan is { } plan)
        {
            w.WriteNumber("planVersion", plan.Version);
        }
        else
        {
            w.WriteNull("planVersion");
        }

        w.WriteString("hooks", s.Hooks.Broken ? "broken" : s.Hooks.LastReload is null ? "not loaded" : "ok");
        if (s.SourceUnreachable is { } unreachable)
        {
            w.WriteString("sourceUnreachable", unreachable);
        }
        else
        {
            w.WriteNull("sourceUnreachable");
        }

        w.WriteEndObject();
    });

    /// <summary>
    /// Health with its reasons, the hook status, the restart notice, the recent plan diff and, when watch runs on a cluster,
    /// <c>"cluster": {"clusterId", "server", "aliveMembers", "failovers", "error", "members": [{"name", "silo", "cores", "region", "alive", "replicas"}]}</c>
    /// (<c>null</c> on one machine).
    /// </summary>
    public static string Health(ServiceSnapshot s, CachedReading<ClusterView>.Reading? cluster = null)
    {
        var health = s.Health;
        return Write(w =>
        {
            w.WriteStartObject();
            w.WriteString("status", health.Healthy ? "healthy" : "unhealthy");
            w.WriteStartArray("reasons");
            foreach (var r in health.Reasons)
            {
                w.WriteStringValue(r);
            }

            w.WriteEndArray();
            w.WriteString("startedAt", s.StartedAt);
            if (s.Plan is { } plan)
            {
                w.WriteNumber("planVersion", plan.Version);
                w.WriteString("planAppliedAt", plan.AppliedAt);
            }
            else
            {
                w.WriteNull("planVersion");
                w.WriteNull("planAppliedAt");
            }

            w.WriteStartObject("hooks");
            w.WriteString("state", s.Hooks.Broken ? "broken" : s.Hooks.LastReload is null ? "not loaded" : "ok");
            w.WriteStartArray("diagnostics");
            foreach (var d in s.Hooks.Diagnostics)
            {
                w.WriteStringValue(d);
            }

            w.WriteEndArray();
            w.WriteStartArray("isolation");
            foreach (var layer in s.HookIsolation)
            {
                w.WriteStringValue(layer);
            }

            w.WriteEndArray();
            WriteTime(w, "lastReload", s.Hooks.LastReload);
            WriteTime(w, "brokenSince", s.Hooks.BrokenSince);
            w.WriteNumber("reloads", s.Hooks.Reloads);
            w.WriteNumber("failures", s.Hooks.Failures);
            w.WriteEndObject();
            if (s.RestartNeeded is { } restart)
            {
                w.WriteString("restartNeeded", restart);
            }
            else
            {
                w.WriteNull("restartNeeded");
            }

            WriteStreams(w, s);
            WriteCluster(w, cluster);
            w.WriteStartArray("planDiff");
            foreach (var d in s.PlanDiff)
            {
                w.WriteStartObject();
                w.WriteString("at", d.At);
                w.WriteNumber("planVersion", d.PlanVersion);
                w.WriteString("line", d.Line);
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteEndObject();
        });
    }

    /// <summary>The recent runs, newest first, each with its report.</summary>
    public static string Runs(ServiceSnapshot s) => Write(w =>
    {
        w.WriteStartObject();
        w.WriteStartArray("runs");
        foreach (var r in s.Runs)
        {
            w.WriteStartObject();
            w.WriteNumber("id", r.Id);
            w.WriteString("flow", r.Flow);
            w.WriteString("started", r.Started);
            w.WriteString("finished", r.Finished);
            w.WriteNumber("durationSeconds", (r.Finished - r.Started).TotalSeconds);
            w.WriteString("outcome", r.Outcome.ToString().ToLowerInvariant());
            w.WriteNumber("rows", r.Rows);
            w.WriteNumber("docsIndexed", r.DocsIndexed);
            w.WriteNumber("deadLetters", r.DeadLetters);
            w.WriteNumber("retries", r.Retries);
            w.WriteNumber("docsPerSecond", r.DocsPerSecond);
            w.WriteNumber("planVersion", r.PlanVersion);
            if (r.Error is { } error)
            {
                w.WriteString("error", error);
            }
            else
            {
                w.WriteNull("error");
            }

            w.WritePropertyName("report");
            if (r.ReportJson is { } report)
            {
                w.WriteRawValue(report, skipInputValidation: true);
            }
            else
            {
                w.WriteNullValue();
            }

            w.WriteEndObject();
        }

        w.WriteEndArray();
        w.WriteEndObject();
    });

    /// <summary>The CDC flows' streams: phase, lanes, position, lag, restarts and the last failure.</summary>
    private static void WriteStreams(Utf8JsonWriter w, ServiceSnapshot s)
    {
        w.WriteStartArray("streams");
        foreach (var x in s.Streams.Values)
        {
            w.WriteStartObject();
            w.WriteString("flow", x.Flow);
            w.WriteString("phase", PhaseName(x.Phase));
            w.WriteString("since", x.Since);
            WriteString(w, "shape", x.Shape);
            w.WriteNumber("lanes", x.Lanes);
            WriteString(w, "appliedLsn", x.AppliedLsn);
            if (x.LagBytes is { } bytes)
            {
                w.WriteNumber("lagBytes", bytes);
            }
            else
            {
                w.WriteNull("lagBytes");
            }

            if (x.LagSeconds is { } seconds)
            {
                w.WriteNumber("lagSeconds", Math.Round(seconds, 3));
            }
            else
            {
                w.WriteNull("lagSeconds");
            }

            w.WriteNumber("changesApplied", x.ChangesApplied);
            w.WriteNumber("starts", x.Starts);
            w.WriteNumber("restarts", x.Restarts);
            w.WriteNumber("consecutiveFailures", x.ConsecutiveFailures);
            WriteString(w, "lastError", x.LastError);
            WriteTime(w, "retryAt", x.RetryAt);
            w.WriteEndObject();
        }

        w.WriteEndArray();
    }

    private static void WriteCluster(Utf8JsonWriter w, CachedReading<ClusterView>.Reading? reading)
    {
        if (reading is null)
        {
            w.WriteNull("cluster");
            return;
        }

        w.WriteStartObject("cluster");
        WriteString(w, "clusterId", reading.View?.ClusterId);
        WriteString(w, "server", reading.View?.Server);
        w.WriteNumber("aliveMembers", reading.View?.AliveMembers ?? 0);
        w.WriteNumber("failovers", reading.View?.Failovers ?? 0);
        WriteString(w, "error", reading.Error);
        w.WriteStartArray("members");
        foreach (var m in reading.View?.Members ?? [])
        {
            w.WriteStartObject();
            w.WriteString("name", m.Name);
            w.WriteString("silo", m.Silo);
            w.WriteNumber("cores", m.Cores);
            WriteString(w, "region", m.Region);
            w.WriteBoolean("alive", m.Alive);
            w.WriteNumber("replicas", m.Replicas);
            w.WriteEndObject();
        }

        w.WriteEndArray();
        w.WriteEndObject();
    }

    /// <summary>A stream phase as the JSON and the page show it: <c>starting</c>, <c>snapshot</c>, <c>streaming</c>, <c>restarting</c>, <c>retrying</c>, <c>not planned</c>, <c>stopped</c>.</summary>
    public static string PhaseName(StreamPhase phase) => phase == StreamPhase.NotPlanned ? "not planned" : phase.ToString().ToLowerInvariant();

    private static void WriteString(Utf8JsonWriter w, string name, string? value)
    {
        if (value is null)
        {
            w.WriteNull(name);
        }
        else
        {
            w.WriteString(name, value);
        }
    }

    private static void WriteTime(Utf8JsonWriter w, string name, DateTimeOffset? value)
    {
        if (value is { } v)
        {
            w.WriteString(name, v);
        }
        else
        {
            w.WriteNull(name);
        }
    }

    private static string Write(Action<Utf8JsonWriter> body)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, Options))
        {
            body(w);
        }

        return Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }
}
