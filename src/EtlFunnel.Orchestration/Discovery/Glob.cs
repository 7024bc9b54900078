using System.Text;
using System.Text.RegularExpressions;

namespace EtlFunnel.Orchestration.Discovery;

/// <summary>Case-sensitive <c>*</c> / <c>?</c> globs for schema and table names.</summary>
internal sealed class Glob
{
    private readonly Regex _regex;

    public Glob(string pattern)
    {
        Pattern = pattern;
        var sb = new StringBuilder("^");
        foreach (var ch in pattern)
        {
            sb.Append(ch switch
            {
                '*' => ".*",
                '?' => ".",
                _ => Regex.Escape(ch.ToString()),
            });
        }

        _regex = new Regex(sb.Append('$').ToString(), RegexOptions.CultureInvariant | RegexOptions.Singleline);
    }

    public string Pattern { get; }

    /// <summary>True when <paramref name="pattern"/> holds <c>*</c> or <c>?</c>, i.e. may match several names (or none by design).</summary>
    public static bool HasWildcards(string pattern) => pattern.AsSpan().IndexOfAny('*', '?') >= 0;

    public bool IsMatch(string name) => _regex.IsMatch(name);
}
