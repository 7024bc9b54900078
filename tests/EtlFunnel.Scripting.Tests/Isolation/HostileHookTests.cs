using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using EtlFunnel.Execution.Models;
using EtlFunnel.Scripting.Tests.Support;
using EtlFunnel.Testing.Postgres;
using Npgsql;

namespace EtlFunnel.Scripting.Tests.Isolation;

/// <summary>
/// Hostile hooks (TestFixtures/Hostile) through the real host and worker. The semantic policy refuses most of them at
/// compile time; to prove the OS layers on their own, the runtime tests compile the same files with the policy off
/// (<see cref="HookHostOptions.SkipSemanticPolicy"/>) and assert that nothing escaped the worker.
/// </summary>
public sealed class HostileHookTests
{
    private static string Fixture(string name) => Path.Combine(Fixtures.Folder("Hostile"), name);

    private static OrchestratorEntityDef Named(string name) => Props.Entity(name);

    private static async Task<(HookHost Host, ConcurrentQueue<string> Output)> LoadAsync(TempHooks hooks, bool policy = false, TimeSpan? budget = null, bool compileOnly = false, HookIsolation isolation = HookIsolation.Sandbox)
    {
        var output = new ConcurrentQueue<string>();
        var host = await HookHost.LoadAsync(Fixtures.Options(hooks.Path, hooks.Cache) with
        {
            SkipSemanticPolicy = !policy,
            TimeBudget = budget ?? TimeSpan.FromSeconds(10),
            WorkerOutput = output.Enqueue,
            CompileOnly = compileOnly,
            Isolation = isolation,
        });
        host.Diagnostics.Where(d => d.Severity == "error").Should().BeEmpty();
        return (host, output);
    }

    private static async Task<HookInvocationException> FailsAsync(HookHost host, string hook, params OrchestratorEntityDef[] entities)
    {
        var act = () => host.FlowHooks.Single(h => h.Name == hook).InvokeAsync(Props.Of(2, entities));
        return (await act.Should().ThrowAsync<HookInvocationException>()).Which;
    }

    private static async Task StillPlansAsync(HookHost host)
        => (await host.FlowHooks.Single(h => h.Name == "flow-by-cores.csx").InvokeAsync(Props.Of(2, Props.Entity("catalog")))).Should().HaveCount(2);

    [Fact]
    public async Task The_policy_refuses_every_hostile_fixture_at_its_marked_lines()
    {
        await using var host = await HookHost.LoadAsync(Fixtures.Options(Fixtures.Folder("Hostile")));

        foreach (var file in Directory.EnumerateFiles(Fixtures.Folder("Hostile"), "*.csx"))
        {
            var refused = host.Diagnostics.Where(d => d.File == file && d.Severity == "error").Select(d => (d.Line, d.Id)).ToList();
            if (Fixtures.Expectations(file) is { Count: > 0 } expected)
            {
                refused.Should().Contain(expected, Path.GetFileName(file));
            }
        }

        host.FlowHooks.Select(h => h.Name).Should().BeEquivalentTo(["allocate-8gb.csx", "stack-overflow.csx"], "only these two pass the policy: the worker's limits must stop them");
    }

    [Fact]
    public async Task Every_isolation_layer_is_active_in_the_bubblewrap_worker()
    {
        using var hooks = new TempHooks();
        hooks.CopyFixture("Seed/flow-by-cores.csx");
        var (host, _) = await LoadAsync(hooks, policy: true);
        await using var _1 = host;

        host.IsolationLayers.Select(l => l.Name).Should().Equal("worker", "rlimits", "memory", "network", "filesystem", "no_new_privs", "environment", "processes");
        host.IsolationLayers.Should().OnlyContain(l => l.Active, string.Join("\n", host.IsolationLayers));
        host.IsolationLayers.Single(l => l.Name == "worker").Detail.Should().Contain("bubblewrap").And.NotContain($"process {Environment.ProcessId} ");
    }

