namespace EtlFunnel.Execution.Models;

/// <summary>
/// The output document of one row, given to a transformer's <c>Transform(RowView row, DocumentWriter doc)</c>. It starts
/// as the engine's own document (every column, in order, under its name, id and index from the pipeline); a transformer
/// edits it. Field names are top-level names; <see cref="Nest"/> builds objects.
/// </summary>
public abstract class DocumentWriter
{
    /// <summary>For the engine's implementations only.</summary>
    protected DocumentWriter()
    {
    }

    /// <summary>The document's <c>_id</c>; set it to write the row under another id.</summary>
    public abstract string Id { get; set; }

    /// <summary>The index (or file) the document goes to; null means the pipeline's own. Set it to route the row.</summary>
    public abstract string? Index { get; set; }

    /// <summary>True once <see cref="Skip"/> was called.</summary>
    public abstract bool IsSkipped { get; }

    /// <summary>Writes nothing for this row (for a delete: does not delete). The row still counts as done.</summary>
    public abstract void Skip();

    /// <summary>True when the document has a top-level field called <paramref name="name"/>.</summary>
    public abstract bool Has(string name);

    /// <summary>
    /// Renames a top-level field, keeping its place; throws when it does not exist or the new name is taken. For a CDC delete
    /// (<see cref="RowOperation.Delete"/>), whose row carries only the key columns unless the table has REPLICA IDENTITY FULL,
    /// a field that is not there is left alone instead, so a transformer written for upserts also handles deletes.
    /// </summary>
    public abstract void Rename(string name, string newName);

    /// <summary>Removes a top-level field; nothing happens when it does not exist.</summary>
    public abstract void Drop(string name);

    /// <summary>Sets a field to a string (null writes JSON null); adds it at the end when it is new.</summary>
    public abstract void Set(string name, string? value);

    /// <summary>Sets a field to an integer.</summary>
    public abstract void Set(string name, long value);

    /// <summary>Sets a field to a number (NaN and infinities are written as strings, as the engine does).</summary>
    public abstract void Set(string name, double value);

    /// <summary>Sets a field to an exact number.</summary>
    public abstract void Set(string name, decimal value);

    /// <summary>Sets a field to a boolean.</summary>
    public abstract void Set(string name, bool value);

    /// <summary>Sets a field to a JSON value given as text (checked: invalid JSON throws).</summary>
    public abstract void SetRawJson(string name, string json);

    /// <summary>
    /// Moves the named top-level fields into an object field <paramref name="objectName"/> (created at the first moved field's
    /// place, or extended when it exists). For a CDC delete, fields the row does not carry are skipped (see <see cref="Rename"/>).
    /// </summary>
    public abstract void Nest(string objectName, params string[] fields);
}
