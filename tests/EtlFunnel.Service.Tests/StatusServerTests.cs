using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using EtlFunnel.Service;
using EtlFunnel.Service.Tests.Support;
using EtlFunnel.Testing.Prometheus;

namespace EtlFunnel.Service.Tests;

public sealed partial class StatusServerTests : IAsyncLifetime
{
    private const string Diagnostic = "hooks/pipeline-split.csx(12,9): error EF0203: 'System.IO.File' is not allowed in hooks (file access)";

    private readonly ManualTimeProvider _time = new();
    private readonly ServiceState _state;
    private readonly HttpClient _http = new();
    private StatusServer _server = null!;

    public StatusServerTests() => _state = new ServiceState(_time);

    public async Task InitializeAsync()
    {
        _server = await StatusServer.StartAsync(new Uri("http://127.0.0.1:0"), _state, CancellationToken.None);
        _http.BaseAddress = _server.BoundUrl;
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _server.DisposeAsync();
    }

    [Fact]
    public void Port_zero_binds_a_free_loopback_port_and_reports_it()
    {
        _server.BoundUrl.Host.Should().Be("127.0.0.1");
        _server.BoundUrl.Port.Should().BeGreaterThan(0);
        _server.BoundUrl.AbsolutePath.Should().Be("/");
    }

    [Fact]
    public async Task Healthz_says_healthy_then_503_with_the_diagnostic_while_a_hook_is_broken_then_recovers()
    {
        _state.SetHooksOk();
        _state.SetPlan(SamplePlans.Plan(("orders", 1, ["orders"])), []);

        var ok = await _http.GetAsync("/healthz");
        ok.StatusCode.Should().Be(HttpStatusCode.OK);
        var okBody = JsonNode.Parse(await ok.Content.ReadAsStringAsync())!;
        okBody["status"]!.GetValue<string>().Should().Be("healthy");
        okBody["hooks"]!["state"]!.GetValue<string>().Should().Be("ok");

        _state.SetHooksBroken([Diagnostic]);
        var broken = await _http.GetAsync("/healthz");
        broken.StatusCode.Should().Be(HttpStatusCode.ServiceUnavailable);
        var body = JsonNode.Parse(await broken.Content.ReadAsStringAsync())!;
        body["status"]!.GetValue<string>().Should().Be("unhealthy");
        body["reasons"]!.AsArray().Should().ContainSingle().Which!.GetValue<string>().Should().Contain(Diagnostic);
        body["hooks"]!["state"]!.GetValue<string>().Should().Be("broken");
        body["hooks"]!["diagnostics"]!.AsArray().Select(d => d!.GetValue<string>()).Should().Equal(Diagnostic);
        body["hooks"]!["failures"]!.GetValue<long>().Should().Be(1);
        body["planVersion"]!.GetValue<long>().Should().Be(1, "the last good plan stays active");

        _state.SetHooksOk();
        (await _http.GetAsync("/healthz")).StatusCode.Should().Be(HttpStatusCode.OK);
    }

    [Fact]
    public async Task Healthz_lists_the_hook_workers_isolation_layers_and_none_when_hooks_run_in_process()
    {
        _state.SetHooksOk();
        var none = JsonNode.Parse(await _http.GetStringAsync("/healthz"))!;
        none["hooks"]!["isolation"]!.AsArray().Should().BeEmpty();

        _state.SetHookIsolation(["on  network: own network namespace", "off seccomp: no filter"]);
        var body = JsonNode.Parse(await _http.GetStringAsync("/healthz"))!;
        body["hooks"]!["isolation"]!.AsArray().Select(l => l!.GetValue<string>()).Should().Equal("on  network: own network namespace", "off seccomp: no filter");
    }

    [Fact]
    public async Task Healthz_is_503_while_the_last_run_of_a_flow_failed()
    {
        var t = _time.GetUtcNow();
        _state.RecordRun("customers", t, t.AddSeconds(3), FlowRunResult.Failed("ElasticsearchClientException: 429 Too Many Requests"), 1);

        var response = await _http.GetAsync("/healthz");

        response.StatusCode.Should().Be(HttpStatusCode.ServiceUnavailable);
        (await response.Content.ReadAsStringAsync()).Should().Contain("the last run of flow 'customers' failed").And.Contain("429 Too Many Requests");
    }

