using Npgsql;

namespace EtlFunnel.Orchestration.Config;

/// <summary>libpq-style URLs (<c>postgres://user:password@host:5432/database?sslmode=require</c>) as Npgsql connection strings.</summary>
public static class PostgresUrl
{
    // libpq parameter names that Npgsql spells differently; any other parameter is passed on as an Npgsql keyword.
    private static readonly Dictionary<string, string> Parameters = new(StringComparer.OrdinalIgnoreCase)
    {
        ["sslmode"] = "SSL Mode",
        ["application_name"] = "Application Name",
        ["connect_timeout"] = "Timeout",
        ["target_session_attrs"] = "Target Session Attributes",
        ["options"] = "Options",
        ["sslrootcert"] = "Root Certificate",
        ["sslcert"] = "SSL Certificate",
        ["sslkey"] = "SSL Key",
    };

    /// <summary>True when <paramref name="value"/> starts with <c>postgres://</c> or <c>postgresql://</c>.</summary>
    public static bool IsUrl(string value) =>
        value.StartsWith("postgres://", StringComparison.OrdinalIgnoreCase) || value.StartsWith("postgresql://", StringComparison.OrdinalIgnoreCase);

    /// <summary>Converts a URL to a connection string; throws <see cref="FormatException"/> saying what is wrong.</summary>
    public static string ToConnectionString(string url)
    {
        if (!IsUrl(url) || !Uri.TryCreate(url, UriKind.Absolute, out var uri))
        {
            throw new FormatException("not a PostgreSQL URL; write postgres://user:password@host:5432/database");
        }

        if (string.IsNullOrEmpty(uri.Host))
        {
            throw new FormatException("the URL names no host; write postgres://user:password@host:5432/database");
        }

        var b = new NpgsqlConnectionStringBuilder { Host = uri.DnsSafeHost };
        if (uri.Port > 0)
        {
            b.Port = uri.Port;
        }

        if (uri.UserInfo.Length > 0)
        {
            var colon = uri.UserInfo.IndexOf(':', StringComparison.Ordinal);
            b.Username = Uri.UnescapeDataString(colon < 0 ? uri.UserInfo : uri.UserInfo[..colon]);
            if (colon >= 0)
            {
                b.Password = Uri.UnescapeDataString(uri.UserInfo[(colon + 1)..]);
            }
        }

        var database = Uri.UnescapeDataString(uri.AbsolutePath.TrimStart('/'));
        if (database.Length > 0)
        {
            b.Database = database;
        }

        foreach (var pair in uri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = pair.IndexOf('=', StringComparison.Ordinal);
            var key = Uri.UnescapeDataString(eq < 0 ? pair : pair[..eq]);
            var value = eq < 0 ? "" : Uri.UnescapeDataString(pair[(eq + 1)..]);
            try
            {
                b[Parameters.GetValueOrDefault(key, key)] = value;
            }
            catch (Exception ex) when (ex is ArgumentException or FormatException)
            {
                throw new FormatException($"URL parameter '{key}={value}' is not understood ({ex.Message})", ex);
            }
        }

        return b.ConnectionString;
    }
}
