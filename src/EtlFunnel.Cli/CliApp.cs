using EtlFunnel.Cli.Commands;
using EtlFunnel.Cli.Hosting;
using Serilog;
using Serilog.Events;
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
        using var logger = new LoggerConfiguration()
            .MinimumLevel.Is(verbose ? LogEventLevel.Debug : LogEventLevel.Information)
            .WriteTo.Sink(new TextWriterSink(stderr))
            .CreateLogger();
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
            console.Profile.Width = 240;
        }

        CliContext? self = null;
        var context = new CliContext
        {
            Out = stdout,
            Err = stderr,
            Console = console,
            Log = logger,
            LoadHooks = hookLoader ?? ((directory, ct) => HostedHooks.LoadAsync(directory, self!.HookSettings, ct)),
            Environment = environment ?? Environment.GetEnvironmentVariable,
            LiveConsole = ReferenceEquals(stdout, Console.Out) && !Console.IsOutputRedirected ? AnsiConsole.Create(new AnsiConsoleSettings()) : null,
        };

        self = context;
        StartupTrace.Mark("logger and console ready");
        var app = new CommandApp();
        app.Configure(config =>
        {
            config.SetApplicationName("etlfunnel");
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
            config.AddBranch("hooks", hooks =>
            {
                hooks.SetDescription("Work with the orchestration hooks folder.");
                hooks.AddCommand<HooksCheckCommand>("check")
                    .WithDescription("Compile and policy-check every hook; print each diagnostic as file(line,col): error ID: message.")
                    .WithExample("hooks", "check", "--hooks", "./hooks");
            });
        });

        StartupTrace.Mark("commands configured");
        var exit = await app.RunAsync(args, cancellationToken).ConfigureAwait(false);
        StartupTrace.Mark("command finished");
        return exit;
    }
}