    [Fact]
    public async Task Plan_is_503_before_the_first_plan_then_serves_the_active_plan_json()
    {
        var none = await _http.GetAsync("/plan");
        none.StatusCode.Should().Be(HttpStatusCode.ServiceUnavailable);
        (await none.Content.ReadAsStringAsync()).Should().Contain("no plan yet");

        var plan = SamplePlans.Plan(("orders", 2, ["orders", "order_lines"]), ("customers", 1, ["customers"]));
        _state.SetPlan(plan, []);

        var response = await _http.GetAsync("/plan");
        response.StatusCode.Should().Be(HttpStatusCode.OK);
        response.Content.Headers.ContentType!.MediaType.Should().Be("application/json");
        var served = JsonNode.Parse(await response.Content.ReadAsStringAsync());
        JsonNode.DeepEquals(served, plan).Should().BeTrue("GET /plan serves the plan document unchanged");
    }

    [Fact]
    public async Task Runs_lists_recent_runs_newest_first_with_their_reports()
    {
        var t = _time.GetUtcNow();
        var report = new JsonObject { ["pipelines"] = new JsonArray(new JsonObject { ["name"] = "orders/orders", ["rows"] = 1200 }) };
        _state.RecordRun("orders", t, t.AddSeconds(4), new FlowRunResult(RunOutcome.Succeeded, 1200, 1198, 2, 5, null, report), 3);
        _state.RecordRun("customers", t.AddSeconds(10), t.AddSeconds(11), FlowRunResult.Failed("boom"), 3);

        using var doc = JsonDocument.Parse(await _http.GetStringAsync("/runs"));
        var runs = doc.RootElement.GetProperty("runs").EnumerateArray().ToList();

        runs.Select(r => r.GetProperty("flow").GetString()).Should().Equal("customers", "orders");
        runs[1].GetProperty("outcome").GetString().Should().Be("succeeded");
        runs[1].GetProperty("rows").GetInt64().Should().Be(1200);
        runs[1].GetProperty("docsIndexed").GetInt64().Should().Be(1198);
        runs[1].GetProperty("deadLetters").GetInt64().Should().Be(2);
        runs[1].GetProperty("retries").GetInt64().Should().Be(5);
        runs[1].GetProperty("docsPerSecond").GetDouble().Should().Be(299.5);
        runs[1].GetProperty("planVersion").GetInt64().Should().Be(3);
        runs[1].GetProperty("started").GetDateTimeOffset().Should().Be(t);
        runs[1].GetProperty("report").GetProperty("pipelines")[0].GetProperty("rows").GetInt32().Should().Be(1200);
        runs[0].GetProperty("outcome").GetString().Should().Be("failed");
        runs[0].GetProperty("error").GetString().Should().Be("boom");
        runs[0].GetProperty("report").ValueKind.Should().Be(JsonValueKind.Null);
    }

