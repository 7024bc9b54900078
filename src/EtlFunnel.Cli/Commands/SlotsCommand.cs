using System.ComponentModel;
using System.Globalization;
using EtlFunnel.Cli.Hosting;
using EtlFunnel.Cli.Running;
using EtlFunnel.Orchestration.Config;
using EtlFunnel.Runtime.Jobs;
using EtlFunnel.Sync.Cdc;
using Spectre.Console;
using Spectre.Console.Cli;

namespace EtlFunnel.Cli.Commands;

internal sealed class SlotsListSettings : CommonSettings
{
    [CommandOption("-c|--config <FILE>")]
    [Description("The flows config (YAML); slots of every source database it names are listed.")]
    public string? Config { get; init; }

    public override ValidationResult Validate() =>
        string.IsNullOrWhiteSpace(Config) ? ValidationResult.Error("--config <FILE> is required") : ValidationResult.Success();
}

internal sealed class SlotsDropSettings : CommonSettings
{
    [CommandArgument(0, "<FLOW|SLOT>")]
    [Description("The flow (its slot and publication are dropped) or a slot name of a source database in the config.")]
    public string Target { get; init; } = "";

    [CommandOption("-c|--config <FILE>")]
    [Description("The flows config (YAML).")]
    public string? Config { get; init; }

    public override ValidationResult Validate() =>
        string.IsNullOrWhiteSpace(Config) ? ValidationResult.Error("--config <FILE> is required") : ValidationResult.Success();
}

/// <summary><c>etlfunnel slots list</c>: the logical slots of the config's source databases, which flow owns each, how far behind it is.</summary>
internal sealed class SlotsListCommand(CliContext context) : AsyncCommand<SlotsListSettings>
{
    public override async Task<int> ExecuteAsync(CommandContext commandContext, SlotsListSettings settings, CancellationToken cancellationToken)
    {
        if (await SlotsConfig.LoadAsync(context, settings.Config!, cancellationToken).ConfigureAwait(false) is not { } config)
        {
            return ExitCodes.Usage;
        }

        var owners = config.Flows.ToDictionary(f => SyncJobBuilder.CdcSettings(f).Slot, f => f.Name, StringComparer.Ordinal);
        var table = new Table().Border(TableBorder.Rounded)
            .AddColumn("slot").AddColumn("flow").AddColumn("database").AddColumn("active")
            .AddColumn("restart LSN").AddColumn("confirmed LSN").AddColumn(new TableColumn("lag bytes").RightAligned()).AddColumn("wal_status");
        foreach (var source in config.Flows.GroupBy(f => SourceKey(f.SourceConnectionString)))
        {
            var (slots, keep) = await CdcEngine.ListSlotsAsync(source.First().SourceConnectionString, cancellationToken).ConfigureAwait(false);
            if (keep == "-1")
            {
                await context.Err.WriteLineAsync($"warning: {source.Key} has max_slot_wal_keep_size = -1 (unlimited): a stopped flow's slot keeps WAL until the disk is full; set a bound.").ConfigureAwait(false);
            }

            var database = source.Key[(source.Key.LastIndexOf('/') + 1)..];
            foreach (var slot in slots.Where(s => s.Database == database))
            {
                table.AddRow(Markup.Escape(slot.Slot), Markup.Escape(owners.GetValueOrDefault(slot.Slot, "(not in config)")), Markup.Escape(source.Key),
                    slot.Active ? "yes" : "no", slot.RestartLsn ?? "-", slot.ConfirmedLsn ?? "-",
                    slot.LagBytes?.ToString("N0", CultureInfo.InvariantCulture) ?? "-", slot.WalStatus == "lost" ? "[red]lost (invalidated)[/]" : Markup.Escape(slot.WalStatus ?? "-"));
            }
        }

        context.Console.Write(table);
        return ExitCodes.Ok;
    }

    private static string SourceKey(string connectionString)
    {
        var b = new Npgsql.NpgsqlConnectionStringBuilder(connectionString);
        return $"{b.Host}:{b.Port}/{b.Database}";
    }
}

/// <summary><c>etlfunnel slots drop</c>: removes a CDC flow's slot (and publication), releasing the WAL it holds.</summary>
internal sealed class SlotsDropCommand(CliContext context) : AsyncCommand<SlotsDropSettings>
{
    public override async Task<int> ExecuteAsync(CommandContext commandContext, SlotsDropSettings settings, CancellationToken cancellationToken)
    {
        if (await SlotsConfig.LoadAsync(context, settings.Config!, cancellationToken).ConfigureAwait(false) is not { } config)
        {
            return ExitCodes.Usage;
        }

        var flow = config.Flows.FirstOrDefault(f => f.Name == settings.Target || SyncJobBuilder.CdcSettings(f).Slot == settings.Target);
        if (flow is null)
        {
            await context.Err.WriteLineAsync($"error: '{settings.Target}' is neither a flow of {settings.Config} nor the slot of one; 'etlfunnel slots list --config {settings.Config}' shows the slots.").ConfigureAwait(false);
            return ExitCodes.Usage;
        }

        var cdc = SyncJobBuilder.CdcSettings(flow);
        try
        {
            var dropped = await CdcEngine.DropSlotAsync(flow.SourceConnectionString, cdc.Slot, cdc.Publication, cancellationToken).ConfigureAwait(false);
            context.Console.WriteLine(dropped
                ? $"Dropped slot {cdc.Slot} and publication {cdc.Publication} of flow '{flow.Name}'. The next CDC run of the flow takes a new snapshot."
                : $"Flow '{flow.Name}' has no slot {cdc.Slot} (publication {cdc.Publication} dropped if it existed).");
            return ExitCodes.Ok;
        }
        catch (Npgsql.PostgresException ex) when (ex.SqlState == Npgsql.PostgresErrorCodes.ObjectInUse)
        {
            await context.Err.WriteLineAsync($"error: slot {cdc.Slot} is streaming right now ({ex.MessageText}); stop the flow first.").ConfigureAwait(false);
            return ExitCodes.Failure;
        }
    }
}

/// <summary>The config both <c>slots</c> commands read; a config error is written out (the caller exits with usage).</summary>
internal static class SlotsConfig
{
    public static async Task<EtlConfig?> LoadAsync(CliContext context, string path, CancellationToken cancellationToken)
    {
        try
        {
            return await ConfigLoader.LoadAsync(path, context.Environment, cancellationToken).ConfigureAwait(false);
        }
        catch (ConfigException ex)
        {
            await context.Err.WriteLineAsync(ex.Message).ConfigureAwait(false);
            return null;
        }
    }
}
