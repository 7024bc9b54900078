using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Threading.Tasks;
using EtlFunnel.Execution.Models;

namespace EtlFunnel.Execution.Testing;

/// <summary>
/// The assertions of <c>*.test.csx</c> cases (and usable from any test framework): each failure throws
/// <see cref="CheckFailedException"/>, which <c>etlfunnel hooks test</c> reports at the calling line of the case.
/// </summary>
public static class Check
{
    /// <summary>Fails unless <paramref name="actual"/> equals <paramref name="expected"/> (<see cref="EqualityComparer{T}.Default"/>).</summary>
    public static void Equal<T>(T expected, T actual, string? because = null)
    {
        if (!EqualityComparer<T>.Default.Equals(expected, actual))
        {
            Fail($"expected {Show(expected)} but got {Show(actual)}", because);
        }
    }

    /// <summary>Fails unless <paramref name="condition"/> is true.</summary>
    public static void True(bool condition, string? because = null)
    {
        if (!condition)
        {
            Fail("expected true but got false", because);
        }
    }

    /// <summary>Fails unless <paramref name="condition"/> is false.</summary>
    public static void False(bool condition, string? because = null)
    {
        if (condition)
        {
            Fail("expected false but got true", because);
        }
    }

    /// <summary>Fails unless <paramref name="items"/> has exactly <paramref name="expected"/> elements.</summary>
    public static void Count<T>(int expected, IEnumerable<T>? items, string? because = null)
    {
        if (items is null)
        {
            Fail($"expected {expected} item(s) but got null", because);
            return;
        }

        var count = items.Count();
        if (count != expected)
        {
            Fail($"expected {expected} item(s) but got {count}", because);
        }
    }

    /// <summary>Fails unless the tunes give <paramref name="entity"/> exactly <paramref name="expected"/> replicas.</summary>
    public static void Replicas(int expected, IEnumerable<OrchestratorTune>? tunes, string entity, string? because = null)
    {
        var count = (tunes ?? []).Count(t => string.Equals(t.ParentEntityName, entity, StringComparison.Ordinal));
        if (count != expected)
        {
            Fail($"expected {expected} replica(s) of '{entity}' but got {count}", because);
        }
    }

    /// <summary>Fails unless <paramref name="action"/> throws <typeparamref name="TException"/> (or a subclass); returns it.</summary>
    public static TException Throws<TException>(Action action, string? because = null)
        where TException : Exception
    {
        ArgumentNullException.ThrowIfNull(action);
        // The same checks as ThrowsAsync; the task it awaits has completed when action returns, so nothing blocks here.
        return ThrowsAsync<TException>(
            () =>
            {
                action();
                return Task.CompletedTask;
            },
            because).GetAwaiter().GetResult();
    }

    /// <summary>Fails unless the task <paramref name="action"/> returns throws <typeparamref name="TException"/>; returns it.</summary>
    public static async Task<TException> ThrowsAsync<TException>(Func<Task> action, string? because = null)
        where TException : Exception
    {
        ArgumentNullException.ThrowIfNull(action);
        try
        {
            await action().ConfigureAwait(false);
        }
        catch (TException expected) when (expected is not CheckFailedException || typeof(TException) == typeof(CheckFailedException))
        {
            return expected;
        }
        catch (Exception other) when (other is not CheckFailedException)
        {
            Fail($"expected {typeof(TException).Name} but {other.GetType().Name} was thrown: {other.Message}", because);
        }

        Fail($"expected {typeof(TException).Name} but nothing was thrown", because);
        return null!;
    }

    /// <summary>Fails the case with <paramref name="message"/>.</summary>
    public static void Fail(string message, string? because = null)
        => throw new CheckFailedException(because is null ? message : $"{message}: {because}");

    private static string Show<T>(T value) => value switch
    {
        null => "null",
        string s => $"\"{s}\"",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };
}

/// <summary>A <see cref="Check"/> failed: the case fails with this message at the line that called the check.</summary>
public sealed class CheckFailedException : Exception
{
    /// <summary>Creates the failure.</summary>
    public CheckFailedException()
    {
    }

    /// <summary>Creates the failure with its message.</summary>
    public CheckFailedException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the failure with its message and cause.</summary>
    public CheckFailedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
