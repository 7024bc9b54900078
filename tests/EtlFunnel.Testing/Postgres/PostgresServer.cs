using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Npgsql;

namespace EtlFunnel.Testing.Postgres;

/// <summary>
/// A real PostgreSQL server for tests: the one named by <c>ETLFUNNEL_TEST_PG</c> (a connection string), or else a
/// throwaway cluster this process initdb's in a temp folder on a free loopback port with <c>wal_level=logical</c>,
/// run as the <c>postgres</c> user when the tests run as root, and removed when the process exits.
/// One server per test process; tests isolate themselves with <see cref="CreateDatabaseAsync"/>.
/// </summary>
public sealed class PostgresServer : IAsyncDisposable
{
    /// <summary>The environment variable that names an existing server instead of a throwaway cluster.</summary>
    public const string EnvironmentVariable = "ETLFUNNEL_TEST_PG";

    private static readonly SemaphoreSlim Gate = new(1, 1);
    private static PostgresServer? _shared;
    private static int _databaseCounter;

    private readonly string? _dataDirectory;
    private readonly string? _binDirectory;
    private readonly bool _asPostgresUser;

    private PostgresServer(string adminConnectionString, string? dataDirectory, string? binDirectory, bool asPostgresUser)
    {
        AdminConnectionString = adminConnectionString;
        _dataDirectory = dataDirectory;
        _binDirectory = binDirectory;
        _asPostgresUser = asPostgresUser;
    }

    /// <summary>Connection string of a superuser on the <c>postgres</c> database.</summary>
    public string AdminConnectionString { get; }

    /// <summary>True when this process started the cluster (and will remove it).</summary>
    public bool IsThrowaway => _dataDirectory is not null;

    /// <summary>The process-wide server, started on first use.</summary>
    public static async Task<PostgresServer> GetAsync()
    {
        if (_shared is not null)
        {
            return _shared;
        }

        await Gate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_shared is null)
            {
                var server = await StartAsync().ConfigureAwait(false);
                AppDomain.CurrentDomain.ProcessExit += (_, _) => server.DisposeAsync().AsTask().GetAwaiter().GetResult();
                _shared = server;
            }

