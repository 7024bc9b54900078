namespace EtlFunnel.Service;

/// <summary>
/// The human page at <c>GET /</c>: one self-contained document (no external assets) whose script polls
/// <c>/healthz</c> (with the CDC streams and the cluster), <c>/plan</c> and <c>/runs</c> every two seconds and renders them with DOM text
/// nodes only, so names and diagnostics from hooks can never inject markup.
/// </summary>
internal static class StatusPage
{
    /// <summary>The page's HTML.</summary>
    public const string Html = """
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>etlfunnel watch</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #222; }
  h1 { font-size: 1.3rem; margin: 0 0 .5rem; }
  h2 { font-size: 1.1rem; margin: 1.5rem 0 .4rem; border-bottom: 1px solid #ddd; }
  h3 { font-size: 1rem; margin: 1rem 0 .3rem; }
  table { border-collapse: collapse; margin-bottom: .5rem; }
  th, td { border: 1px solid #ccc; padding: .2rem .5rem; text-align: left; vertical-align: top; }
  th { background: #f4f4f4; }
  code, pre { font-family: ui-monospace, monospace; font-size: 12px; }
  pre { margin: 0; white-space: pre-wrap; }
  .badge { display: inline-block; padding: .1rem .6rem; border-radius: .8rem; color: #fff; font-weight: 600; }
  .ok { background: #2e7d32; }
  .bad { background: #c62828; }
  .warn { background: #ef6c00; }
  .diag { color: #c62828; }
  .muted { color: #777; }
  tr.failed td { background: #fdecea; }
</style>
</head>
<body>
<h1>etlfunnel watch <span id="health" class="badge warn">loading</span></h1>
<div id="reasons"></div>
<div id="restart"></div>
<h2>Hooks</h2>
<div id="hooks" class="muted">loading…</div>
<div id="cluster-section" hidden>
<h2>Cluster <span id="cluster-name" class="muted"></span></h2>
<div id="cluster" class="muted">loading…</div>
</div>
<h2>CDC streams</h2>
<div id="streams" class="muted">no CDC flow</div>
<h2>Active plan <span id="plan-version" class="muted"></span></h2>
<div id="plan" class="muted">loading…</div>
<h2>Last runs</h2>
<div id="runs" class="muted">loading…</div>
<h2>Plan changes</h2>
<div id="diff" class="muted">none yet</div>
<p class="muted">Refreshes every 2 s. <span id="updated"></span> JSON: <a href="/plan">/plan</a> <a href="/runs">/runs</a> <a href="/healthz">/healthz</a> <a href="/metrics">/metrics</a></p>
<script>
"use strict";
// The plan names a table as {schema, name}; a part holding a dot or a quote is double-quoted, as in the CLI's messages.
function tableName(t) {
  if (!t || typeof t === "string") return t || "";
  const part = p => (p === "" || p.includes(".") || p.includes('"')) ? '"' + p.replaceAll('"', '""') + '"' : p;
  return part(t.schema) + "." + part(t.name);
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return e;
}
function table(headers, rows, rowClass) {
  const t = el("table", {}, el("tr", {}, ...headers.map(h => el("th", {}, h))));
  rows.forEach((r, i) => t.append(el("tr", rowClass ? { class: rowClass(i) } : {}, ...r.map(c => el("td", {}, c)))));
  return t;
}
function props(p) {
  if (p == null) return "";
  if (typeof p !== "object") return String(p);
  const keys = Object.keys(p);
  return keys.length ? keys.map(k => k + "=" + JSON.stringify(p[k])).join(", ") : "";
}
function ts(iso) { return iso ? iso.replace("T", " ").replace(/\.\d+/, "").replace(/\+00:00$|Z$/, " UTC") : ""; }
function replace(id, ...nodes) { const e = document.getElementById(id); e.className = ""; e.replaceChildren(...nodes); }
async function getJson(path) {
  const r = await fetch(path, { cache: "no-store" });
  return { status: r.status, body: await r.json() };
}
function renderHealth(h) {
  const badge = document.getElementById("health");
  badge.textContent = h.status;
  badge.className = "badge " + (h.status === "healthy" ? "ok" : "bad");
  replace("reasons", ...h.reasons.map(r => el("div", { class: "diag" }, r)));
  replace("restart", ...(h.restartNeeded ? [el("p", {}, el("span", { class: "badge warn" }, "restart needed"), " ", h.restartNeeded)] : []));
  const hk = h.hooks;
  const nodes = [el("p", {},
    el("span", { class: "badge " + (hk.state === "broken" ? "bad" : hk.state === "ok" ? "ok" : "warn"), id: "hook-state" }, hk.state),
    " reloads: " + hk.reloads + ", failures: " + hk.failures + (hk.lastReload ? ", last reload " + ts(hk.lastReload) : "") +
    (hk.brokenSince ? ", broken since " + ts(hk.brokenSince) + " (running on the last good plan)" : ""))];
  if (hk.diagnostics.length) nodes.push(el("pre", { class: "diag", id: "hook-diagnostics" }, hk.diagnostics.join("\n")));
  if (hk.isolation.length) nodes.push(el("pre", { class: "muted", id: "hook-isolation" }, "hook worker isolation:\n" + hk.isolation.join("\n")));
  replace("hooks", ...nodes);
  const streams = h.streams || [];
  if (streams.length) {
    const bytes = b => b == null ? "" : b < 1024 ? b + " B" : b < 1048576 ? (b / 1024).toFixed(1) + " KiB" : (b / 1048576).toFixed(1) + " MiB";
    replace("streams", table(["flow", "phase", "since", "lanes", "applied LSN", "lag", "lag (s)", "changes", "restarts", "error"],
      streams.map(x => [x.flow, el("span", { class: "badge " + (x.phase === "streaming" ? "ok" : x.phase === "retrying" ? "bad" : "warn") }, x.phase), ts(x.since),
        x.lanes, x.appliedLsn || "", bytes(x.lagBytes), x.lagSeconds == null ? "" : x.lagSeconds.toFixed(3), x.changesApplied, x.restarts,
        x.lastError ? x.lastError + (x.retryAt ? " (again at " + ts(x.retryAt) + ")" : "") : ""]),
      i => streams[i].phase === "retrying" ? "failed" : ""));
  }
  const c = h.cluster;
  if (c) {
    document.getElementById("cluster-section").hidden = false;
    document.getElementById("cluster-name").textContent = (c.clusterId || "") + (c.server ? " in " + c.server : "");
    const nodes = [el("p", {}, c.aliveMembers + " members alive, " + c.members.reduce((n, m) => n + m.replicas, 0) + " replicas running, " + c.failovers + " failovers")];
    if (c.error) nodes.push(el("p", { class: "diag" }, "cannot read the cluster: " + c.error));
    if (c.members.length) nodes.push(table(["member", "silo", "cores", "region", "state", "replicas"],
      c.members.map(m => [m.name, m.silo, m.cores, m.region || "", m.alive ? "alive" : "not seen", m.replicas]), i => c.members[i].alive ? "" : "failed"));
    replace("cluster", ...nodes);
  }
  if (h.planDiff.length) {
    replace("diff", table(["at", "plan", "change"], h.planDiff.slice().reverse().map(d => [ts(d.at), "v" + d.planVersion, el("code", {}, d.line)])));
  }
}
function renderPlan(p) {
  if (p.status !== 200) { replace("plan", el("p", { class: "muted" }, p.body.error || "no plan yet")); return; }
  const plan = p.body;
  const nodes = [];
  if (plan.machine) nodes.push(el("p", { class: "muted" }, "machine: " + props(plan.machine)));
  for (const f of plan.flows || []) {
    const title = "flow " + f.name + (f.parent && f.parent !== f.name ? " (replica of " + f.parent + ")" : "") +
      (f.totalReplicas != null ? " — replica " + f.replicaId + " of " + f.totalReplicas : "");
    nodes.push(el("h3", { class: "flow" }, title));
    if (f.props && Object.keys(f.props).length) nodes.push(el("p", {}, "props: ", el("code", {}, props(f.props))));
    nodes.push(table(["pipeline", "parent", "table", "index", "partition", "props"],
      (f.pipelines || []).map(pl => [
        el("span", { class: "pipeline" }, pl.name), pl.parent, tableName(pl.table), pl.index,
        pl.partition ? pl.partition.start + " – " + pl.partition.end + " (" + (pl.partition.index + 1) + "/" + pl.partition.count + ")" : "",
        el("code", {}, props(pl.props))])));
  }
  if (!nodes.length) nodes.push(el("p", { class: "muted" }, "the plan has no flows"));
  replace("plan", ...nodes);
}
function renderRuns(r) {
  const runs = r.body.runs || [];
  if (!runs.length) { replace("runs", el("p", { class: "muted" }, "no run finished yet")); return; }
  replace("runs", table(["flow", "started", "duration", "outcome", "rows", "docs", "docs/s", "dead letters", "retries", "plan", "error"],
    runs.map(x => [x.flow, ts(x.started), x.durationSeconds.toFixed(1) + " s", x.outcome, x.rows, x.docsIndexed, x.docsPerSecond.toFixed(1), x.deadLetters, x.retries, "v" + x.planVersion, x.error || ""]),
    i => runs[i].outcome === "failed" ? "failed" : ""));
}
async function refresh() {
  try {
    const [h, p, r] = await Promise.all([getJson("/healthz"), getJson("/plan"), getJson("/runs")]);
    renderHealth(h.body);
    document.getElementById("plan-version").textContent = h.body.planVersion ? "(version " + h.body.planVersion + ")" : "";
    renderPlan(p);
    renderRuns(r);
    document.getElementById("updated").textContent = "Updated " + new Date().toISOString() + ".";
  } catch (e) {
    const badge = document.getElementById("health");
    badge.textContent = "unreachable";
    badge.className = "badge bad";
    document.getElementById("updated").textContent = "Last refresh failed: " + e + ".";
  }
}
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
""";
}
