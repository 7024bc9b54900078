namespace EtlFunnel.Cli;

/// <summary>The command's exit codes.</summary>
internal static class ExitCodes
{
    /// <summary>Done.</summary>
    public const int Ok = 0;

    /// <summary>The work failed: hooks did not compile, the plan was refused, a server did not answer.</summary>
    public const int Failure = 1;

    /// <summary>The command line, the config or a machine profile is wrong.</summary>
    public const int Usage = 2;

    /// <summary>Stopped by Ctrl-C / SIGTERM before the end; checkpoints are saved, running again resumes (128 + SIGINT, as shells do).</summary>
    public const int Interrupted = 130;

    /// <summary><c>run</c>: a batch-level hook (termination rule, checkpoint or backlog hook) stopped a replica; checkpoints are saved, running again resumes.</summary>
    public const int Stopped = 3;
}
