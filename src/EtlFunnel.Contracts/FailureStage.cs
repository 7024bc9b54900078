namespace EtlFunnel.Execution.Models;

/// <summary>Where a record failed, as a backlog hook sees it.</summary>
public enum FailureStage
{
    /// <summary>A transformer threw on the row.</summary>
    Transform = 0,

    /// <summary>The destination rejected the document (e.g. a mapping error).</summary>
    Write = 1,
}