            return _shared;
        }
        finally
        {
            Gate.Release();
        }
    }

    /// <summary>Creates a fresh, uniquely named database and returns a connection string to it.</summary>
    public async Task<string> CreateDatabaseAsync(string prefix = "t")
    {
        var unique = $"{prefix}_{Environment.ProcessId}_{Interlocked.Increment(ref _databaseCounter)}_{Guid.NewGuid():N}".ToLowerInvariant();
        var name = unique.Length <= 63 ? unique : unique[..63];
        await using (var conn = new NpgsqlConnection(AdminConnectionString))
        {
            await conn.OpenAsync().ConfigureAwait(false);
            await using var cmd = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", conn);
            await cmd.ExecuteNonQueryAsync().ConfigureAwait(false);
        }

        return new NpgsqlConnectionStringBuilder(AdminConnectionString) { Database = name, Pooling = true }.ConnectionString;
    }

    /// <summary>Runs SQL (several statements allowed) against a database.</summary>
    public static async Task ExecuteAsync(string connectionString, string sql)
    {
        await using var conn = new NpgsqlConnection(connectionString);
        await conn.OpenAsync().ConfigureAwait(false);
        await using var cmd = new NpgsqlCommand(sql, conn);
        cmd.CommandTimeout = 600;
        await cmd.ExecuteNonQueryAsync().ConfigureAwait(false);
    }

    private static async Task<PostgresServer> StartAsync()
    {
        var fromEnvironment = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(fromEnvironment))
        {
            try
            {
                await using var conn = new NpgsqlConnection(fromEnvironment);
                await conn.OpenAsync().ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                throw new InvalidOperationException(
                    $"{EnvironmentVariable} is set but its server does not answer: {ex.Message}. " +
                    $"Fix the connection string, or unset {EnvironmentVariable} to let the tests start a throwaway cluster.", ex);
            }

            return new PostgresServer(fromEnvironment, null, null, false);
        }

        var bin = FindPostgresBin() ?? throw new InvalidOperationException(
            "No PostgreSQL server binaries found (looked for initdb/pg_ctl on PATH and in /usr/lib/postgresql/*/bin). " +
            "Install them (Debian: `apt-get install -y postgresql`), or set " + EnvironmentVariable +
            " to a connection string of a server whose user may CREATE DATABASE.");

        var asPostgresUser = Environment.UserName == "root" || IsRoot();
        await SweepOrphansAsync(bin, asPostgresUser).ConfigureAwait(false);
        var dir = Path.Combine(Path.GetTempPath(), $"etlfunnel-pg-{Environment.ProcessId}-{Guid.NewGuid():N}"[..40]);
        var data = Path.Combine(dir, "data");
        Directory.CreateDirectory(dir);
        if (asPostgresUser)
        {
            await RunAsync("chown", ["-R", "postgres:postgres", dir], false).ConfigureAwait(false);
        }

        await RunAsync(Path.Combine(bin, "initdb"), ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"], asPostgresUser)
            .ConfigureAwait(false);

        var port = FreePort();
        var options = string.Join(' ',
            $"-p {port}",
            "-c listen_addresses=127.0.0.1",
            $"-c unix_socket_directories={dir}",
            "-c wal_level=logical",
            "-c max_wal_senders=10",
            "-c max_replication_slots=10",
            "-c max_connections=1000", // many test databases at once, each with its pooled (idle) connections and a run's reader sessions
            "-c fsync=off",
            "-c synchronous_commit=off",
            "-c full_page_writes=off",
            "-c shared_buffers=256MB");
        await RunAsync(Path.Combine(bin, "pg_ctl"), ["-D", data, "-l", Path.Combine(dir, "server.log"), "-o", options, "-w", "-t", "60", "start"], asPostgresUser)
            .ConfigureAwait(false);

        var cs = new NpgsqlConnectionStringBuilder
        {
            Host = "127.0.0.1",
            Port = port,
            Username = "postgres",
            Database = "postgres",
            Pooling = true,
            MaxPoolSize = 100,
        }.ConnectionString;
        return new PostgresServer(cs, data, bin, asPostgresUser);
    }

    /// <summary>Stops and removes a throwaway cluster; does nothing for a server from the environment.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_dataDirectory is null || _binDirectory is null || !Directory.Exists(_dataDirectory))
        {
            return;
        }

        NpgsqlConnection.ClearAllPools();
        try
        {
            await RunAsync(Path.Combine(_binDirectory, "pg_ctl"), ["-D", _dataDirectory, "-m", "immediate", "-w", "stop"], _asPostgresUser).ConfigureAwait(false);
        }
        catch (InvalidOperationException)
        {
            // Already stopped; removing the folder is all that is left.
        }

        try
        {
            Directory.Delete(Path.GetDirectoryName(_dataDirectory)!, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    /// <summary>
    /// Stops and removes clusters of test processes that died without their exit handler (killed, timed out): the folder
    /// name carries the owner's pid, and a cluster whose owner is gone would otherwise keep its server and 256 MB of
    /// shared buffers until the machine restarts. Best effort; a cluster whose owner still runs is never touched.
    /// </summary>
    private static async Task SweepOrphansAsync(string bin, bool asPostgresUser)
    {
        foreach (var dir in Directory.EnumerateDirectories(Path.GetTempPath(), "etlfunnel-pg-*"))
        {
            var parts = Path.GetFileName(dir).Split('-');
            if (parts.Length < 4 || !int.TryParse(parts[2], out var owner) || owner == Environment.ProcessId || Directory.Exists($"/proc/{owner}"))
            {
                continue;
            }

            var data = Path.Combine(dir, "data");
            if (File.Exists(Path.Combine(data, "postmaster.pid")))
            {
                try
                {
                    await RunAsync(Path.Combine(bin, "pg_ctl"), ["-D", data, "-m", "immediate", "-w", "stop"], asPostgresUser).ConfigureAwait(false);
                }
                catch (InvalidOperationException)
                {
                    // Not running any more (or another test process stopped it first).
                }
            }

            try
            {
                Directory.Delete(dir, recursive: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Another test process is removing it too.
            }
        }
    }

    private static bool IsRoot()
    {
        try
        {
            return File.ReadAllText("/proc/self/status").Split('\n')
                .Any(l => l.StartsWith("Uid:", StringComparison.Ordinal) && l.Split('\t', StringSplitOptions.RemoveEmptyEntries)[1] == "0");
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static string? FindPostgresBin()
    {
        var candidates = new List<string>();
        var pathDirs = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries);
        foreach (var d in pathDirs)
        {
            var initdb = Path.Combine(d, "initdb");
            if (File.Exists(initdb))
            {
                // /usr/local/bin/initdb is often a link into /usr/lib/postgresql/N/bin; use the real folder so pg_ctl finds postgres.
                var resolved = new FileInfo(initdb).ResolveLinkTarget(true)?.FullName ?? initdb;
                candidates.Add(Path.GetDirectoryName(resolved)!);
            }
        }

        if (Directory.Exists("/usr/lib/postgresql"))
        {
            candidates.AddRange(Directory.GetDirectories("/usr/lib/postgresql")
                .OrderByDescending(d => int.TryParse(Path.GetFileName(d), out var v) ? v : 0)
                .Select(d => Path.Combine(d, "bin")));
        }

        return candidates.FirstOrDefault(d => File.Exists(Path.Combine(d, "initdb")) && File.Exists(Path.Combine(d, "pg_ctl")));
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static async Task RunAsync(string file, IReadOnlyList<string> args, bool asPostgresUser)
    {
        var psi = new ProcessStartInfo
        {
            FileName = asPostgresUser ? "runuser" : file,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (asPostgresUser)
        {
            psi.ArgumentList.Add("-u");
            psi.ArgumentList.Add("postgres");
            psi.ArgumentList.Add("--");
            psi.ArgumentList.Add(file);
        }

        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var process = Process.Start(psi) ?? throw new InvalidOperationException($"Could not start {file}.");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().ConfigureAwait(false);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException(
                $"`{file} {string.Join(' ', args)}` failed with exit code {process.ExitCode}:\n{await stdout.ConfigureAwait(false)}\n{await stderr.ConfigureAwait(false)}\n" +
                $"To use an existing server instead, set {EnvironmentVariable} to its connection string.");
        }
    }
}
