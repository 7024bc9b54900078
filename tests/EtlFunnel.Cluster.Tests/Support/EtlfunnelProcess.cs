using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.RegularExpressions;

namespace EtlFunnel.Cluster.Tests.Support;

/// <summary>The built <c>etlfunnel</c> as a child process (worker or run), its stdout and stderr collected line by line.</summary>
internal sealed class EtlfunnelProcess : IDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _lines = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    private EtlfunnelProcess(string name, Process process)
    {
        Name = name;
        _process = process;
        process.OutputDataReceived += (_, e) => Add(e.Data);
        process.ErrorDataReceived += (_, e) => Add(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public string Name { get; }

    public string Output => string.Join('\n', _lines);

    public bool HasExited => _process.HasExited;

    public static EtlfunnelProcess Start(string name, IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "etlfunnel.dll"));
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        info.Environment.Remove("ELASTICSEARCH_URL");
        info.Environment.Remove("ETLFUNNEL_ELASTICSEARCH_URL");
        foreach (var (key, value) in environment)
        {
            info.Environment[key] = value;
        }

        return new EtlfunnelProcess(name, Process.Start(info) ?? throw new InvalidOperationException("dotnet did not start"));
    }

    public bool Logged(Regex pattern) => _lines.Any(pattern.IsMatch);

    public async Task WaitForLineAsync(Regex pattern, TimeSpan guard)
    {
        var until = Stopwatch.GetTimestamp() + (long)(guard.TotalSeconds * Stopwatch.Frequency);
        while (!Logged(pattern))
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"{Name} exited ({_process.ExitCode}) before logging /{pattern}/:\n{Output}");
            }

            if (Stopwatch.GetTimestamp() > until)
            {
                throw new TimeoutException($"{Name}: gave up waiting for /{pattern}/:\n{Output}");
            }

            await Task.Delay(100);
        }
    }

    public async Task<int> WaitForExitAsync(TimeSpan guard)
    {
        using var timeout = new CancellationTokenSource(guard);
        try
        {
            await _process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"{Name} did not exit within {guard}:\n{Output}");
        }

        _process.WaitForExit();
        return _process.ExitCode;
    }

    /// <summary>SIGKILL, as <c>kill -9</c>: no shutdown code runs.</summary>
    public void KillHard()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: false);
            _process.WaitForExit();
        }
    }

    /// <summary>SIGTERM, as systemd or <c>kill</c> would.</summary>
    public void Terminate()
    {
        using var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    public void Dispose()
    {
        KillHard();
        _process.Dispose();
    }

    private void Add(string? line)
    {
        if (line is not null)
        {
            _lines.Enqueue($"{_clock.Elapsed.TotalSeconds,7:0.00} {line}");
        }
    }
}
