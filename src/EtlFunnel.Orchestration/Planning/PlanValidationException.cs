using System.Collections.Immutable;

namespace EtlFunnel.Orchestration.Planning;

/// <summary>One reason a plan was refused: the hook file (and line, when known) and what is wrong with which entry.</summary>
public sealed record PlanError(string? File, int? Line, string Message)
{
    /// <summary><c>file(line): error: message</c>.</summary>
    public override string ToString() => File is null
        ? $"error: {Message}"
        : Line is { } line ? $"{File}({line}): error: {Message}" : $"{File}: error: {Message}";
}

/// <summary>The hooks returned a plan that breaks the rules (see docs/planning.md, "Validation"); nothing ran.</summary>
public sealed class PlanValidationException : Exception
{
    /// <summary>Creates the exception with every error found.</summary>
    public PlanValidationException(IReadOnlyList<PlanError> errors)
        : base($"The plan was refused ({errors.Count} error{(errors.Count == 1 ? "" : "s")}):{Environment.NewLine}{string.Join(Environment.NewLine, errors.Take(20))}")
    {
        Errors = [.. errors];
    }

    /// <summary>Every error found, in hook order.</summary>
    public ImmutableArray<PlanError> Errors { get; }
}
