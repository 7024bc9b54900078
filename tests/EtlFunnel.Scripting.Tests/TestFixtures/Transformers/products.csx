// Realistic transformer: rename 2, drop 1, compute 1, nest, change _id, route by a column.
string AppliesTo => "shop/public.products*";

void Transform(RowView row, DocumentWriter doc)
{
    doc.Rename("name", "title");
    doc.Rename("price_cents", "price");
    doc.Drop("secret");
    if (!row.IsNull("price_cents"))
    {
        doc.Set("price_eur", row.GetInt64("price_cents") / 100.0);
    }

    doc.Nest("stock", "warehouse", "quantity");
    doc.Id = "p-" + row.Id;
    if (row.GetBoolean("archived"))
    {
        doc.Index = "products-archive";
    }
}