    [Fact]
    public async Task Metrics_is_prometheus_text_with_per_flow_counters_and_every_line_parses()
    {
        _state.SetHooksOk();
        _state.SetHooksBroken([Diagnostic]);
        _state.SetPlan(SamplePlans.Plan(("orders", 1, ["orders"]), ("cust\"omers", 1, ["customers"])), []);
        var t = _time.GetUtcNow();
        _state.RecordRun("orders", t, t.AddSeconds(2), new FlowRunResult(RunOutcome.Succeeded, 100, 90, 10, 3), 1);
        _state.RecordRun("orders", t, t.AddSeconds(10), new FlowRunResult(RunOutcome.Succeeded, 50, 50, 0, 1), 1);
        _state.RecordSkippedTick("orders");

        var response = await _http.GetAsync("/metrics");
        response.StatusCode.Should().Be(HttpStatusCode.OK);
        response.Content.Headers.ContentType!.MediaType.Should().Be("text/plain");
        var text = await response.Content.ReadAsStringAsync();

        text.Should().EndWith("\n");
        var samples = new Dictionary<string, double>();
        var types = new Dictionary<string, string>();
        foreach (var line in text.TrimEnd('\n').Split('\n'))
        {
            if (line.StartsWith("# HELP ", StringComparison.Ordinal) || line == "# EOF" || line.Length == 0)
            {
                continue;
            }

            var type = TypeLine().Match(line);
            if (type.Success)
            {
                types[type.Groups[1].Value] = type.Groups[2].Value;
                continue;
            }

            var sample = SampleLine().Match(line);
            sample.Success.Should().BeTrue($"'{line}' must be `name{{labels}} value [timestamp]`");
            var flow = FlowLabel().Match(sample.Groups["labels"].Value);
            var key = sample.Groups["name"].Value + (flow.Success ? $"{{flow=\"{flow.Groups[1].Value}\"}}" : "");
            samples[key] = double.Parse(sample.Groups["value"].Value, NumberStyles.Float, CultureInfo.InvariantCulture);
        }

        samples["etlfunnel_rows_synced_total{flow=\"orders\"}"].Should().Be(150);
        samples["etlfunnel_docs_indexed_total{flow=\"orders\"}"].Should().Be(140);
        samples["etlfunnel_dead_letters_total{flow=\"orders\"}"].Should().Be(10);
        samples["etlfunnel_retries_total{flow=\"orders\"}"].Should().Be(4);
        samples["etlfunnel_skipped_ticks_total{flow=\"orders\"}"].Should().Be(1);
        samples["etlfunnel_docs_per_second{flow=\"orders\"}"].Should().Be(5, "the last run indexed 50 docs in 10 s");
        samples["etlfunnel_rows_synced_total{flow=\"cust\\\"omers\"}"].Should().Be(0, "a planned flow shows up before its first run, label escaped");
        samples["etlfunnel_last_success_timestamp_seconds{flow=\"orders\"}"].Should().Be(t.AddSeconds(10).ToUnixTimeMilliseconds() / 1000.0);
        samples["etlfunnel_run_duration_seconds_count{flow=\"orders\"}"].Should().Be(2);
        samples["etlfunnel_run_duration_seconds_sum{flow=\"orders\"}"].Should().Be(12);
        samples["etlfunnel_hook_reloads_total"].Should().Be(2);
        samples["etlfunnel_hook_failures_total"].Should().Be(1);
        samples["etlfunnel_hooks_broken"].Should().Be(1);
        samples["etlfunnel_healthy"].Should().Be(0);
        samples["etlfunnel_build_info"].Should().Be(1);
        types["etlfunnel_rows_synced_total"].Should().Be("counter");
        types["etlfunnel_docs_per_second"].Should().Be("gauge");
        types["etlfunnel_run_duration_seconds"].Should().Be("histogram");
        types.Keys.Should().Contain(k => k.StartsWith("process_", StringComparison.Ordinal), "process metrics (OpenTelemetry.Instrumentation.Process)");
        types.Keys.Should().Contain(k => k.StartsWith("dotnet_", StringComparison.Ordinal), "runtime metrics (OpenTelemetry.Instrumentation.Runtime)");
    }

    [Fact]
    public async Task Cdc_lag_metrics_follow_the_stream_and_are_absent_while_it_does_not_stream()
    {
        _state.SetHooksOk();
        _state.SetPlan(SamplePlans.Plan(("orders", 2, ["orders"]), ("batch", 1, ["customers"])), []);
        _state.SetStream("orders", _ => new CdcStreamState("orders", StreamPhase.Streaming, _time.GetUtcNow()) { Lanes = 2, LagBytes = 4096, LagSeconds = 1.5 });

        var first = Samples(await _http.GetStringAsync("/metrics"));
        first["etlfunnel_cdc_lag_bytes{flow=\"orders\"}"].Should().Be(4096);
        first["etlfunnel_cdc_lag_seconds{flow=\"orders\"}"].Should().Be(1.5);
        first["etlfunnel_cdc_streaming{flow=\"orders\"}"].Should().Be(1);
        first["etlfunnel_cdc_lanes{flow=\"orders\"}"].Should().Be(2);
        first["etlfunnel_cdc_stream_restarts_total{flow=\"orders\"}"].Should().Be(0);
        first.Keys.Should().NotContain(k => k.StartsWith("etlfunnel_cdc_", StringComparison.Ordinal) && k.Contains("batch", StringComparison.Ordinal), "a scheduled flow has no stream");

        // Caught up after a restart with 3 lanes: the values move.
        _state.SetStream("orders", s => s! with { Lanes = 3, LagBytes = 56, LagSeconds = 0, Restarts = 1 });
        var second = Samples(await _http.GetStringAsync("/metrics"));
        second["etlfunnel_cdc_lag_bytes{flow=\"orders\"}"].Should().Be(56);
        second["etlfunnel_cdc_lag_seconds{flow=\"orders\"}"].Should().Be(0);
        second["etlfunnel_cdc_lanes{flow=\"orders\"}"].Should().Be(3);
        second["etlfunnel_cdc_stream_restarts_total{flow=\"orders\"}"].Should().Be(1);

        // A failed stream waiting for its retry has no lag to report.
        _state.SetStream("orders", s => s! with { Phase = StreamPhase.Retrying, LagBytes = null, LagSeconds = null, LastError = "source down" });
        var third = Samples(await _http.GetStringAsync("/metrics"));
        third.Keys.Should().NotContain("etlfunnel_cdc_lag_bytes{flow=\"orders\"}").And.NotContain("etlfunnel_cdc_lag_seconds{flow=\"orders\"}");
        third["etlfunnel_cdc_streaming{flow=\"orders\"}"].Should().Be(0);
    }

