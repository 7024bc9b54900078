// Throws on exactly one row (the one called "bad").
void Transform(RowView row, DocumentWriter doc)
{
    var name = row.GetString("name");
    if (name == "bad")
    {
        throw new InvalidOperationException("cannot index a product called bad");
    }

    doc.Set("name_length", name.Length);
}
