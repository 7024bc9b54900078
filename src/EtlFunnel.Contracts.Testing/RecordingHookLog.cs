using System.Collections.Generic;
using EtlFunnel.Execution.Models;

namespace EtlFunnel.Execution.Testing;

/// <summary>An <see cref="IHookLog"/> that keeps every line, to assert what a hook logged: <c>Props.Flow().LoggingTo(log)</c>.</summary>
public sealed class RecordingHookLog : IHookLog
{
    private readonly List<HookLogLine> lines = [];

    /// <summary>The lines logged so far, in order.</summary>
    public IReadOnlyList<HookLogLine> Lines
    {
        get
        {
            lock (lines)
            {
                return lines.ToArray();
            }
        }
    }

    /// <inheritdoc />
    public void Info(string message, string file = "", int line = 0) => Add("info", message, file, line);

    /// <inheritdoc />
    public void Warning(string message, string file = "", int line = 0) => Add("warning", message, file, line);

    /// <inheritdoc />
    public void Error(string message, string file = "", int line = 0) => Add("error", message, file, line);

    private void Add(string level, string message, string file, int line)
    {
        lock (lines)
        {
            lines.Add(new HookLogLine(level, message, file, line));
        }
    }
}

/// <summary>One line a hook logged: <c>info</c>, <c>warning</c> or <c>error</c>, the text, and the hook's file and line.</summary>
/// <param name="Level">The level.</param>
/// <param name="Message">The text.</param>
/// <param name="File">The file of the call (the compiler's caller file path).</param>
/// <param name="Line">The line of the call.</param>
public sealed record HookLogLine(string Level, string Message, string File, int Line);
