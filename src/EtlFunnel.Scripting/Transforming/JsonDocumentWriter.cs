using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using EtlFunnel.Execution.Models;

namespace EtlFunnel.Scripting.Transforming;

/// <summary>
/// A <see cref="DocumentWriter"/> that starts as the row's own document and records the edits as a list of fields
/// (a column of the row, a value set by the hook, or an object of nested fields), built at the first edit;
/// <see cref="WriteTo"/> writes the result, copying column values' bytes as they are. A row nobody edited is
/// <see cref="IsEdited"/> false: its document is the input, byte for byte, and is not written again. One instance serves a
/// whole batch. For a delete (no document is
/// written; the row holds the key columns) renaming or nesting a field it lacks does nothing, so a transformer written for
/// upserts still routes and re-keys the delete.
/// </summary>
internal sealed class JsonDocumentWriter : DocumentWriter
{
    private static readonly JsonWriterOptions WriterOptions = new() { SkipValidation = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    private static readonly byte[] TrueJson = "true"u8.ToArray();
    private static readonly byte[] FalseJson = "false"u8.ToArray();
    private readonly List<Field> fields = [];
    private JsonRowView row = null!;
    private Utf8JsonWriter? writer;
    private string id = "";
    private string? index;
    private bool skipped;
    private bool hasFields;
    private bool edited;

    public override string Id
    {
        get => id;
        set => id = string.IsNullOrEmpty(value) ? throw new ArgumentException("a document id cannot be empty", nameof(value)) : value;
    }

    public override string? Index
    {
        get => index;
        set => index = value is null || IsIndexName(value) ? value
            : throw new ArgumentException($"'{value}' is not an index name (lowercase letters, digits, '-', '_', '.'; not starting with '-', '_' or '+')", nameof(value));
    }

    public override bool IsSkipped => skipped;

    /// <summary>True once the transformer changed the document's fields (renamed, dropped, set or nested one).</summary>
    public bool IsEdited => edited;

    public void Reset(JsonRowView view)
    {
        row = view;
        (id, index, skipped, hasFields, edited) = (view.Id, null, false, false, false);
    }

    // The row's columns as fields, listed at the first call that needs them (a transformer that edits nothing never does).
    private List<Field> Fields()
    {
        if (!hasFields)
        {
            fields.Clear();
            for (var o = 0; o < row.ColumnCount; o++)
            {
                fields.Add(new Field(row.GetName(o), o, null, null));
            }

            hasFields = true;
        }

        return fields;
    }

    public override void Skip() => skipped = true;

    public override bool Has(string name) => Find(name) >= 0;

    public override void Rename(string name, string newName)
    {
        var at = Find(name);
        if (at < 0)
        {
            // A delete writes no document and its row holds only the key columns: edits written for upserts must not fail it.
            if (row.Operation == RowOperation.Delete)
            {
                return;
            }

            throw new ArgumentException($"the document has no field '{name}' to rename", nameof(name));
        }

        if (name != newName && Find(newName) >= 0)
        {
            throw new ArgumentException($"the document already has a field '{newName}'", nameof(newName));
        }

        if (name != newName)
        {
            fields[at] = fields[at] with { Name = newName };
            edited = true;
        }
    }

    public override void Drop(string name)
    {
        var at = Find(name);
        if (at >= 0)
        {
            fields.RemoveAt(at);
            edited = true;
        }
    }

    public override void Set(string name, string? value) => Put(name, value is null ? "null"u8.ToArray() : JsonSerializer.SerializeToUtf8Bytes(value));

    public override void Set(string name, long value) => Put(name, Encoding.UTF8.GetBytes(value.ToString(CultureInfo.InvariantCulture)));

    public override void Set(string name, double value) => Put(name, double.IsFinite(value)
        ? Encoding.UTF8.GetBytes(value.ToString("R", CultureInfo.InvariantCulture))
        : JsonSerializer.SerializeToUtf8Bytes(double.IsNaN(value) ? "NaN" : value > 0 ? "Infinity" : "-Infinity"));

    public override void Set(string name, decimal value) => Put(name, Encoding.UTF8.GetBytes(value.ToString(CultureInfo.InvariantCulture)));

    public override void Set(string name, bool value) => Put(name, value ? TrueJson : FalseJson);

    public override void SetRawJson(string name, string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        var bytes = Encoding.UTF8.GetBytes(json);
        try
        {
            using var parsed = JsonDocument.Parse(bytes);
        }
        catch (JsonException ex)
        {
            throw new ArgumentException($"the value for '{name}' is not JSON: {ex.Message}", nameof(json), ex);
        }

        Put(name, bytes);
    }

    public override void Nest(string objectName, params string[] fields)
    {
        ArgumentNullException.ThrowIfNull(fields);
        var target = Find(objectName);
        if (target >= 0 && this.fields[target].Children is null)
        {
            throw new ArgumentException($"the document's field '{objectName}' is not an object made by Nest", nameof(objectName));
        }

        List<Field> children = target >= 0 ? this.fields[target].Children! : [];
        foreach (var name in fields)
        {
            var at = Find(name);
            if (at < 0 && row.Operation == RowOperation.Delete)
            {
                continue;
            }

            if (at < 0 || at == target)
            {
                throw new ArgumentException($"the document has no field '{name}' to nest into '{objectName}'", nameof(fields));
            }

            children.Add(this.fields[at]);
            edited = true;
            if (target < 0)
            {
                this.fields[at] = new Field(objectName, -1, null, children);
                target = at;
            }
            else
            {
                this.fields.RemoveAt(at);
                if (at < target)
                {
                    target--;
                }
            }
        }
    }

    /// <summary>Writes the document's JSON (the <c>_source</c>).</summary>
    public void WriteTo(IBufferWriter<byte> output)
    {
        if (writer is null)
        {
            writer = new Utf8JsonWriter(output, WriterOptions);
        }
        else
        {
            writer.Reset(output);
        }

        WriteObject(writer, Fields());
        writer.Flush();
    }

    private void WriteObject(Utf8JsonWriter writer, List<Field> list)
    {
        writer.WriteStartObject();
        foreach (var field in list)
        {
            writer.WritePropertyName(field.Name);
            if (field.Children is { } children)
            {
                WriteObject(writer, children);
            }
            else if (field.Value is { } value)
            {
                writer.WriteRawValue(value, skipInputValidation: true);
            }
            else
            {
                writer.WriteRawValue(row.Document.Slice(row.ValueStart(field.Column), row.ValueLength(field.Column)), skipInputValidation: true);
            }
        }

        writer.WriteEndObject();
    }

    private void Put(string name, byte[] json)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        var at = Find(name);
        if (at >= 0)
        {
            fields[at] = new Field(name, -1, json, null);
        }
        else
        {
            fields.Add(new Field(name, -1, json, null));
        }

        edited = true;
    }

    private int Find(string name)
    {
        var list = Fields();
        for (var i = 0; i < list.Count; i++)
        {
            if (string.Equals(list[i].Name, name, StringComparison.Ordinal))
            {
                return i;
            }
        }

        return -1;
    }

    private static bool IsIndexName(string name)
        => name.Length is > 0 and <= 255 && name[0] is not ('-' or '_' or '+') && name is not ("." or "..")
           && name.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-' or '_' or '.');

    /// <summary>A column of the row (<see cref="Column"/> ≥ 0), a value set by the hook, or nested fields.</summary>
    private readonly record struct Field(string Name, int Column, byte[]? Value, List<Field>? Children);
}
