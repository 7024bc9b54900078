// Skips rows that are not for sale and lets deletes of rows through under the transformed id.
void Transform(RowView row, DocumentWriter doc)
{
    doc.Id = "p-" + row.Id;
    if (row.Operation == RowOperation.Delete)
    {
        return;
    }

    if (row.IsNull("price_cents"))
    {
        doc.Skip();
    }
}
