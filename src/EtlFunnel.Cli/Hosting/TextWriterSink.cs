using Serilog.Core;
using Serilog.Events;
using Serilog.Formatting.Display;

namespace EtlFunnel.Cli.Hosting;

/// <summary>Writes log events to the command's stderr writer, so stdout stays clean for <c>--format json</c>.</summary>
internal sealed class TextWriterSink : ILogEventSink
{
    private readonly TextWriter _writer;
    private readonly MessageTemplateTextFormatter _formatter = new("[{Level:u3}] {Message:lj}{NewLine}{Exception}", System.Globalization.CultureInfo.InvariantCulture);

    public TextWriterSink(TextWriter writer) => _writer = writer;

    public void Emit(LogEvent logEvent)
    {
        lock (_writer)
        {
            _formatter.Format(logEvent, _writer);
            _writer.Flush();
        }
    }
}
