using EtlFunnel.Sync.Runtime;
using Npgsql;

namespace EtlFunnel.Sync.Postgres;

/// <summary>What one incremental column looks like in the run's snapshot: its type, its typed maximum, and how many rows are dated in the future.</summary>
internal sealed class WatermarkProbe
{
    private int _warned;

    public required string Type { get; init; }

    public required string BaseType { get; init; }

    public required WatermarkKind Kind { get; init; }

    /// <summary>The largest value (for time columns: among rows not after the cap), or null when there is none.</summary>
    public Watermark? Max { get; init; }

    /// <summary>Rows whose time value is after the source's now() + margin; they are not allowed to move the watermark.</summary>
    public long FutureRows { get; init; }

    /// <summary>True for the first caller only, so a table split into many replicas warns once.</summary>
    public bool ClaimWarning() => Interlocked.Exchange(ref _warned, 1) == 0;
}

internal sealed partial class SourceSnapshot
{
    private readonly Dictionary<string, Task<WatermarkProbe>> _watermarks = new(StringComparer.Ordinal);

    /// <summary>
    /// Reads the incremental column's type and typed maximum inside the snapshot, once per table, column and margin for the run
    /// (every replica of a table reads the same maximum). Time values past the source's now() + <paramref name="timeMargin"/> do not count.
    /// </summary>
    public Task<WatermarkProbe> ProbeWatermarkAsync(string qualifiedTable, string column, TimeSpan timeMargin, CancellationToken ct)
    {
        var key = qualifiedTable + "|" + column + "|" + timeMargin.Ticks;
        lock (_watermarks)
        {
            if (!_watermarks.TryGetValue(key, out var task))
            {
                task = Locked(() => ProbeCoreAsync(qualifiedTable, column, timeMargin, ct), ct);
                _watermarks[key] = task;
            }

            return task;
        }
    }

    private async Task<WatermarkProbe> ProbeCoreAsync(string table, string column, TimeSpan timeMargin, CancellationToken ct)
    {
        string type, baseType;
        char category;
        await using (var cmd = new NpgsqlCommand(
            "SELECT format_type(a.atttypid, a.atttypmod), format_type(coalesce(nullif(t.typbasetype, 0), a.atttypid), NULL), coalesce(bt.typcategory, t.typcategory) " +
            "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid LEFT JOIN pg_type bt ON bt.oid = nullif(t.typbasetype, 0) " +
            "WHERE a.attrelid = $1::regclass AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped", _connection, _transaction))
        {
            cmd.Parameters.AddWithValue(table);
            cmd.Parameters.AddWithValue(column);
            await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
            if (!await r.ReadAsync(ct).ConfigureAwait(false))
            {
                throw new SyncConfigurationException($"Incremental column \"{column}\" does not exist in {table}. Fix `incremental:` in the pipeline config.");
            }

            (type, baseType, category) = (r.GetString(0), r.GetString(1), r.GetChar(2));
        }

        var kind = Watermark.KindOf(baseType, category)
            ?? throw new SyncConfigurationException(
                $"Incremental column \"{column}\" of {table} has type {type}, for which no watermark is kept; use a timestamp, timestamptz, date, integer, numeric, float or text column that only grows.");

        var where = "true";
        long future = 0;
        object? value = null;
        var done = false;
        if (kind == WatermarkKind.Time)
        {
            // Usually the plain maximum (one index probe, or one scan without an index) is already below the cap; only
            // when it is not are the future rows counted and the maximum below the cap looked for.
            var cap = Watermark.CapSql(baseType, timeMargin);
            var c = Sql.Ident(column);
            await using (var plain = new NpgsqlCommand(
                $"SELECT CASE WHEN isfinite(m) AND m <= ({cap}) THEN ((extract(epoch FROM m{(baseType == "date" ? "::timestamp" : "")})) * 1000000)::int8::text END, " +
                $"coalesce(m > ({cap}), false), m IS NULL FROM (SELECT max({c}) AS m FROM {table}) s", _connection, _transaction))
            {
                await using var r = await plain.ExecuteReaderAsync(ct).ConfigureAwait(false);
                await r.ReadAsync(ct).ConfigureAwait(false);
                var (plainMax, later, empty) = (r.IsDBNull(0) ? null : r.GetString(0), r.GetBoolean(1), r.GetBoolean(2));
                if (!later && (plainMax is not null || empty))
                {
                    (value, done) = (plainMax, true);
                }
            }

            if (!done)
            {
                where = $"{c} <= ({cap})";
                await using var count = new NpgsqlCommand($"SELECT count(*) FROM {table} WHERE {c} > ({cap})", _connection, _transaction);
                future = (long)(await count.ExecuteScalarAsync(ct).ConfigureAwait(false))!;
            }
        }

        if (!done)
        {
            await using var max = new NpgsqlCommand(Watermark.MaxSql(kind, column, table, baseType, where), _connection, _transaction);
            value = await max.ExecuteScalarAsync(ct).ConfigureAwait(false);
        }

        var text = value switch
        {
            byte[] float8 => Watermark.FloatText(float8),
            string s => s,
            _ => null,
        };
        return new WatermarkProbe
        {
            Type = type,
            BaseType = baseType,
            Kind = kind,
            Max = text is null ? null : new Watermark(kind, text, type),
            FutureRows = future,
        };
    }
}
