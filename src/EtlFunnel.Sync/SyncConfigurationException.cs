namespace EtlFunnel.Sync;

/// <summary>The job cannot run as described (missing table, no key, bad incremental column); the message says what to fix.</summary>
public sealed class SyncConfigurationException : Exception
{
    /// <summary>Creates the exception with a message that says what to fix.</summary>
    public SyncConfigurationException(string message) : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public SyncConfigurationException()
    {
    }

    /// <summary>Creates the exception with an inner cause.</summary>
    public SyncConfigurationException(string message, Exception innerException) : base(message, innerException)
    {
    }
}
