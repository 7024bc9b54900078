using System.Buffers.Binary;

namespace EtlFunnel.Sync.Postgres;

/// <summary>
/// PostgreSQL's binary numeric as the JSON <c>to_json(numeric)</c> gives: the exact text of <c>numeric_out</c> (every digit
/// of the scale kept), and the special values NaN, Infinity and -Infinity as JSON strings.
/// </summary>
internal static class PgNumeric
{
    private const ushort Negative = 0x4000;
    private const ushort NaN = 0xC000;
    private const ushort PositiveInfinity = 0xD000;
    private const ushort NegativeInfinity = 0xF000;

    /// <summary>Upper bound of <see cref="WriteJson"/>'s output for this binary value.</summary>
    public static int MaxTextLength(ReadOnlySpan<byte> value)
    {
        var weight = BinaryPrimitives.ReadInt16BigEndian(value[2..]);
        var scale = BinaryPrimitives.ReadUInt16BigEndian(value[6..]);
        // sign, integer digits (4 per base-10000 digit, at least "0"), point, scale digits; or a quoted special value.
        return Math.Max(12, 1 + (Math.Max(weight + 1, 1) * 4) + 1 + scale);
    }

    /// <summary>Writes the value (binary numeric: ndigits, weight, sign, dscale, then base-10000 digits) and returns the length.</summary>
    public static int WriteJson(ReadOnlySpan<byte> value, Span<byte> destination)
    {
        var ndigits = BinaryPrimitives.ReadInt16BigEndian(value);
        var weight = BinaryPrimitives.ReadInt16BigEndian(value[2..]);
        var sign = BinaryPrimitives.ReadUInt16BigEndian(value[4..]);
        var scale = BinaryPrimitives.ReadUInt16BigEndian(value[6..]);
        var digits = value[8..];
        switch (sign)
        {
            case NaN: return PgDigits.Quoted("NaN"u8, destination);
            case PositiveInfinity: return PgDigits.Quoted("Infinity"u8, destination);
            case NegativeInfinity: return PgDigits.Quoted("-Infinity"u8, destination);
        }

        var at = 0;
        if (sign == Negative)
        {
            destination[at++] = (byte)'-';
        }

        // numeric_out: the integer part's groups with the first one's leading zeros suppressed ("0" when weight < 0),
        // then exactly `scale` fraction digits.
        int d;
        if (weight < 0)
        {
            d = weight + 1;
            destination[at++] = (byte)'0';
        }
        else
        {
            for (d = 0; d <= weight; d++)
            {
                var dig = Digit(digits, ndigits, d);
                if (d == 0)
                {
                    at += PgDigits.Pad(dig, 1, destination[at..]);
                }
                else
                {
                    WriteGroup(dig, destination[at..]);
                    at += 4;
                }
            }
        }

        if (scale > 0)
        {
            destination[at++] = (byte)'.';
            var end = at + scale;
            Span<byte> group = stackalloc byte[4];
            for (var i = 0; i < scale; d++, i += 4)
            {
                WriteGroup(Digit(digits, ndigits, d), group);
                group[..Math.Min(4, end - at)].CopyTo(destination[at..]);
                at += Math.Min(4, end - at);
            }
        }

        return at;
    }

    private static int Digit(ReadOnlySpan<byte> digits, int ndigits, int d) =>
        d >= 0 && d < ndigits ? BinaryPrimitives.ReadInt16BigEndian(digits[(d * 2)..]) : 0;

    private static void WriteGroup(int dig, Span<byte> destination)
    {
        destination[3] = (byte)('0' + (dig % 10));
        dig /= 10;
        destination[2] = (byte)('0' + (dig % 10));
        dig /= 10;
        destination[1] = (byte)('0' + (dig % 10));
        destination[0] = (byte)('0' + (dig / 10));
    }
}

/// <summary>
/// PostgreSQL's binary date/timestamp values as <c>to_json</c> writes them (XSD style, session time zone UTC):
/// <c>"2024-02-29T11:14:15.5+00:00"</c>, <c>"2024-02-29T11:14:15.5"</c>, <c>"2024-02-29"</c>; years BC as
/// <c>"0044-03-15 BC"</c>; <c>"infinity"</c> / <c>"-infinity"</c>. The calendar arithmetic is PostgreSQL's own (j2date).
/// </summary>
internal static class PgDateTime
{
    /// <summary>Longest JSON text written, quotes included ("294276-12-31T23:59:59.999999+00:00", "5874897-12-31", " BC" fit).</summary>
    public const int MaxJsonLength = 48;

    private const long MicrosecondsPerDay = 86_400_000_000L;
    private const int PostgresEpochJulianDay = 2_451_545;

