// Never finishes a row: the per-batch budget must stop it.
void Transform(RowView row, DocumentWriter doc)
{
    long spins = 0;
    while (spins >= 0)
    {
        spins++;
    }
}
