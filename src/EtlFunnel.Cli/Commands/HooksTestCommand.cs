using System.ComponentModel;
using System.Text.Json;
using EtlFunnel.Cli.Hosting;
using EtlFunnel.Runtime.Hooks;
using Spectre.Console;
using Spectre.Console.Cli;

namespace EtlFunnel.Cli.Commands;

internal sealed class HooksTestSettings : PlanInputSettings
{
    [CommandOption("-t|--table <SCHEMA.TABLE>")]
    [Description("The table whose rows the transformers run on, e.g. shop.products (schema public when none is given).")]
    public string? Table { get; init; }

    [CommandOption("--flow <NAME>")]
    [Description("The flow the table belongs to (what AppliesTo globs match); needed when the config has several flows.")]
    public string? Flow { get; init; }

    [CommandOption("-n|--limit <N>")]
    [Description("How many rows to read (default 10).")]
    [DefaultValue(10)]
    public int Limit { get; init; } = 10;

    [CommandOption("-f|--format <FORMAT>")]
    [Description("table (default) or json.")]
    [DefaultValue(PlanFormat.Table)]
    public PlanFormat Format { get; init; } = PlanFormat.Table;

    [CommandOption("-s|--stats <FILE>")]
    [Description("Without --table: table stats (YAML: flows with tables, rows, bytes, latency; docs/hooks.md) to plan over instead of discovering with --config.")]
    public string? Stats { get; init; }

    [CommandOption("--wait-for-debugger [SECONDS]")]
    [Description("Without --table: the hook worker prints its process id and waits up to SECONDS (default 60) for a debugger to attach, then goes on (docs/hooks.md, \"Debugging a hook\").")]
    public FlagValue<int>? WaitForDebugger { get; init; }

    /// <summary>How long the worker waits for a debugger, or null.</summary>
    public TimeSpan? DebuggerWait => WaitForDebugger is { IsSet: true } flag ? TimeSpan.FromSeconds(flag.Value > 0 ? flag.Value : 60) : null;

    public override ValidationResult Validate()
    {
        if (WaitForDebugger is { IsSet: true, Value: < 0 })
        {
            return ValidationResult.Error("--wait-for-debugger takes a number of seconds (default 60)");
        }

        if (string.IsNullOrWhiteSpace(Table))
        {
            // Orchestration mode: flow and pipeline hooks on --stats or a live --config (or neither: test cases only).
            return Stats is not null && Config is not null
                ? ValidationResult.Error("--stats and --config both say what to plan over; give one of them")
                : ValidationResult.Success();
        }

        var baseResult = base.Validate();
        if (!baseResult.Successful)
        {
            return baseResult;
        }

        if (Stats is not null)
        {
            return ValidationResult.Error("--stats is for the orchestration hooks; --table runs transformers on real rows of --config's database");
        }

        return Limit is < 1 or > 10_000 ? ValidationResult.Error("--limit takes 1 to 10000 rows") : ValidationResult.Success();
    }
}

