using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace EtlFunnel.Cli.Tests.Support;

/// <summary>Finds csharp-ls: <c>ETLFUNNEL_CSHARP_LS</c>, else PATH, else <c>~/.dotnet/tools</c>. CI sets both variables (.ci/run).</summary>
internal static class CsharpLs
{
    /// <summary>Set by .ci/run: a missing csharp-ls fails the LSP tests instead of skipping them.</summary>
    public const string RequireVariable = "ETLFUNNEL_REQUIRE_CSHARP_LS";

    public static string? Path { get; } = Find();

    private static string? Find()
    {
        if (Environment.GetEnvironmentVariable("ETLFUNNEL_CSHARP_LS") is { Length: > 0 } configured)
        {
            return configured;
        }

        var candidates = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(System.IO.Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Append(System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".dotnet", "tools"))
            .Select(dir => System.IO.Path.Combine(dir, "csharp-ls"));
        return candidates.FirstOrDefault(File.Exists);
    }
}

/// <summary>A [Fact] that skips, with the reason, when csharp-ls is not installed, unless CI requires it (then it runs and fails).</summary>
internal sealed class CsharpLsFactAttribute : FactAttribute
{
    public CsharpLsFactAttribute()
    {
        if (CsharpLs.Path is null && Environment.GetEnvironmentVariable(CsharpLs.RequireVariable) != "1")
        {
            Skip = "csharp-ls is not installed: dotnet tool install --tool-path ~/.dotnet/tools csharp-ls --version 0.28.0 (or set ETLFUNNEL_CSHARP_LS); .ci/run installs it and requires it";
        }
    }
}

/// <summary>A minimal LSP client: JSON-RPC 2.0 with Content-Length framing over a language server's stdin/stdout.</summary>
internal sealed class LspClient : IAsyncDisposable
{
    private readonly Process _process;
    private readonly Stream _input;
    private readonly Dictionary<long, TaskCompletionSource<JsonNode?>> _pending = [];
    private readonly Task _reader;
    private readonly StringBuilder _log = new();
    private long _nextId;

    private LspClient(Process process)
    {
        _process = process;
        _input = process.StandardInput.BaseStream;
        _reader = Task.Run(ReadLoopAsync);
        process.ErrorDataReceived += (_, e) =>
        {
            lock (_log)
            {
                _log.AppendLine(e.Data);
            }
        };
        process.BeginErrorReadLine();
    }

    /// <summary>What the server wrote to stderr and its log messages, for failure messages.</summary>
    public string Log
    {
        get
        {
            lock (_log)
            {
                return _log.ToString();
            }
        }
    }

    public static LspClient Start(string server, string workingDirectory)
    {
        var info = new ProcessStartInfo(server)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        return new LspClient(Process.Start(info) ?? throw new InvalidOperationException($"could not start {server}"));
    }

    public async Task<JsonNode?> RequestAsync(string method, object parameters, TimeSpan timeout)
    {
        var id = Interlocked.Increment(ref _nextId);
        var reply = new TaskCompletionSource<JsonNode?>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_pending)
        {
            _pending[id] = reply;
        }

        await WriteAsync(new { jsonrpc = "2.0", id, method, @params = parameters });
        return await reply.Task.WaitAsync(timeout);
    }

    public Task NotifyAsync(string method, object parameters) => WriteAsync(new { jsonrpc = "2.0", method, @params = parameters });

    private async Task WriteAsync(object message)
    {
        var body = JsonSerializer.SerializeToUtf8Bytes(message);
        var header = Encoding.ASCII.GetBytes($"Content-Length: {body.Length}\r\n\r\n");
        await _input.WriteAsync(header);
        await _input.WriteAsync(body);
        await _input.FlushAsync();
    }

    private async Task ReadLoopAsync()
    {
        var output = _process.StandardOutput.BaseStream;
        while (true)
        {
            var length = -1;
            string? line;
            while (!string.IsNullOrEmpty(line = await ReadLineAsync(output)))
            {
                if (line.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase))
                {
                    length = int.Parse(line["Content-Length:".Length..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
                }
            }

            if (line is null || length < 0)
            {
                return;
            }

            var body = new byte[length];
            await output.ReadExactlyAsync(body);
            var message = JsonNode.Parse(body)!;
            if (message["method"] is { } method)
            {
                if (message["id"] is { } requestId)
                {
                    // A request from the server (workspace/configuration, client/registerCapability, ...): answer with null.
                    await WriteAsync(new { jsonrpc = "2.0", id = requestId.DeepClone(), result = (object?)null });
                }
                else if ((string?)method == "window/logMessage")
                {
                    lock (_log)
                    {
                        _log.AppendLine((string?)message["params"]?["message"]);
                    }
                }

                continue;
            }

            if (message["id"]?.GetValue<long>() is { } id)
            {
                TaskCompletionSource<JsonNode?>? waiter;
                lock (_pending)
                {
                    _pending.Remove(id, out waiter);
                }

                waiter?.TrySetResult(message["result"]);
            }
        }
    }

    private static async Task<string?> ReadLineAsync(Stream stream)
    {
        var bytes = new List<byte>();
        var one = new byte[1];
        while (true)
        {
            if (await stream.ReadAsync(one) == 0)
            {
                return bytes.Count == 0 ? null : Encoding.ASCII.GetString([.. bytes]);
            }

            if (one[0] == '\n')
            {
                return Encoding.ASCII.GetString([.. bytes]).TrimEnd('\r');
            }

            bytes.Add(one[0]);
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }

        await _reader.WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _process.Dispose();
    }
}