    [Fact]
    public async Task Sql_through_the_engine_object_reaches_no_database_and_the_table_is_unchanged()
    {
        var server = await PostgresServer.GetAsync();
        var database = await server.CreateDatabaseAsync("hostile");
        await PostgresServer.ExecuteAsync(database, "CREATE TABLE victims (id int); INSERT INTO victims SELECT generate_series(1, 3)");
        var builder = new NpgsqlConnectionStringBuilder(database);
        await using var dataSource = NpgsqlDataSource.Create(database);
        var target = $"127.0.0.1:{builder.Port}/{builder.Database}/victims";
        var entity = new OrchestratorEntityDef { Name = target, SourceDBConn = new NpgsqlTableEngine(dataSource, "victims"), DestDBConn = new NpgsqlTableEngine(dataSource, "victims") };
        using var hooks = new TempHooks();
        hooks.CopyFixture("Hostile/sql-through-engine.csx");

        // Control: in the host process (isolation none, policy off) the same hook finds the data source.
        await using (var inProcess = await HookHost.LoadAsync(Fixtures.Options(hooks.Path, hooks.Cache) with { SkipSemanticPolicy = true, Isolation = HookIsolation.None }))
        {
            inProcess.Diagnostics.Where(d => d.Severity == "error").Should().BeEmpty();
            (await FailsAsync(inProcess, "sql-through-engine.csx", entity)).Message.Should().Contain("FOUND A DATA SOURCE: Npgsql");
        }

        var (host, _) = await LoadAsync(hooks);
        await using var _1 = host;
        var failure = await FailsAsync(host, "sql-through-engine.csx", entity);

        failure.Message.Should().NotContain("FOUND A DATA SOURCE").And.NotContain("SQL RAN");
        failure.InnerException.Should().BeOfType<HookWorkerException>().Which.TypeName.Should().Be("System.Net.Sockets.SocketException");
        failure.File.Should().Be(hooks.Path + "/sql-through-engine.csx");
        failure.Line.Should().Be(25, "the connect to the database's port is what failed: no network in the worker");
        await using var count = dataSource.CreateCommand("SELECT count(*) FROM victims");
        ((long)(await count.ExecuteScalarAsync())!).Should().Be(3, "the table is unchanged");
    }