/// <summary>
/// <c>etlfunnel hooks test</c>. With <c>--table</c>: the folder's transformers on real rows, before and after, in the hook
/// worker; reads in a read-only transaction and writes nowhere. Without: the flow and pipeline hooks planned offline on a
/// machine (<c>--machine</c>) and table stats (<c>--stats</c>, or live discovery with <c>--config</c>), then the folder's
/// <c>*.test.csx</c> cases, run in the worker. Exit 1 on a hook error or a failed case.
/// </summary>
internal sealed class HooksTestCommand : AsyncCommand<HooksTestSettings>
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    private readonly CliContext _context;

    public HooksTestCommand(CliContext context) => _context = context;

    public override Task<int> ExecuteAsync(CommandContext context, HooksTestSettings settings, CancellationToken cancellationToken)
        => string.IsNullOrWhiteSpace(settings.Table)
            ? new HookTestRun(_context).ExecuteAsync(settings, cancellationToken)
            : ExecuteTransformersAsync(settings, cancellationToken);

    private async Task<int> ExecuteTransformersAsync(HooksTestSettings settings, CancellationToken cancellationToken)
    {
        var (inputs, exitCode) = await Planning.LoadInputsAsync(_context, settings.Config!, settings.Machine, cancellationToken).ConfigureAwait(false);
        if (inputs is null)
        {
            return exitCode;
        }

        var flows = inputs.Config.Flows;
        var flow = settings.Flow is null ? (flows.Length == 1 ? flows[0] : null) : flows.FirstOrDefault(f => f.Name == settings.Flow);
        if (flow is null)
        {
            await _context.Err.WriteLineAsync(settings.Flow is null
                ? $"error: {inputs.Config.File} has {flows.Length} flows ({string.Join(", ", flows.Select(f => f.Name))}); say which with --flow <NAME>"
                : $"error: no flow '{settings.Flow}' in {inputs.Config.File} (flows: {string.Join(", ", flows.Select(f => f.Name))})").ConfigureAwait(false);
            return ExitCodes.Usage;
        }

        var dot = settings.Table!.IndexOf('.', StringComparison.Ordinal);
        var (schema, table) = dot < 0 ? ("public", settings.Table) : (settings.Table[..dot], settings.Table[(dot + 1)..]);

        var (hooks, hooksExit) = await Planning.LoadHooksAsync(_context, settings.Hooks ?? inputs.Config.HooksDirectory, cancellationToken,
            new HookSettings(inputs.Config.HooksIsolation, inputs.Config.HooksEnvironment)).ConfigureAwait(false);
        if (hooks is null)
        {
            return hooksExit;
        }

        await using (hooks.ConfigureAwait(false))
        {
            if (hooks.Host is not { } host)
            {
                await _context.Err.WriteLineAsync("error: no hooks folder was loaded, so there is no transformer to test").ConfigureAwait(false);
                return ExitCodes.Usage;
            }

            var applying = TransformerPreview.For(host, flow.Name, schema, table);
            if (applying.Count == 0)
            {
                await _context.Err.WriteLineAsync($"error: no transformer in {host.HooksDirectory} applies to {flow.Name}/{schema}.{table} " +
                    $"(transformers: {(host.Transformers.Count == 0 ? "none" : string.Join(", ", host.Transformers.Select(t => $"{t.Name} applies to {t.AppliesTo}")))})").ConfigureAwait(false);
                return ExitCodes.Failure;
            }

            IReadOnlyList<PreviewRow> rows;
            try
            {
                rows = await TransformerPreview.RunAsync(host, flow.SourceConnectionString, flow.Name, schema, table, settings.Limit, TimeSpan.FromSeconds(30), cancellationToken).ConfigureAwait(false);
            }
            catch (Npgsql.PostgresException ex)
            {
                await _context.Err.WriteLineAsync($"error: reading {schema}.{table} of flow '{flow.Name}': {ex.MessageText}").ConfigureAwait(false);
                return ExitCodes.Failure;
            }

            if (settings.Format == PlanFormat.Json)
            {
                await _context.Out.WriteLineAsync(JsonSerializer.Serialize(rows.Select(r => new
                {
                    r.Id,
                    Before = JsonDocument.Parse(r.Before).RootElement,
                    After = r.After is null ? (JsonElement?)null : JsonDocument.Parse(r.After).RootElement,
                    r.Index,
                    Outcome = r.Outcome.ToString().ToLowerInvariant(),
                    r.Error,
                }), Json)).ConfigureAwait(false);
            }
            else
            {
                var grid = new Table().AddColumns("id", "before", "after", "outcome");
                foreach (var r in rows)
                {
                    grid.AddRow(Markup.Escape(r.Id), Markup.Escape(r.Before), Markup.Escape(r.After ?? "—"),
                        Markup.Escape(r.Error ?? r.Outcome.ToString().ToLowerInvariant() + (r.Index is null ? "" : " → " + r.Index)));
                }

                _context.Console.Write(grid);
                _context.Console.WriteLine($"{rows.Count} row(s) of {schema}.{table} through {string.Join(", ", applying.Select(t => t.Name))}; nothing was written.");
            }

            return rows.Any(r => r.Error is not null) ? ExitCodes.Failure : ExitCodes.Ok;
        }
    }
}
