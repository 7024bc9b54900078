using System.Text;

namespace EtlFunnel.Destinations;

/// <summary>How names become file and folder names under the files destination, the state folder and the dead-letter folder.</summary>
public static class FileNames
{
    /// <summary>A file-name-safe form of a name (escaping is reversible, so distinct names stay distinct).</summary>
    public static string Safe(string name)
    {
        var sb = new StringBuilder(name.Length);
        foreach (var ch in name)
        {
            if (char.IsAsciiLetterOrDigit(ch) || ch is '-' or '_' or '.')
            {
                sb.Append(ch);
            }
            else
            {
                sb.Append('%').Append(((int)ch).ToString("X4", System.Globalization.CultureInfo.InvariantCulture));
            }
        }

        var s = sb.ToString();
        return s is "." or ".." ? s.Replace(".", "%002E", StringComparison.Ordinal) : s;
    }
}