    /// <summary>Sample values by <c>name{flow="..."}</c> (or the bare name) from a Prometheus text exposition.</summary>
    private static Dictionary<string, double> Samples(string text)
    {
        var samples = new Dictionary<string, double>();
        foreach (var line in text.TrimEnd('\n').Split('\n'))
        {
            if (line.StartsWith('#') || line.Length == 0)
            {
                continue;
            }

            var sample = SampleLine().Match(line);
            sample.Success.Should().BeTrue($"'{line}' must be `name{{labels}} value [timestamp]`");
            var flow = FlowLabel().Match(sample.Groups["labels"].Value);
            samples[sample.Groups["name"].Value + (flow.Success ? $"{{flow=\"{flow.Groups[1].Value}\"}}" : "")] =
                double.Parse(sample.Groups["value"].Value, NumberStyles.Float, CultureInfo.InvariantCulture);
        }

        return samples;
    }

    [Fact]
    public async Task Metrics_pass_prometheus_promtool_check_metrics()
    {
        _state.SetHooksOk();
        _state.SetPlan(SamplePlans.Plan(("orders", 1, ["orders"])), []);
        _state.SetStream("orders", _ => new CdcStreamState("orders", StreamPhase.Streaming, _time.GetUtcNow()) { Lanes = 2, LagBytes = 4096, LagSeconds = 0.25, Restarts = 1 });
        var t = _time.GetUtcNow();
        _state.RecordRun("orders", t, t.AddSeconds(3), new FlowRunResult(RunOutcome.Succeeded, 10, 10, 0, 0), 1);
        var text = await _http.GetStringAsync("/metrics");

        var (exitCode, output) = await Promtool.CheckMetricsAsync(text);

        exitCode.Should().Be(0, $"promtool check metrics must accept /metrics:\n{output}\n--- /metrics ---\n{text}");
    }

    [Fact]
    public async Task On_one_machine_healthz_has_no_cluster_and_metrics_have_no_cluster_series()
    {
        var health = JsonDocument.Parse(await _http.GetStringAsync("/healthz")).RootElement;

        health.GetProperty("cluster").ValueKind.Should().Be(JsonValueKind.Null);
        (await _http.GetStringAsync("/metrics")).Should().NotContain("etlfunnel_cluster_");
    }

    [Fact]
    public async Task With_a_cluster_healthz_and_metrics_list_its_members_read_at_the_request_and_promtool_accepts_them()
    {
        var reads = 0;
        using var cluster = new CachedReading<ClusterView>(_ =>
        {
            Interlocked.Increment(ref reads);
            return Task.FromResult(new ClusterView("eu-prod", "db:5432/state",
                [new ClusterMemberView("w1", "10.0.0.1:11111@1", 4, "EU", true, 2), new ClusterMemberView("w2", "10.0.0.2:11111@1", 2, null, false, 1)], 3));
        }, TimeSpan.FromSeconds(1), _time);
        await using var server = await StatusServer.StartAsync("http://127.0.0.1:0", _state, CancellationToken.None, cluster: cluster);
        using var http = new HttpClient { BaseAddress = server.BoundUrl };
        reads.Should().Be(0, "nothing reads the cluster before a request");

        var health = JsonDocument.Parse(await http.GetStringAsync("/healthz")).RootElement.GetProperty("cluster");
        health.GetProperty("clusterId").GetString().Should().Be("eu-prod");
        health.GetProperty("aliveMembers").GetInt32().Should().Be(1);
        health.GetProperty("failovers").GetInt64().Should().Be(3);
        health.GetProperty("members").EnumerateArray().Select(m => (m.GetProperty("name").GetString(), m.GetProperty("replicas").GetInt32(), m.GetProperty("alive").GetBoolean()))
            .Should().Equal(("w1", 2, true), ("w2", 1, false));

        var text = await http.GetStringAsync("/metrics");
        text.Should().Contain("etlfunnel_cluster_members").And.MatchRegex(@"etlfunnel_cluster_replicas\{[^}]*member=""w1""[^}]*\} 2")
            .And.MatchRegex(@"etlfunnel_cluster_failovers_total(\{[^}]*\})? 3").And.MatchRegex(@"etlfunnel_cluster_status_up(\{[^}]*\})? 1");
        reads.Should().Be(1, "requests within a second share one reading");
        var (exitCode, output) = await Promtool.CheckMetricsAsync(text);
        exitCode.Should().Be(0, $"promtool check metrics must accept /metrics:\n{output}\n--- /metrics ---\n{text}");
    }

