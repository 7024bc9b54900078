using System.Globalization;

namespace EtlFunnel.Orchestration.Plans;

/// <summary>An exact, reduced fraction in [0, 1] that bounds a partition of a table (see docs/planning.md, "Partition scheme").</summary>
public readonly record struct Fraction : IComparable<Fraction>
{
    /// <summary>Creates the reduced fraction <paramref name="numerator"/>/<paramref name="denominator"/>.</summary>
    public Fraction(long numerator, long denominator)
    {
        if (denominator <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(denominator), denominator, "The denominator must be positive.");
        }

        if (numerator < 0 || numerator > denominator)
        {
            throw new ArgumentOutOfRangeException(nameof(numerator), numerator, "A partition bound lies between 0 and 1.");
        }

        var gcd = Gcd(numerator, denominator);
        Numerator = numerator / gcd;
        Denominator = denominator / gcd;
    }

    /// <summary>0, the start of every table.</summary>
    public static Fraction Zero { get; } = new(0, 1);

    /// <summary>1, the (open) end of every table.</summary>
    public static Fraction One { get; } = new(1, 1);

    /// <summary>The reduced numerator.</summary>
    public long Numerator { get; }

    /// <summary>The reduced denominator (positive).</summary>
    public long Denominator { get; }

    /// <summary>Parses <c>0</c>, <c>1</c> or <c>n/d</c>.</summary>
    public static Fraction Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var slash = text.IndexOf('/', StringComparison.Ordinal);
        if (slash < 0)
        {
            return new Fraction(long.Parse(text, NumberStyles.None, CultureInfo.InvariantCulture), 1);
        }

        return new Fraction(
            long.Parse(text.AsSpan(0, slash), NumberStyles.None, CultureInfo.InvariantCulture),
            long.Parse(text.AsSpan(slash + 1), NumberStyles.None, CultureInfo.InvariantCulture));
    }

    /// <summary>The heap block this bound maps to for a table of <paramref name="blockCount"/> blocks: floor(f * B).</summary>
    public long ToBlock(long blockCount) => (long)((Int128)Numerator * blockCount / Denominator);

    /// <inheritdoc />
    public int CompareTo(Fraction other) => ((Int128)Numerator * other.Denominator).CompareTo((Int128)other.Numerator * Denominator);

    /// <summary>Less than.</summary>
    public static bool operator <(Fraction left, Fraction right) => left.CompareTo(right) < 0;

    /// <summary>Greater than.</summary>
    public static bool operator >(Fraction left, Fraction right) => left.CompareTo(right) > 0;

    /// <summary>Less than or equal.</summary>
    public static bool operator <=(Fraction left, Fraction right) => left.CompareTo(right) <= 0;

    /// <summary>Greater than or equal.</summary>
    public static bool operator >=(Fraction left, Fraction right) => left.CompareTo(right) >= 0;

    /// <summary><c>0</c>, <c>1</c> or <c>n/d</c>.</summary>
    public override string ToString() => Denominator == 1
        ? Numerator.ToString(CultureInfo.InvariantCulture)
        : string.Create(CultureInfo.InvariantCulture, $"{Numerator}/{Denominator}");

    private static long Gcd(long a, long b)
    {
        while (b != 0)
        {
            (a, b) = (b, a % b);
        }

        return a == 0 ? 1 : a;
    }
}
