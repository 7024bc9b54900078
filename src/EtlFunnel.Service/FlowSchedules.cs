namespace EtlFunnel.Service;

/// <summary>Works out each flow's interval: its own <c>interval:</c> in flows.yaml, else <c>--interval</c>, else the default.</summary>
internal static class FlowSchedules
{
    /// <summary>The interval of a flow that names none, when <c>--interval</c> is not given either.</summary>
    public static readonly TimeSpan DefaultInterval = TimeSpan.FromMinutes(5);

    /// <summary>One schedule per flow. <c>Origin</c> says where a flow's interval was written (e.g. <c>flows.yaml(12,15)</c>) for the error.</summary>
    public static IReadOnlyList<FlowSchedule> Resolve(
        IEnumerable<(string Flow, string? Interval, string Origin)> flows,
        string? globalInterval)
    {
        ArgumentNullException.ThrowIfNull(flows);
        var fallback = globalInterval is null ? DefaultInterval : Interval.Parse(globalInterval, "--interval");
        return [.. flows.Select(f => new FlowSchedule(
            f.Flow,
            f.Interval is null ? fallback : Interval.Parse(f.Interval, $"{f.Origin}: flow '{f.Flow}' interval"))),];
    }
}