    [Fact]
    public async Task A_password_in_the_environment_or_a_file_outside_the_hooks_folder_cannot_be_read()
    {
        using var hooks = new TempHooks();
        hooks.CopyFixture("Hostile/password-read.csx");
        var secretDir = Path.Combine(Path.GetTempPath(), "etlfunnel-secret-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(secretDir);
        var secretFile = Path.Combine(secretDir, "pgpass");
        var secret = "s3cret-" + Guid.NewGuid().ToString("N");
        await File.WriteAllTextAsync(secretFile, secret);
        var variable = "ETLFUNNEL_TEST_SECRET_" + Guid.NewGuid().ToString("N");
        Environment.SetEnvironmentVariable(variable, secret);
        try
        {
            var (host, _) = await LoadAsync(hooks);
            await using var _1 = host;

            var failure = await FailsAsync(host, "password-read.csx", Named(secretFile), Named(variable));

            failure.Message.Should().NotContain(secret);
            failure.InnerException.Should().BeOfType<HookWorkerException>().Which.TypeName.Should().Be("System.IO.DirectoryNotFoundException", "the folder does not exist in the worker's file system");
            failure.Line.Should().Be(8);
        }
        finally
        {
            Environment.SetEnvironmentVariable(variable, null);
            Directory.Delete(secretDir, recursive: true);
        }
    }

    [Fact]
    public async Task The_environment_of_the_worker_is_empty_unless_a_variable_is_listed()
    {
        using var hooks = new TempHooks();
        hooks.Write("env.csx", "List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param) => new List<OrchestratorTune> { new OrchestratorTune { ParentEntityName = \"a\", NewEntityName = \"a\", ReplicaProps = new Dictionary<string, object> { [\"replica_id\"] = 0, [\"total_replicas\"] = 1, [\"listed\"] = Environment.GetEnvironmentVariable(\"ETLFUNNEL_TEST_LISTED\"), [\"other\"] = Environment.GetEnvironmentVariable(\"ETLFUNNEL_TEST_UNLISTED\"), [\"count\"] = Environment.GetEnvironmentVariables().Count } } };\n");
        Environment.SetEnvironmentVariable("ETLFUNNEL_TEST_LISTED", "yes");
        Environment.SetEnvironmentVariable("ETLFUNNEL_TEST_UNLISTED", "no");
        try
        {
            await using var host = await HookHost.LoadAsync(Fixtures.Options(hooks.Path, hooks.Cache) with { WorkerEnvironment = ["ETLFUNNEL_TEST_LISTED"] });

            var props = (await host.FlowHooks.Single().InvokeAsync(Props.Of(1, Props.Entity("a"))))[0].ReplicaProps;

            props["listed"].Should().Be("yes");
            props["other"].Should().BeNull();
            ((int)props["count"]!).Should().BeLessThan(8, "only the listed variable and the runtime's DOTNET_* settings");
        }
        finally
        {
            Environment.SetEnvironmentVariable("ETLFUNNEL_TEST_LISTED", null);
            Environment.SetEnvironmentVariable("ETLFUNNEL_TEST_UNLISTED", null);
        }
    }

    [Fact]
    public async Task Files_cannot_be_written_outside_or_inside_the_hooks_folder()
    {
        using var hooks = new TempHooks();
        hooks.CopyFixture("Hostile/file-write.csx");
        var outside = Path.Combine(Path.GetTempPath(), "etlfunnel-owned-" + Guid.NewGuid().ToString("N"));
        var inside = Path.Combine(hooks.Path, "owned.txt");
        var (host, _) = await LoadAsync(hooks);
        await using var _1 = host;

        var failure = await FailsAsync(host, "file-write.csx", Named(outside), Named(inside));

        failure.Message.Should().Contain("writes failed").And.Contain("Read-only file system");
        File.Exists(outside).Should().BeFalse("the worker's /tmp is its own");
        File.Exists(inside).Should().BeFalse("the hooks folder is mounted read-only");
    }

    [Fact]
    public async Task A_connection_to_a_loopback_listener_never_arrives()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        using var hooks = new TempHooks();
        hooks.CopyFixture("Hostile/network.csx");
        var (host, _) = await LoadAsync(hooks);
        await using var _1 = host;

        var failure = await FailsAsync(host, "network.csx", Named(port.ToString(System.Globalization.CultureInfo.InvariantCulture)));

        failure.Message.Should().NotContain("CONNECTED");
        failure.InnerException.Should().BeOfType<HookWorkerException>().Which.TypeName.Should().Be("System.Net.Sockets.SocketException");
        listener.Pending().Should().BeFalse("the listener got no connection");
    }

    [Fact]
    public async Task A_shell_cannot_be_started()
    {
        using var hooks = new TempHooks();
        hooks.CopyFixture("Hostile/fork-exec.csx");
        var marker = Path.Combine(Path.GetTempPath(), "etlfunnel-shell-" + Guid.NewGuid().ToString("N"));
        var (host, _) = await LoadAsync(hooks);
        await using var _1 = host;

        var failure = await FailsAsync(host, "fork-exec.csx", Named(marker));

        failure.Message.Should().NotContain("SHELL RAN");
        failure.InnerException.Should().BeOfType<HookWorkerException>().Which.TypeName.Should().Be("System.ComponentModel.Win32Exception", "there is no /bin/sh in the worker's file system");
        File.Exists(marker).Should().BeFalse();
    }

    [Fact]
    public async Task A_stack_overflow_kills_only_the_worker_and_the_next_call_runs_in_a_new_one()
    {
        using var hooks = new TempHooks();
        hooks.CopyFixture("Hostile/stack-overflow.csx");
        hooks.CopyFixture("Seed/flow-by-cores.csx");
        var (host, _) = await LoadAsync(hooks, policy: true);
        await using var _1 = host;

        var failure = await FailsAsync(host, "stack-overflow.csx", Named("a"));

        failure.Message.Should().Contain("worker killed: it exited with code").And.Contain("stack overflow");
        await StillPlansAsync(host);
        host.WorkerStarts.Should().Be(2);
    }

