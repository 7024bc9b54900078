using Serilog.Core;
using Serilog.Events;
using Serilog.Formatting;
using Serilog.Formatting.Compact;
using Serilog.Formatting.Display;

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

        lock (_writer)
        {
            _formatter.Format(logEvent, _writer);
            _writer.Flush();
        }
    }

    private static string OneLine(string text) => text.ReplaceLineEndings(" ");
}
