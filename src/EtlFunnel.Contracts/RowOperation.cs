namespace EtlFunnel.Execution.Models;

/// <summary>What happened to the source row a transformer sees.</summary>
public enum RowOperation
{
    /// <summary>The row exists (full and incremental reads, CDC inserts and updates): its document is written.</summary>
    Upsert = 0,

    /// <summary>The row was deleted (CDC only): the view holds the key columns the change carried; the document is deleted.</summary>
    Delete = 1,
}
