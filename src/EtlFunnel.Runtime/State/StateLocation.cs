using EtlFunnel.Orchestration.Config;
using EtlFunnel.Sync;

namespace EtlFunnel.Runtime.State;

/// <summary>Where <c>run</c> and <c>watch</c> keep checkpoints: <c>--state</c> (a folder or a <c>postgres://</c> URL) over the config's <c>state:</c>.</summary>
internal sealed record StateLocation(string Directory, PostgresStateTable? Table)
{
    /// <summary>The folder, or the table without credentials, for messages.</summary>
    public override string ToString() => Table?.ToString() ?? Directory;

    /// <summary>
    /// Resolves the location; a <c>--state</c> URL keeps the config's <c>table:</c> and <c>scope:</c>. The folder is kept
    /// even for a table: dead letters go to its sibling <c>dead-letter</c>. Throws <see cref="FormatException"/> for a bad URL.
    /// </summary>
    public static StateLocation Resolve(string? option, EtlConfig config)
    {
        var configured = config.StateTable;
        if (option is null)
        {
            return new StateLocation(config.StateDirectory, configured is null ? null : new PostgresStateTable(configured.ConnectionString)
            {
                Table = configured.Table,
                Scope = configured.Scope,
                ConfiguredAt = configured.Location.ToString(),
            });
        }

        if (!PostgresUrl.IsUrl(option))
        {
            return new StateLocation(Path.GetFullPath(option), null);
        }

        string connectionString;
        try
        {
            connectionString = PostgresUrl.ToConnectionString(option);
        }
        catch (FormatException ex)
        {
            throw new FormatException($"--state: {ex.Message}", ex);
        }

        return new StateLocation(config.StateDirectory, new PostgresStateTable(connectionString)
        {
            Table = configured?.Table ?? PostgresStateTable.DefaultTable,
            Scope = configured?.Scope ?? PostgresStateTable.DefaultScope,
            ConfiguredAt = "--state",
        });
    }

    /// <summary>The location of one flow under <c>etlfunnel watch</c>: <c>&lt;folder&gt;/watch/&lt;flow&gt;</c> or scope <c>&lt;scope&gt;/watch/&lt;flow&gt;</c>.</summary>
    public StateLocation ForWatchedFlow(string flow) => Table is null
        ? this with { Directory = Path.Combine(Directory, "watch", flow) }
        : this with { Table = Table with { Scope = $"{Table.Scope}/watch/{flow}" } };
}
