using EtlFunnel.Execution.Models;

namespace EtlFunnel.Destinations;

/// <summary>
/// The files destination scoped to some target indices: bytes of the NDJSON already written for them
/// (<c>&lt;index&gt;.ndjson</c>, <c>&lt;index&gt;.*.ndjson</c> and anything under <c>&lt;index&gt;/</c>); rows are not counted; latency is zero.
/// </summary>
internal sealed class FilesEngine : IDatabaseEngine
{
    private readonly string _directory;
    private readonly IReadOnlyCollection<string> _indices;

    public FilesEngine(string directory, IReadOnlyCollection<string> indices)
    {
        _directory = directory;
        _indices = indices;
    }

    public string Kind => "files";

    public string Name => _directory;

    public TableStats GetTableStats()
    {
        if (!Directory.Exists(_directory))
        {
            return new TableStats();
        }

        long bytes = 0;
        var existing = 0;
        foreach (var index in _indices)
        {
            var files = Directory.EnumerateFiles(_directory, index + ".ndjson")
                .Concat(Directory.EnumerateFiles(_directory, index + ".*.ndjson"))
                .Concat(Directory.Exists(Path.Combine(_directory, index))
                    ? Directory.EnumerateFiles(Path.Combine(_directory, index), "*", SearchOption.AllDirectories)
                    : [])
                .Distinct(StringComparer.Ordinal)
                .ToList();
            if (files.Count > 0)
            {
                existing++;
                bytes += files.Sum(f => new FileInfo(f).Length);
            }
        }

        return new TableStats { TotalBytes = bytes, TableCount = existing };
    }

    public Task<TableStats> GetTableStatsAsync(CancellationToken cancellationToken = default) => Task.FromResult(GetTableStats());

    public ConnectionStats MeasureConnection() => new() { RoundTripLatency = TimeSpan.Zero };

    public Task<ConnectionStats> MeasureConnectionAsync(CancellationToken cancellationToken = default) => Task.FromResult(MeasureConnection());
}
