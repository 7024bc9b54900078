using EtlFunnel.Cli.Commands;
using EtlFunnel.Cli.Hosting;
using EtlFunnel.Runtime.Hooks;
using Serilog;
using Serilog.Events;
using Serilog.Extensions.Logging;
using Spectre.Console;
using Spectre.Console.Cli;

namespace EtlFunnel.Cli;

/// <summary>The <c>etlfunnel</c> command, runnable in-process with any writers (tests) or the real console (Program).</summary>
internal static class CliApp
{
    public static async Task<int> RunAsync(
        string[] args,
        TextWriter stdout,
        TextWriter stderr,
        HookLoader? hookLoader = null,
        Func<string, string?>? environment = null,
        CancellationToken cancellationToken = default)
    {
        var verbose = args.Contains("--verbose") || args.Contains("-v");
        var sink = new TextWriterSink(stderr, json: LogFormatOf(args) == "json", stackTraces: verbose);
        using var logger = new LoggerConfiguration()
            .MinimumLevel.Is(verbose ? LogEventLevel.Debug : LogEventLevel.Information)
            // The Generic Host's own lifecycle lines are noise at the default level.
            .MinimumLevel.Override("Microsoft", verbose ? LogEventLevel.Debug : LogEventLevel.Warning)
            .WriteTo.Sink(sink)
            .CreateLogger();
        using var loggerFactory = new SerilogLoggerFactory(logger, dispose: false);
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(stdout),
            Ansi = ReferenceEquals(stdout, Console.Out) ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = ReferenceEquals(stdout, Console.Out) ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
        });
        // Tables into a file or pipe (or a test's writer) should not wrap at the 80 columns Spectre assumes there.
        if (!ReferenceEquals(stdout, Console.Out) || Console.IsOutputRedirected)
        {
            console.Profile.Width = PipedWidth(environment ?? Environment.GetEnvironmentVariable);
        }

        CliContext? self = null;
        var context = new CliContext
        {
            Out = stdout,
            Err = stderr,
            Console = console,
            Log = logger,
            LoggerFactory = loggerFactory,
            LoadHooks = hookLoader ?? ((directory, ct) => HostedHooks.LoadAsync(directory, self!.HookSettings, ct)),
            Environment = environment ?? Environment.GetEnvironmentVariable,
            LiveConsole = ReferenceEquals(stdout, Console.Out) && !Console.IsOutputRedirected ? AnsiConsole.Create(new AnsiConsoleSettings()) : null,
            TerminalLog = ReferenceEquals(stderr, Console.Error) && !Console.IsErrorRedirected ? sink : null,
        };

        self = context;
        StartupTrace.Mark("logger and console ready");
        var app = new CommandApp();
        app.Configure(config =>
        {
            config.SetApplicationName("etlfunnel");
            config.SetApplicationVersion(Version);
            config.ConfigureConsole(console);
            config.UseStrictParsing();
            config.Settings.Registrar.RegisterInstance(context);
            config.SetExceptionHandler((ex, _) =>
            {
                if (ex is CommandParseException or CommandRuntimeException)
                {
                    stderr.WriteLine($"error: {ex.Message}");
                    stderr.WriteLine("Run 'etlfunnel --help' (or '<command> --help') for usage.");
                    return ExitCodes.Usage;
                }

                stderr.WriteLine($"error: {ex.GetType().Name}: {ex.Message}");
                stderr.WriteLine(verbose ? ex.ToString() : "(run with -v for the stack trace)");
                return ExitCodes.Failure;
            });

            config.AddCommand<PlanCommand>("plan")
                .WithDescription("Discover the flows' tables, run the orchestration hooks and print the execution plan (nothing runs).")
                .WithExample("plan", "--config", "samples/quickstart/flows.yaml", "--machine", "samples/regions/eu.yaml")
                .WithExample("plan", "--config", "flows.yaml", "--format", "json");
            config.AddCommand<RunCommand>("run")
                .WithDescription("Plan as 'plan' does, then sync every pipeline replica into Elasticsearch or NDJSON files; prints a report.")
                .WithExample("run", "--config", "samples/quickstart/flows.yaml", "--hooks", "hooks")
                .WithExample("run", "--config", "flows.yaml", "--mode", "incremental", "--report", "report.json");
            config.AddCommand<WatchCommand>("watch")
                .WithDescription("Run every flow on a schedule, reload the hooks when they change, serve status/health/metrics on loopback.")
                .WithExample("watch", "--config", "flows.yaml", "--hooks", "hooks", "--interval", "5m", "--status-url", "http://127.0.0.1:9464");
            config.AddCommand<WorkerCommand>("worker")
                .WithDescription("Join a cluster (Orleans, membership in PostgreSQL) and run the pipeline replicas 'run --cluster' hands it (docs/cluster.md).")
                .WithExample("worker", "--cluster", "postgres://etl@db:5432/etlstate", "--config", "flows.yaml", "--region", "EU", "--label", "disk=ssd");
            config.AddBranch("cluster", cluster =>
            {
                cluster.SetDescription("Look at a cluster of workers (docs/cluster.md).");
                cluster.AddCommand<ClusterStatusCommand>("status")
                    .WithDescription("The cluster's members (cores, memory, region, labels, last heartbeat), the replicas each owns now and the failovers, from its state database.")
                    .WithExample("cluster", "status", "--cluster", "postgres://etl@db:5432/etlstate")
                    .WithExample("cluster", "status", "--cluster", "postgres://etl@db:5432/etlstate", "--format", "json");
            });
            config.AddBranch("slots", slots =>
            {
                slots.SetDescription("The CDC flows' logical replication slots.");
                slots.AddCommand<SlotsListCommand>("list")
                    .WithDescription("List the logical slots of the config's source databases: owning flow, active, restart/confirmed LSN, lag bytes, wal_status.")
                    .WithExample("slots", "list", "--config", "flows.yaml");
                slots.AddCommand<SlotsDropCommand>("drop")
                    .WithDescription("Drop a CDC flow's slot and publication (releases the WAL it holds; the next run takes a new snapshot).")
                    .WithExample("slots", "drop", "orders", "--config", "flows.yaml");
            });
            config.AddBranch("hooks", hooks =>
            {
                hooks.SetDescription("Work with the orchestration hooks folder.");
                hooks.AddCommand<HooksCheckCommand>("check")
                    .WithDescription("Compile and policy-check every hook; print each diagnostic as file(line,col): error ID: message.")
                    .WithExample("hooks", "check", "--hooks", "./hooks");
                hooks.AddCommand<HooksInitCommand>("init")
                    .WithDescription("Write hooks.csproj and a copy of the contract with its docs into the hooks folder, so C# editors complete and document .csx hooks.")
                    .WithExample("hooks", "init", "hooks");
                hooks.AddCommand<HooksTestCommand>("test")
                    .WithDescription("Plan with the flow and pipeline hooks offline (--machine, --stats or --config) and run the folder's *.test.csx cases; " +
                        "with --table, run the transformers on real rows and print before/after. Exit 1 on a hook error or a failed case/row.")
                    .WithExample("hooks", "test", "--hooks", "hooks", "--machine", "samples/regions/eu.yaml", "--stats", "samples/hook-tests/stats.yaml")
                    .WithExample("hooks", "test", "--config", "flows.yaml", "--table", "shop.products", "--limit", "10");
            });
        });

        StartupTrace.Mark("commands configured");
        if (LogFormatOf(args) is { } format && format is not ("text" or "json"))
        {
            await stderr.WriteLineAsync($"error: --log-format '{format}' is not a log format; use --log-format text (the default) or --log-format json").ConfigureAwait(false);
            return ExitCodes.Usage;
        }

        var exit = await app.RunAsync(args, cancellationToken).ConfigureAwait(false);
        StartupTrace.Mark("command finished");
        return exit;
    }

    /// <summary>The informational version (<c>0.1.0+&lt;commit&gt;</c> when built from git), what <c>etlfunnel --version</c> prints.</summary>
    public static string Version { get; } =
        typeof(CliApp).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion ?? "unknown";

    /// <summary>The value of <c>--log-format</c> (read before the command line is parsed: the logger exists first), or null.</summary>
    private static string? LogFormatOf(string[] args)
    {
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] == "--log-format")
            {
                return i + 1 < args.Length ? args[i + 1] : "";
            }

            if (args[i].StartsWith("--log-format=", StringComparison.Ordinal))
            {
                return args[i]["--log-format=".Length..];
            }
        }

        return null;
    }

    /// <summary>The width of output into a file or pipe: <c>COLUMNS</c> when set (the shell's width), else 240 so tables do not wrap at Spectre's 80.</summary>
    internal static int PipedWidth(Func<string, string?> environment) =>
        int.TryParse(environment("COLUMNS"), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var columns) && columns is > 0 and <= 10_000
            ? columns
            : 240;
}
