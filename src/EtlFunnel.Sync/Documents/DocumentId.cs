using System.Text;
using EtlFunnel.Destinations;

namespace EtlFunnel.Sync.Documents;

/// <summary>
/// The <c>_id</c> rule: the PostgreSQL text form of the key value; for a composite key the parts are joined with <c>|</c>,
/// each part with <c>\</c> written as <c>\\</c> and <c>|</c> as <c>\|</c>, so distinct keys never give the same id.
/// </summary>
internal static class DocumentId
{
    public static string Compose(IReadOnlyList<string> parts)
    {
        if (parts.Count == 1)
        {
            return parts[0];
        }

        var sb = new StringBuilder();
        for (var i = 0; i < parts.Count; i++)
        {
            if (i > 0)
            {
                sb.Append('|');
            }

            foreach (var ch in parts[i])
            {
                if (ch is '|' or '\\')
                {
                    sb.Append('\\');
                }

                sb.Append(ch);
            }
        }

        return sb.ToString();
    }
}
