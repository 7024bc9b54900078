// Transform with the wrong shape: EF0003.
string Transform(RowView row)
{
    return row.Id;
}