    [Fact]
    public async Task An_async_void_crash_kills_only_the_worker()
    {
        using var hooks = new TempHooks();
        hooks.CopyFixture("Hostile/async-void.csx");
        hooks.CopyFixture("Seed/flow-by-cores.csx");
        var (host, _) = await LoadAsync(hooks);
        await using var _1 = host;

        var failure = await FailsAsync(host, "async-void.csx", Named("a"));

        failure.Message.Should().Contain("worker killed").And.Contain("unhandled exception").And.Contain("boom from async void");
        await StillPlansAsync(host);
    }

    [Fact]
    public async Task An_8_GB_allocation_fails_in_the_worker_at_its_line()
    {
        using var hooks = new TempHooks();
        hooks.CopyFixture("Hostile/allocate-8gb.csx");
        hooks.CopyFixture("Seed/flow-by-cores.csx");
        var (host, _) = await LoadAsync(hooks, policy: true);
        await using var _1 = host;

        var failure = await FailsAsync(host, "allocate-8gb.csx", Named("a"));

        failure.InnerException.Should().BeOfType<HookWorkerException>().Which.TypeName.Should().Be("System.OutOfMemoryException");
        failure.Line.Should().Be(4);
        await StillPlansAsync(host);
    }

    [Fact]
    public async Task An_endless_finalizer_gets_the_worker_killed()
    {
        using var hooks = new TempHooks();
        hooks.CopyFixture("Hostile/finalizer-loop.csx");
        hooks.CopyFixture("Seed/flow-by-cores.csx");
        var (host, _) = await LoadAsync(hooks);
        await using var _1 = host;

        var failure = await FailsAsync(host, "finalizer-loop.csx", Named("a"));

        failure.Message.Should().Contain("worker killed: a finalizer did not return");
        await StillPlansAsync(host);
        host.WorkerStarts.Should().Be(2);
    }

    [Fact]
    public async Task An_uninterruptible_hook_gets_the_worker_killed_after_its_budget()
    {
        using var hooks = new TempHooks();
        hooks.CopyFixture("Hostile/sleep-forever.csx");
        hooks.CopyFixture("Seed/flow-by-cores.csx");
        var (host, _) = await LoadAsync(hooks, budget: TimeSpan.FromMilliseconds(300));
        await using var _1 = host;

        var failure = await FailsAsync(host, "sleep-forever.csx", Named("a"));

        failure.Message.Should().Contain("ran past its time budget of 0.3 s").And.Contain("worker killed");
        await StillPlansAsync(host);
        host.WorkerStarts.Should().BeGreaterThan(1);
    }

    [Fact]
    public async Task Background_work_after_the_call_has_no_effect_outside_the_worker()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        using var hooks = new TempHooks();
        hooks.CopyFixture("Hostile/background.csx");
        var late = Path.Combine(hooks.Path, "late.txt");
        var (host, output) = await LoadAsync(hooks);
        await using var _1 = host;

        (await host.FlowHooks.Single().InvokeAsync(Props.Of(1, Named(late), Named(port)))).Should().ContainSingle();
        var deadline = Task.Delay(TimeSpan.FromSeconds(30));
        while (!output.Contains("background attempt 3") && !deadline.IsCompleted)
        {
            await Task.Delay(20);
        }

        output.Should().Contain("background attempt 3", "the background loop really ran after the call returned");
        File.Exists(late).Should().BeFalse();
        listener.Pending().Should().BeFalse();
    }

    [Fact]
    public async Task Checking_hooks_never_runs_a_module_initializer()
    {
        using var hooks = new TempHooks();
        hooks.CopyFixture("Hostile/module-initializer.csx");

        var (checking, checkOutput) = await LoadAsync(hooks, compileOnly: true);
        checking.FlowHooks.Select(h => h.Name).Should().Equal("module-initializer.csx");
        await checking.DisposeAsync();
        checkOutput.Should().NotContain("MODULE INITIALIZER RAN");

        // Control: loaded and called for real, the initializer does run (in the worker).
        var (running, runOutput) = await LoadAsync(hooks);
        await running.FlowHooks.Single().InvokeAsync(Props.Of(1, Named("a")));
        await running.DisposeAsync();
        runOutput.Should().Contain("MODULE INITIALIZER RAN");
    }
}
