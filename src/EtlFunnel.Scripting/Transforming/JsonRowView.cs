using System.Globalization;
using System.Text;
using System.Text.Json;
using EtlFunnel.Execution.Models;

namespace EtlFunnel.Scripting.Transforming;

/// <summary>
/// A <see cref="RowView"/> over the engine's JSON document of a row. The top-level properties are indexed (one pass that
/// records where each value's bytes are) only when the transformer first asks for a column, so a transformer that reads
/// nothing costs no parse; values are decoded only when read. One instance serves a whole batch: the name → ordinal map is
/// built once per column layout, not per row.
/// </summary>
internal sealed class JsonRowView : RowView
{
    private readonly Dictionary<string, int> ordinals = new(StringComparer.Ordinal);
    private readonly List<string> names = [];
    private int[] starts = new int[16];
    private int[] lengths = new int[16];
    private JsonTokenType[] kinds = new JsonTokenType[16];
    private ReadOnlyMemory<byte> document;
    private int count;
    private bool indexed;
    private string flow = "";
    private string schema = "";
    private string table = "";
    private string id = "";
    private RowOperation operation;

    public override RowOperation Operation => operation;

    public override string Flow => flow;

    public override string Schema => schema;

    public override string Table => table;

    public override string Id => id;

    public override int ColumnCount => Indexed().count;

    internal ReadOnlySpan<byte> Document => document.Span;

    internal int ValueStart(int ordinal) => starts[ordinal];

    internal int ValueLength(int ordinal) => lengths[ordinal];

    /// <summary>Points the view at the next row. The document must be one JSON object (the engine's own output).</summary>
    public void Reset(string flowName, string schemaName, string tableName, string documentId, RowOperation op, ReadOnlyMemory<byte> json)
    {
        (flow, schema, table, id, operation, document, indexed) = (flowName, schemaName, tableName, documentId, op, json, false);
    }

    private JsonRowView Indexed()
    {
        if (!indexed)
        {
            BuildIndex();
            indexed = true;
        }

        return this;
    }

    private void BuildIndex()
    {
        var reader = new Utf8JsonReader(document.Span);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            throw new InvalidDataException($"the document of {schema}.{table} id '{id}' is not a JSON object");
        }

        var i = 0;
        var sameLayout = true;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (i == starts.Length)
            {
                Array.Resize(ref starts, i * 2);
                Array.Resize(ref lengths, i * 2);
                Array.Resize(ref kinds, i * 2);
            }

            // Same layout as the previous row (the normal case): compare the name bytes instead of building a string.
            if (sameLayout && (i >= names.Count || !reader.ValueTextEquals(names[i])))
            {
                sameLayout = false;
            }

            if (!sameLayout)
            {
                var name = reader.GetString()!;
                if (i < names.Count)
                {
                    names.RemoveRange(i, names.Count - i);
                }

                names.Add(name);
            }

            reader.Read();
            kinds[i] = reader.TokenType;
            var start = (int)reader.TokenStartIndex;
            if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray)
            {
                reader.Skip();
            }

            starts[i] = start;
            lengths[i] = (int)reader.BytesConsumed - start;
            i++;
        }

        if (!sameLayout || i != names.Count)
        {
            if (i < names.Count)
            {
                names.RemoveRange(i, names.Count - i);
            }

            ordinals.Clear();
            for (var o = 0; o < names.Count; o++)
            {
                ordinals.TryAdd(names[o], o);
            }
        }

        count = i;
    }

    public override string GetName(int ordinal) => names[Check(ordinal)];

    public override int GetOrdinal(string name) => Indexed().ordinals.TryGetValue(name, out var o) ? o : -1;

    public override bool IsNull(int ordinal)
    {
        var o = Check(ordinal); // first: indexing may grow the arrays
        return kinds[o] == JsonTokenType.Null;
    }

    public override string? GetString(int ordinal)
    {
        Check(ordinal);
        return kinds[ordinal] switch
        {
            JsonTokenType.Null => null,
            JsonTokenType.String => Reader(ordinal).GetString(),
            _ => GetRawJson(ordinal),
        };
    }

    public override long GetInt64(int ordinal)
    {
        var reader = Reader(Check(ordinal));
        if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var value))
        {
            return value;
        }

        return reader.TokenType == JsonTokenType.String && long.TryParse(reader.GetString(), NumberStyles.Integer, CultureInfo.InvariantCulture, out value)
            ? value
            : throw Format(ordinal, "a 64-bit integer");
    }

    public override double GetDouble(int ordinal)
    {
        var reader = Reader(Check(ordinal));
        if (reader.TokenType == JsonTokenType.Number)
        {
            return reader.GetDouble();
        }

        return reader.TokenType == JsonTokenType.String && double.TryParse(reader.GetString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var value)
            ? value
            : throw Format(ordinal, "a number");
    }

    public override decimal GetDecimal(int ordinal)
    {
        var reader = Reader(Check(ordinal));
        if (reader.TokenType == JsonTokenType.Number && reader.TryGetDecimal(out var value))
        {
            return value;
        }

        return reader.TokenType == JsonTokenType.String && decimal.TryParse(reader.GetString(), NumberStyles.Float, CultureInfo.InvariantCulture, out value)
            ? value
            : throw Format(ordinal, "a decimal number");
    }

    public override bool GetBoolean(int ordinal) => Check(ordinal) is var o && kinds[o] switch
    {
        JsonTokenType.True => true,
        JsonTokenType.False => false,
        _ => throw Format(ordinal, "a boolean"),
    };

    public override string GetRawJson(int ordinal)
    {
        var o = Check(ordinal);
        return Encoding.UTF8.GetString(document.Span.Slice(starts[o], lengths[o]));
    }

    private Utf8JsonReader Reader(int ordinal)
    {
        var reader = new Utf8JsonReader(document.Span.Slice(starts[ordinal], lengths[ordinal]));
        reader.Read();
        return reader;
    }

    private int Check(int ordinal)
        => (uint)ordinal < (uint)Indexed().count ? ordinal : throw new ArgumentOutOfRangeException(nameof(ordinal), ordinal, $"{schema}.{table} has {count} columns (ordinals 0 to {count - 1})");

    private FormatException Format(int ordinal, string what)
        => new($"column '{names[ordinal]}' of {schema}.{table} is {GetRawJson(ordinal)}, not {what}");

}
