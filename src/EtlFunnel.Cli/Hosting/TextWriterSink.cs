using Serilog.Core;
using Serilog.Events;
using Serilog.Formatting;
using Serilog.Formatting.Compact;
using Serilog.Formatting.Display;
using Spectre.Console;

namespace EtlFunnel.Cli.Hosting;

/// <summary>
/// Writes log events to the command's stderr writer, so stdout stays clean for <c>--format json</c>: one line per event
/// with a timestamp (<c>--log-format text</c>) or one JSON object per line (<c>--log-format json</c>, Serilog's compact
/// format). An exception's stack trace only with <c>-v</c>; otherwise its type and message end the same line, so a retry
/// logged with its exception stays one line.
/// </summary>
internal sealed class TextWriterSink : ILogEventSink
{
    private const string TextTemplate = "{Timestamp:yyyy-MM-dd HH:mm:ss.fff zzz} [{Level:u3}] {Message:lj}{NewLine}{Exception}";

    private readonly TextWriter _writer;
    private readonly ITextFormatter _formatter;
    private readonly bool _stackTraces;
    private volatile IAnsiConsole? _live;

    public TextWriterSink(TextWriter writer, bool json = false, bool stackTraces = false)
    {
        _writer = writer;
        _stackTraces = stackTraces;
        _formatter = json ? new RenderedCompactJsonFormatter() : new MessageTemplateTextFormatter(TextTemplate, System.Globalization.CultureInfo.InvariantCulture);
    }

    public void Emit(LogEvent logEvent)
    {
        ArgumentNullException.ThrowIfNull(logEvent);
        if (!_stackTraces && logEvent.Exception is { } ex)
        {
            var template = new Serilog.Parsing.MessageTemplateParser().Parse(logEvent.MessageTemplate.Text + " ({ErrorType:l}: {Error:l})");
            var properties = logEvent.Properties.Select(p => new LogEventProperty(p.Key, p.Value))
                .Append(new LogEventProperty("ErrorType", new ScalarValue(ex.GetType().Name)))
                .Append(new LogEventProperty("Error", new ScalarValue(OneLine(ex.Message))));
            logEvent = new LogEvent(logEvent.Timestamp, logEvent.Level, null, template, properties);
        }

        if (_live is { } live)
        {
            // A live progress display owns the terminal: a raw write would land inside the bars and be overdrawn. Written
            // through the display's console, the line goes above the bars, which are redrawn below it.
            using var text = new StringWriter(System.Globalization.CultureInfo.InvariantCulture);
            _formatter.Format(logEvent, text);
            lock (_writer)
            {
                live.Write(new Text(text.ToString()));
            }

            return;
        }

        lock (_writer)
        {
            _formatter.Format(logEvent, _writer);
            _writer.Flush();
        }
    }

    /// <summary>
    /// Until disposed, log lines go through <paramref name="live"/> (the console of a live progress display on the same
    /// terminal) instead of the writer.
    /// </summary>
    public IDisposable DivertTo(IAnsiConsole live)
    {
        _live = live;
        return new Diversion(this);
    }

    private sealed class Diversion(TextWriterSink sink) : IDisposable
    {
        public void Dispose() => sink._live = null;
    }

    private static string OneLine(string text) => text.ReplaceLineEndings(" ");
}