    /// <summary>Writes a binary timestamp / timestamptz (microseconds since 2000-01-01) and returns the length.</summary>
    public static int WriteTimestampJson(long microseconds, bool withZone, Span<byte> destination)
    {
        if (microseconds == long.MaxValue)
        {
            return PgDigits.Quoted("infinity"u8, destination);
        }

        if (microseconds == long.MinValue)
        {
            return PgDigits.Quoted("-infinity"u8, destination);
        }

        // timestamp2tm: whole days and the time of day, the time made non-negative.
        var date = microseconds / MicrosecondsPerDay;
        var time = microseconds - (date * MicrosecondsPerDay);
        if (time < 0)
        {
            time += MicrosecondsPerDay;
            date--;
        }

        J2Date((int)(date + PostgresEpochJulianDay), out var year, out var month, out var day);
        var at = 0;
        destination[at++] = (byte)'"';
        at += WriteDate(year, month, day, destination[at..]);
        destination[at++] = (byte)'T';
        var seconds = time / 1_000_000;
        var fraction = (int)(time - (seconds * 1_000_000));
        at += PgDigits.Pad((int)(seconds / 3600), 2, destination[at..]);
        destination[at++] = (byte)':';
        at += PgDigits.Pad((int)(seconds / 60 % 60), 2, destination[at..]);
        destination[at++] = (byte)':';
        at += PgDigits.Pad((int)(seconds % 60), 2, destination[at..]);
        if (fraction != 0)
        {
            // Six digits, trailing zeros dropped (AppendSeconds).
            destination[at++] = (byte)'.';
            var digits = 6;
            while (fraction % 10 == 0)
            {
                fraction /= 10;
                digits--;
            }

            at += PgDigits.Pad(fraction, digits, destination[at..]);
        }

        if (withZone)
        {
            "+00:00"u8.CopyTo(destination[at..]);
            at += 6;
        }

        at += Era(year, destination[at..]);
        destination[at++] = (byte)'"';
        return at;
    }

    /// <summary>Writes a binary date (days since 2000-01-01) and returns the length.</summary>
    public static int WriteDateJson(int days, Span<byte> destination)
    {
        if (days == int.MaxValue)
        {
            return PgDigits.Quoted("infinity"u8, destination);
        }

        if (days == int.MinValue)
        {
            return PgDigits.Quoted("-infinity"u8, destination);
        }

        J2Date(days + PostgresEpochJulianDay, out var year, out var month, out var day);
        var at = 0;
        destination[at++] = (byte)'"';
        at += WriteDate(year, month, day, destination[at..]);
        at += Era(year, destination[at..]);
        destination[at++] = (byte)'"';
        return at;
    }

    // PostgreSQL's j2date (src/backend/utils/adt/datetime.c): Julian day number to the proleptic Gregorian calendar.
    private static void J2Date(int julianDay, out int year, out int month, out int day)
    {
        var julian = (uint)julianDay;
        julian += 32044;
        var quad = julian / 146097;
        var extra = ((julian - (quad * 146097)) * 4) + 3;
        julian += 60 + (quad * 3) + (extra / 146097);
        quad = julian / 1461;
        julian -= quad * 1461;
        var y = (int)(julian * 4 / 1461);
        julian = (y != 0 ? (julian + 305) % 365 : (julian + 306) % 366) + 123;
        y += (int)(quad * 4);
        year = y - 4800;
        quad = julian * 2141 / 65536;
        day = (int)(julian - (7834 * quad / 256));
        month = (int)((quad + 10) % 12) + 1;
    }

    private static int WriteDate(int year, int month, int day, Span<byte> destination)
    {
        // Year 0 is 1 BC: the era suffix carries the sign.
        var at = PgDigits.Pad(year > 0 ? year : -(year - 1), 4, destination);
        destination[at++] = (byte)'-';
        at += PgDigits.Pad(month, 2, destination[at..]);
        destination[at++] = (byte)'-';
        at += PgDigits.Pad(day, 2, destination[at..]);
        return at;
    }

    private static int Era(int year, Span<byte> destination)
    {
        if (year > 0)
        {
            return 0;
        }

        " BC"u8.CopyTo(destination);
        return 3;
    }

}

/// <summary>Digit and quote helpers shared by the numeric and date/time writers.</summary>
internal static class PgDigits
{
    // At least `width` digits, zero-padded (pg_ultostr_zeropad).
    public static int Pad(int value, int width, Span<byte> destination)
    {
        var digits = 1;
        for (var rest = value; rest >= 10; rest /= 10)
        {
            digits++;
        }

        var count = Math.Max(width, digits);
        for (var i = count - 1; i >= 0; i--)
        {
            destination[i] = (byte)('0' + (value % 10));
            value /= 10;
        }

        return count;
    }

    public static int Quoted(ReadOnlySpan<byte> text, Span<byte> destination)
    {
        destination[0] = (byte)'"';
        text.CopyTo(destination[1..]);
        destination[text.Length + 1] = (byte)'"';
        return text.Length + 2;
    }
}