    [Fact]
    public async Task The_page_is_one_self_contained_html_document()
    {
        var response = await _http.GetAsync("/");

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        response.Content.Headers.ContentType!.MediaType.Should().Be("text/html");
        var html = await response.Content.ReadAsStringAsync();
        html.Should().StartWith("<!DOCTYPE html>");
        html.Should().NotMatchRegex("(src|href)=\"(https?:)?//", "the page loads nothing from elsewhere");
        html.Should().NotContain("innerHTML", "hook names and diagnostics are rendered as text, never as markup");
    }

    [Fact]
    public async Task Unknown_paths_are_404()
    {
        (await _http.GetAsync("/nope")).StatusCode.Should().Be(HttpStatusCode.NotFound);
    }

    [Theory]
    [InlineData("http://0.0.0.0:8080", "'0.0.0.0' is not a loopback address")]
    [InlineData("http://192.0.2.10:8080", "'192.0.2.10' is not a loopback address")]
    [InlineData("http://example.com:8080", "'example.com' is not a loopback address")]
    [InlineData("https://127.0.0.1:8443", "must use http")]
    [InlineData("http://127.0.0.1", "has no port")]
    [InlineData("http://127.0.0.1:8080/status", "must not have a path")]
    [InlineData("127.0.0.1:8080", "use --status-url http://127.0.0.1:PORT")]
    public async Task A_status_url_that_is_not_plain_http_on_loopback_is_refused_with_a_clear_error(string url, string reason)
    {
        var act = () => StatusServer.StartAsync(url, _state, CancellationToken.None);

        (await act.Should().ThrowAsync<FormatException>()).Which.Message.Should()
            .Contain($"--status-url '{url}'").And.Contain(reason).And.Contain("http://127.0.0.1:PORT");
    }

    [Theory]
    [InlineData("http://127.0.0.1:9100", "127.0.0.1", 9100)]
    [InlineData("http://127.5.6.7:0", "127.5.6.7", 0)]
    [InlineData("http://localhost:80", "127.0.0.1", 80)]
    [InlineData("http://[::1]:9100", "::1", 9100)]
    public void Loopback_status_urls_are_accepted(string url, string address, int port)
    {
        var (a, p) = StatusServer.ParseUrl(url);

        a.ToString().Should().Be(address);
        p.Should().Be(port);
    }

    [Fact]
    public async Task A_port_in_use_is_reported_with_the_url_and_what_to_do()
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var port = ((IPEndPoint)taken.LocalEndpoint).Port;
        var url = $"http://127.0.0.1:{port}";

        var act = () => StatusServer.StartAsync(url, _state, CancellationToken.None);

        (await act.Should().ThrowAsync<IOException>()).Which.Message.Should()
            .Contain($"--status-url '{url}'").And.Contain("pick another port or 0");
    }

    [GeneratedRegex(@"^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$")]
    private static partial Regex TypeLine();

    [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?<labels>\{(?:[a-zA-Z_][a-zA-Z0-9_]*=""(?:[^""\\\n]|\\[\\""n])*"",?)*\})? (?<value>[-+]?(?:[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|Inf|NaN))(?: [0-9]+)?$")]
    private static partial Regex SampleLine();

    [GeneratedRegex(@"(?:^\{|,)flow=""((?:[^""\\]|\\.)*)""")]
    private static partial Regex FlowLabel();
}
