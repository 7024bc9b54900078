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
}
