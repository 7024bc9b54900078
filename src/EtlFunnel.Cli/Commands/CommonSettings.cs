using System.ComponentModel;
using Spectre.Console.Cli;

namespace EtlFunnel.Cli.Commands;

/// <summary>Options every command takes.</summary>
internal class CommonSettings : CommandSettings
{
    [CommandOption("-v|--verbose")]
    [Description("Log debug details to stderr.")]
    public bool Verbose { get; init; }
}
