using System.Security.Cryptography;
using Microsoft.Extensions.Logging;

namespace EtlFunnel.Service;

/// <summary>
/// Watches the config file the service started with. The service does not reload flows.yaml (flows,
/// connections and schedules are wired at start-up); when the file's content differs from what was
/// loaded it says so, in the log and in the status (<see cref="ServiceState.SetRestartNeeded"/>), and
/// clears the notice if the content goes back. A save that leaves the bytes unchanged says nothing.
/// </summary>
internal sealed class ConfigChangeWatcher : IDisposable
{
    private readonly string _path;
    private readonly ServiceState _state;
    private readonly ILogger _log;
    private readonly byte[] _loadedHash;
    private readonly FileSystemWatcher _watcher;
    private readonly object _gate = new();
    private byte[]? _lastReported;

    /// <summary>Starts watching <paramref name="configPath"/>; <paramref name="loadedContent"/> is what the service actually loaded.</summary>
    public ConfigChangeWatcher(string configPath, ReadOnlySpan<byte> loadedContent, ServiceState state, ILoggerFactory log)
    {
        _path = Path.GetFullPath(configPath);
        _state = state ?? throw new ArgumentNullException(nameof(state));
        _log = (log ?? throw new ArgumentNullException(nameof(log))).CreateLogger<ConfigChangeWatcher>();
        _loadedHash = SHA256.HashData(loadedContent);
        _lastReported = _loadedHash;

        // Watch the folder, not the file: editors save through a temp file and a rename, which
        // replaces the inode a file watch would follow.
        _watcher = new FileSystemWatcher(Path.GetDirectoryName(_path)!, Path.GetFileName(_path))
        {
            NotifyFilter = NotifyFilters.LastWrite | NotifyFilters.FileName | NotifyFilters.Size | NotifyFilters.CreationTime,
        };
        _watcher.Changed += (_, _) => Recheck();
        _watcher.Created += (_, _) => Recheck();
        _watcher.Deleted += (_, _) => Recheck();
        _watcher.Renamed += (_, _) => Recheck();
        _watcher.EnableRaisingEvents = true;
    }

    /// <summary>Starts watching <paramref name="configPath"/>, taking its current content as the loaded one.</summary>
    public static ConfigChangeWatcher ForCurrentContent(string configPath, ServiceState state, ILoggerFactory log) =>
        new(configPath, File.ReadAllBytes(configPath), state, log);

    /// <summary>Compares the file with what was loaded and updates the status; called on every file event.</summary>
    public void Recheck()
    {
        lock (_gate)
        {
            var (hash, missing) = ReadHash();
            if (hash is null && !missing)
            {
                return; // Still being written; the writer's next event rechecks.
            }

            if (Same(hash, _lastReported))
            {
                return;
            }

            _lastReported = hash;
            if (Same(hash, _loadedHash))
            {
                _log.LogInformation("{Config} is back to the content this service loaded; no restart needed", _path);
                _state.SetRestartNeeded(null);
                return;
            }

            var what = missing ? "was deleted" : "changed on disk";
            var message = $"{_path} {what}; this service keeps running the configuration it started with. Restart etlfunnel watch to apply the change (hooks reload without a restart; flows.yaml does not).";
            _log.LogWarning("{Message}", message);
            _state.SetRestartNeeded(message);
        }
    }

    /// <summary>Stops watching.</summary>
    public void Dispose() => _watcher.Dispose();

    private static bool Same(byte[]? a, byte[]? b) =>
        a is null || b is null ? a is null && b is null : a.AsSpan().SequenceEqual(b);

    private (byte[]? Hash, bool Missing) ReadHash()
    {
        try
        {
            return (SHA256.HashData(File.ReadAllBytes(_path)), false);
        }
        catch (FileNotFoundException)
        {
            return (null, true);
        }
        catch (DirectoryNotFoundException)
        {
            return (null, true);
        }
        catch (IOException)
        {
            return (null, false);
        }
        catch (UnauthorizedAccessException)
        {
            return (null, false);
        }
    }
}
