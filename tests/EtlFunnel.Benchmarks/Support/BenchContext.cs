using System.Diagnostics;
using System.Globalization;
using System.Text;
using EtlFunnel.Testing.Postgres;
using Npgsql;

namespace EtlFunnel.Benchmarks.Support;

/// <summary>What every measure shares: sizes, the repository, a scratch folder and the PostgreSQL test server.</summary>
internal sealed class BenchContext
{
    public required bool Smoke { get; init; }

    public required string RepoRoot { get; init; }

    public required string WorkRoot { get; init; }

    public required PostgresServer Postgres { get; init; }

    /// <summary>Rows of the sync table (1M in full mode).</summary>
    public int SyncRows => Smoke ? 10_000 : 1_000_000;

    /// <summary>Reload cycles (1000 in full mode).</summary>
    public int ReloadCycles => Smoke ? 20 : 1000;

    /// <summary>Schemas of the planning workload (200 in full mode, 10 tables each).</summary>
    public int PlanningSchemas => Smoke ? 5 : 200;

    /// <summary>Repetitions of each timed run; the table shows the median.</summary>
    public int Repetitions => Smoke ? 1 : 3;

    public string HooksDirectory => Path.Combine(RepoRoot, "hooks");

    /// <summary>The CLI under test: <c>--cli</c>, else the Release build.</summary>
    public string Cli => CliOverride ?? Path.Combine(RepoRoot, "src", "EtlFunnel.Cli", "bin", "Release", "net10.0", "etlfunnel");

    public string? CliOverride { get; init; }

    public string UsProfile => Path.Combine(RepoRoot, "samples", "regions", "us.yaml");

    public string NewWorkDir(string name)
    {
        var dir = Path.Combine(WorkRoot, name);
        if (Directory.Exists(dir))
        {
            Directory.Delete(dir, recursive: true);
        }

        Directory.CreateDirectory(dir);
        return dir;
    }

    public Task<string> CreateDatabaseAsync(string prefix) => Postgres.CreateDatabaseAsync(prefix);

    /// <summary>psql for a database, quiet and without ~/.psqlrc.</summary>
    public static ProcessStartInfo Psql(string connectionString, params string[] args)
    {
        var cs = new NpgsqlConnectionStringBuilder(connectionString);
        var psi = new ProcessStartInfo(FindPsql());
        foreach (var a in new[] { "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", cs.Host!, "-p", cs.Port.ToString(CultureInfo.InvariantCulture), "-U", cs.Username!, "-d", cs.Database! })
        {
            psi.ArgumentList.Add(a);
        }

        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        return psi;
    }

    public static string PsqlConnectionArgs(string connectionString)
    {
        var cs = new NpgsqlConnectionStringBuilder(connectionString);
        return $"-X -q -h {cs.Host} -p {cs.Port.ToString(CultureInfo.InvariantCulture)} -U {cs.Username} -d {cs.Database}";
    }

    public static string FindPsql()
    {
        var candidates = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries).Select(d => Path.Combine(d, "psql"))
            .Concat(Directory.Exists("/usr/lib/postgresql") ? Directory.GetDirectories("/usr/lib/postgresql").Order(StringComparer.Ordinal).Reverse().Select(d => Path.Combine(d, "bin", "psql")) : []);
        return candidates.FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException("psql not found on PATH or in /usr/lib/postgresql/*/bin; install it (Debian: apt-get install -y postgresql-client)");
    }

    /// <summary>
    /// The shape of samples/quickstart/us-scale.sql, sized: <paramref name="flows"/> × <paramref name="schemasPerFlow"/> schemas
    /// <c>tenant_&lt;flow&gt;_&lt;n&gt;</c> of <paramref name="tables"/> tables with <paramref name="rows"/> rows each.
    /// </summary>
    public static string TenantSql(int flows, int schemasPerFlow, int tables, int rows) => $"""
        SET client_min_messages = warning;
        DO $$
        DECLARE f int; s int; t int; schema_name text;
        BEGIN
            FOR f IN 0..{flows - 1} LOOP
                FOR s IN 0..{schemasPerFlow - 1} LOOP
                    schema_name := format('tenant_%s_%s', f, lpad(s::text, 3, '0'));
                    EXECUTE format('CREATE SCHEMA %I', schema_name);
                    FOR t IN 0..{tables - 1} LOOP
                        EXECUTE format('CREATE TABLE %I.%I (id int PRIMARY KEY, payload text)', schema_name, 'table_' || t);
                        EXECUTE format('INSERT INTO %I.%I SELECT g, md5(g::text) FROM generate_series(1, {rows}) g', schema_name, 'table_' || t);
                    END LOOP;
                END LOOP;
            END LOOP;
        END
        $$;
        ANALYZE;
        """;

    /// <summary>A config with one flow per tenant group, every flow reading <c>tenant_&lt;flow&gt;_*</c> into files; the source comes from <c>${BENCH_PG}</c>.</summary>
    public static string TenantConfig(int flows, string hooksDirectory)
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"hooks: \"{hooksDirectory}\"");
        sb.AppendLine("flows:");
        for (var f = 0; f < flows; f++)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"  - name: tenants_{f}");
            sb.AppendLine("    source: {postgres: \"${BENCH_PG}\"}");
            sb.AppendLine("    destination: {files: ./out}");
            sb.AppendLine("    pipelines:");
            sb.AppendLine(CultureInfo.InvariantCulture, $"      - schema: \"tenant_{f}_*\"");
        }

        return sb.ToString();
    }
}
