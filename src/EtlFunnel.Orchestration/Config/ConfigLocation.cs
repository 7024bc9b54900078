namespace EtlFunnel.Orchestration.Config;

/// <summary>Where a value came from in a YAML file, printed as <c>file(line,col)</c>.</summary>
public readonly record struct ConfigLocation(string File, int Line, int Column)
{
    /// <inheritdoc />
    public override string ToString() => $"{File}({Line},{Column})";
}

/// <summary>A config or machine-profile file is invalid; the message starts with <c>file(line,col):</c> and says what to do.</summary>
public sealed class ConfigException : Exception
{
    /// <summary>Creates the exception for a problem at <paramref name="location"/>.</summary>
    public ConfigException(ConfigLocation location, string message, Exception? innerException = null)
        : base($"{location}: {message}", innerException)
    {
        Location = location;
        Problem = message;
    }

    /// <summary>Creates the exception for a problem that concerns a whole file.</summary>
    public ConfigException(string file, string message, Exception? innerException = null)
        : base($"{file}: {message}", innerException)
    {
        Location = new ConfigLocation(file, 0, 0);
        Problem = message;
    }

    /// <summary>Where the problem is.</summary>
    public ConfigLocation Location { get; }

    /// <summary>The message without the location prefix.</summary>
    public string Problem { get; }
}
