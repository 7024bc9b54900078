using System.Text.Json.Nodes;
using EtlFunnel.Cli.Hosting;
using Serilog;
using Serilog.Events;
using Spectre.Console;

namespace EtlFunnel.Cli.Tests.Hosting;

public sealed class LogOutputTests
{
    private static string Log(bool json, bool verbose, Action<ILogger> write)
    {
        var err = new StringWriter();
        using (var logger = new LoggerConfiguration().MinimumLevel.Verbose().WriteTo.Sink(new TextWriterSink(err, json, verbose)).CreateLogger())
        {
            write(logger);
        }

        return err.ToString();
    }

    private static Exception Thrown()
    {
        try
        {
            throw new InvalidOperationException("connection refused\nby 127.0.0.1:5432");
        }
        catch (InvalidOperationException ex)
        {
            return ex;
        }
    }

    [Fact]
    public void Text_lines_start_with_a_timestamp_and_the_level()
    {
        var text = Log(json: false, verbose: false, l => l.Information("Planning for {Region}", "eu"));

        text.Should().MatchRegex(@"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3} [+-]\d{2}:\d{2} \[INF\] Planning for eu\r?\n$");
    }

    [Fact]
    public void A_retry_logged_with_its_exception_is_one_line_without_a_stack_trace_unless_verbose()
    {
        var quiet = Log(json: false, verbose: false, l => l.Warning(Thrown(), "Replica {Replica}: reconnecting (1/5)", "r0"));
        var verbose = Log(json: false, verbose: true, l => l.Warning(Thrown(), "Replica {Replica}: reconnecting (1/5)", "r0"));

        quiet.ReplaceLineEndings("\n").TrimEnd('\n').Should().NotContain("\n").And
            .EndWith("[WRN] Replica r0: reconnecting (1/5) (InvalidOperationException: connection refused by 127.0.0.1:5432)");
        verbose.Should().Contain("at EtlFunnel.Cli.Tests.Hosting.LogOutputTests.Thrown()");
    }

    [Fact]
    public void Json_format_is_one_parsable_object_per_line_with_time_level_and_rendered_message()
    {
        var text = Log(json: true, verbose: false, l =>
        {
            l.Information("Planning for {Region}", "eu");
            l.Error(Thrown(), "Flow {Flow} failed", "shop");
        });

        var lines = text.ReplaceLineEndings("\n").TrimEnd('\n').Split('\n');
        lines.Should().HaveCount(2);
        var first = JsonNode.Parse(lines[0])!;
        first["@t"]!.GetValue<string>().Should().NotBeNullOrEmpty();
        first["@m"]!.GetValue<string>().Should().Be("Planning for \"eu\"");
        first["Region"]!.GetValue<string>().Should().Be("eu");
        var second = JsonNode.Parse(lines[1])!;
        second["@l"]!.GetValue<string>().Should().Be(nameof(LogEventLevel.Error));
        second["@x"].Should().BeNull("no stack trace without -v");
        second["Error"]!.GetValue<string>().Should().Be("connection refused by 127.0.0.1:5432");
    }

    [Fact]
    public async Task An_unknown_log_format_exits_2_and_says_what_to_write()
    {
        var result = await Support.CliRunner.RunAsync(["plan", "--config", "flows.yaml", "--log-format", "xml"]);

        result.ExitCode.Should().Be(2);
        result.Err.Should().Contain("--log-format text (the default) or --log-format json");
    }

    [Fact]
    public async Task During_a_live_progress_display_log_lines_go_through_its_console_not_into_the_bars()
    {
        var err = new StringWriter();
        var terminal = new StringWriter();
        var live = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(terminal),
            Ansi = AnsiSupport.Yes,
            Interactive = InteractionSupport.Yes,
            ColorSystem = ColorSystemSupport.NoColors,
        });
        var sink = new TextWriterSink(err);
        using var logger = new LoggerConfiguration().WriteTo.Sink(sink).CreateLogger();

        using (sink.DivertTo(live))
        {
            await live.Progress().StartAsync(async display =>
            {
                var task = display.AddTask("shop");
                logger.Warning("Replica {Replica}: reconnecting (1/5)", "shop/r0");
                task.Value = 100;
                await Task.Yield();
            });
        }

        logger.Information("Run finished");

        err.ToString().Should().NotContain("reconnecting").And.Contain("[INF] Run finished", "after the display the log writes to stderr again");
        var screen = terminal.ToString();
        screen.Should().Contain("[WRN] Replica shop/r0: reconnecting (1/5)");
        screen.IndexOf("reconnecting", StringComparison.Ordinal).Should()
            .BeLessThan(screen.LastIndexOf("shop", StringComparison.Ordinal), "the line is written above the bars, which are redrawn after it");
    }
}
