using System;

namespace EtlFunnel.Execution.Models;

/// <summary>
/// A read-only view of one source row, given to a transformer's <c>Transform(RowView row, DocumentWriter doc)</c>.
/// Columns are read by ordinal (fastest) or by name; the engine reuses one view for every row of a batch, so read what
/// you need during the call and never keep the view.
/// </summary>
public abstract class RowView
{
    /// <summary>For the engine's implementations only.</summary>
    protected RowView()
    {
    }

    /// <summary>Upsert for rows read or changed, Delete for a CDC delete.</summary>
    public abstract RowOperation Operation { get; }

    /// <summary>The flow the row is synced by.</summary>
    public abstract string Flow { get; }

    /// <summary>The source table's schema.</summary>
    public abstract string Schema { get; }

    /// <summary>The source table's name.</summary>
    public abstract string Table { get; }

    /// <summary>The document id the engine made from the row's key.</summary>
    public abstract string Id { get; }

    /// <summary>How many columns the row has.</summary>
    public abstract int ColumnCount { get; }

    /// <summary>The column name at <paramref name="ordinal"/> (0-based).</summary>
    public abstract string GetName(int ordinal);

    /// <summary>The ordinal of the column called <paramref name="name"/> (exact, case-sensitive), or -1 when there is none.</summary>
    public abstract int GetOrdinal(string name);

    /// <summary>True when the column is SQL NULL.</summary>
    public abstract bool IsNull(int ordinal);

    /// <summary>The value as text: strings as they are, other values as their JSON text; null for SQL NULL.</summary>
    public abstract string? GetString(int ordinal);

    /// <summary>The value as a 64-bit integer; throws <see cref="FormatException"/> when it is not one.</summary>
    public abstract long GetInt64(int ordinal);

    /// <summary>The value as a double (numbers and numeric strings such as <c>"NaN"</c>).</summary>
    public abstract double GetDouble(int ordinal);

    /// <summary>The value as a decimal (integers and numerics, exact).</summary>
    public abstract decimal GetDecimal(int ordinal);

    /// <summary>The value as a boolean; throws <see cref="FormatException"/> when it is not one.</summary>
    public abstract bool GetBoolean(int ordinal);

    /// <summary>The value's JSON text exactly as the engine mapped it (<c>null</c>, a number, a string in quotes, an object, ...).</summary>
    public abstract string GetRawJson(int ordinal);

    /// <summary>True when the row has a column called <paramref name="name"/>.</summary>
    public bool Has(string name) => GetOrdinal(name) >= 0;

    /// <summary>True when the column called <paramref name="name"/> is SQL NULL.</summary>
    public bool IsNull(string name) => IsNull(Required(name));

    /// <summary>The named column as text (see <see cref="GetString(int)"/>).</summary>
    public string? GetString(string name) => GetString(Required(name));

    /// <summary>The named column as a 64-bit integer.</summary>
    public long GetInt64(string name) => GetInt64(Required(name));

    /// <summary>The named column as a double.</summary>
    public double GetDouble(string name) => GetDouble(Required(name));

    /// <summary>The named column as a decimal.</summary>
    public decimal GetDecimal(string name) => GetDecimal(Required(name));

    /// <summary>The named column as a boolean.</summary>
    public bool GetBoolean(string name) => GetBoolean(Required(name));

    /// <summary>The named column's JSON text.</summary>
    public string GetRawJson(string name) => GetRawJson(Required(name));

    private int Required(string name)
    {
        var ordinal = GetOrdinal(name);
        return ordinal >= 0 ? ordinal : throw new ArgumentException($"{Schema}.{Table} has no column '{name}'", nameof(name));
    }
}
