using System.Runtime.CompilerServices;

namespace EtlFunnel.Execution.Models;

/// <summary>
/// A hook's logger (<see cref="OrchestratorProps.Log"/>): each line goes to the host's log (the service log, or stderr of
/// the command), carrying the hook's file and line; never to stdout. Leave the caller parameters to the compiler.
/// </summary>
public interface IHookLog
{
    /// <summary>Logs an informational line.</summary>
    void Info(string message, [CallerFilePath] string file = "", [CallerLineNumber] int line = 0);

    /// <summary>Logs a warning.</summary>
    void Warning(string message, [CallerFilePath] string file = "", [CallerLineNumber] int line = 0);

    /// <summary>Logs an error (the hook goes on; throw to fail the call).</summary>
    void Error(string message, [CallerFilePath] string file = "", [CallerLineNumber] int line = 0);
}

/// <summary>The logger of props built without one: drops every line.</summary>
internal sealed class NoHookLog : IHookLog
{
    public static readonly NoHookLog Instance = new();

    public void Info(string message, string file = "", int line = 0)
    {
    }

    public void Warning(string message, string file = "", int line = 0)
    {
    }

    public void Error(string message, string file = "", int line = 0)
    {
    }
}
