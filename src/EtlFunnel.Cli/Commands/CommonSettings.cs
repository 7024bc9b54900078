using System.ComponentModel;
using Spectre.Console;
using Spectre.Console.Cli;

namespace EtlFunnel.Cli.Commands;

/// <summary>Options every command takes.</summary>
internal class CommonSettings : CommandSettings
{
    [CommandOption("-v|--verbose")]
    [Description("Log debug details to stderr, with stack traces of errors.")]
    public bool Verbose { get; init; }

    [CommandOption("--log-format <FORMAT>")]
    [Description("How stderr logs are written: text (a timestamped line per event, the default) or json (one JSON object per line).")]
    public string? LogFormat { get; init; }
}

/// <summary>Options of every command that plans: plan, run, watch.</summary>
internal class PlanInputSettings : CommonSettings
{
    [CommandOption("-c|--config <FILE>")]
    [Description("The flows config (YAML), e.g. samples/quickstart/flows.yaml.")]
    public string? Config { get; init; }

    [CommandOption("--hooks <DIR>")]
    [Description("The hooks folder; overrides 'hooks:' in the config (default ./hooks).")]
    public string? Hooks { get; init; }

    [CommandOption("-m|--machine <PROFILE>")]
    [Description("A machine profile (YAML: region, cores, memory) that replaces this machine, e.g. samples/regions/eu.yaml.")]
    public string? Machine { get; init; }

    public override ValidationResult Validate() =>
        string.IsNullOrWhiteSpace(Config) ? ValidationResult.Error("--config <FILE> is required, e.g. --config samples/quickstart/flows.yaml") : ValidationResult.Success();
}
