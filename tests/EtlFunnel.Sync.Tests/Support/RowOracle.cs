using System.Globalization;
using System.Text.Json;
using Npgsql;

namespace EtlFunnel.Sync.Tests.Support;

/// <summary>Checks documents against PostgreSQL's own <c>row_to_json</c> of the same rows (UTC), whatever sink wrote them.</summary>
internal static class RowOracle
{
    /// <summary>
    /// Asserts that each row of <c>all_types</c> (see <see cref="DocumentMappingTests.AllTypes"/>) equals its document in
    /// <paramref name="docs"/> (id → source): same fields in column order, semantically equal values (bytea too: PostgreSQL's hex form).
    /// Returns how many values were compared.
    /// </summary>
    public static async Task<int> AssertAllTypesRowsEqualAsync(string connectionString, IReadOnlyDictionary<string, JsonElement> docs)
    {
        await using var conn = new NpgsqlConnection(connectionString);
        await conn.OpenAsync();
        await using (var tz = new NpgsqlCommand("SET TimeZone = 'UTC'", conn))
        {
            await tz.ExecuteNonQueryAsync();
        }

        await using var cmd = new NpgsqlCommand("SELECT id::text, row_to_json(r)::text FROM all_types r", conn);
        await using var reader = await cmd.ExecuteReaderAsync();
        var compared = 0;
        while (await reader.ReadAsync())
        {
            var doc = docs[reader.GetString(0)];
            using var row = JsonDocument.Parse(reader.GetString(1));
            var rowProps = row.RootElement.EnumerateObject().ToList();
            doc.EnumerateObject().Select(p => p.Name).Should().Equal(rowProps.Select(p => p.Name), "fields are the columns, in order");
            foreach (var prop in rowProps)
            {
                var actual = doc.GetProperty(prop.Name);
                JsonSemanticallyEqual(actual, prop.Value).Should().BeTrue($"row {reader.GetString(0)} column {prop.Name}: {actual.GetRawText()} vs {prop.Value.GetRawText()}");
                compared++;
            }
        }

        return compared;
    }

    private static bool JsonSemanticallyEqual(JsonElement a, JsonElement b)
    {
        if (a.ValueKind == JsonValueKind.Number && b.ValueKind == JsonValueKind.Number)
        {
            return a.GetRawText() == b.GetRawText()
                || decimal.TryParse(a.GetRawText(), NumberStyles.Float, CultureInfo.InvariantCulture, out var x)
                   && decimal.TryParse(b.GetRawText(), NumberStyles.Float, CultureInfo.InvariantCulture, out var y) && x == y
                || a.GetDouble() == b.GetDouble();
        }

        if (a.ValueKind != b.ValueKind)
        {
            return false;
        }

        return a.ValueKind switch
        {
            JsonValueKind.Object => a.EnumerateObject().Count() == b.EnumerateObject().Count()
                && a.EnumerateObject().All(p => b.TryGetProperty(p.Name, out var q) && JsonSemanticallyEqual(p.Value, q)),
            JsonValueKind.Array => a.GetArrayLength() == b.GetArrayLength() && a.EnumerateArray().Zip(b.EnumerateArray()).All(z => JsonSemanticallyEqual(z.First, z.Second)),
            JsonValueKind.String => a.GetString() == b.GetString(),
            _ => true,
        };
    }
}
