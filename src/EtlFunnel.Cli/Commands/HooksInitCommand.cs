using System.ComponentModel;
using System.Text;
using EtlFunnel.Cli.Hosting;
using EtlFunnel.Runtime.Hooks;
using Spectre.Console;
using Spectre.Console.Cli;

namespace EtlFunnel.Cli.Commands;

internal sealed class HooksInitSettings : CommonSettings
{
    [CommandArgument(0, "[DIR]")]
    [Description("The hooks folder to set up for editors (default ./hooks; created when missing).")]
    public string? Directory { get; init; }
}

/// <summary>
/// <c>etlfunnel hooks init [dir]</c>: writes what C# editors need for completion, hover and go-to-definition on the
/// folder's <c>.csx</c> hooks: a project (<c>hooks.csproj</c>) that compiles the hook files against a copy of the
/// contract (and the testing package) with their XML docs, under <c>.etlfunnel/</c>. Language servers (csharp-ls, C# Dev
/// Kit) have no script support, so the project includes the <c>.csx</c> files as ordinary C# files; see docs/hooks.md.
/// </summary>
internal sealed class HooksInitCommand : AsyncCommand<HooksInitSettings>
{
    /// <summary>The generated project's file name.</summary>
    public const string ProjectFile = "hooks.csproj";

    /// <summary>The folder of the copied reference assemblies and the project's build output.</summary>
    public const string SupportFolder = ".etlfunnel";

    private readonly CliContext _context;

    public HooksInitCommand(CliContext context) => _context = context;

    public override async Task<int> ExecuteAsync(CommandContext context, HooksInitSettings settings, CancellationToken cancellationToken)
    {
        var directory = Path.GetFullPath(settings.Directory ?? HooksFolder.DefaultDirectory);
        try
        {
            System.IO.Directory.CreateDirectory(Path.Combine(directory, SupportFolder));
            var written = new List<string>();
            foreach (var assembly in new[] { typeof(Execution.Models.OrchestratorProps).Assembly.Location, TestingAssembly() })
            {
                foreach (var file in new[] { assembly, Path.ChangeExtension(assembly, ".xml") })
                {
                    if (!File.Exists(file))
                    {
                        _context.Log.Warning("{File} is missing from this installation: editors show no documentation for its types", file);
                        continue;
                    }

                    var target = Path.Combine(directory, SupportFolder, Path.GetFileName(file));
                    File.Copy(file, target, overwrite: true);
                    written.Add(Path.GetRelativePath(directory, target));
                }
            }

            await File.WriteAllTextAsync(Path.Combine(directory, ProjectFile), Project(), cancellationToken).ConfigureAwait(false);
            written.Add(ProjectFile);
            await File.WriteAllTextAsync(Path.Combine(directory, SupportFolder, ".gitignore"), "# Written by etlfunnel hooks init; run it again after an upgrade.\n*\n", cancellationToken).ConfigureAwait(false);

            foreach (var file in written)
            {
                _context.Console.WriteLine($"wrote {Path.Combine(directory, file)}");
            }

            var version = typeof(Execution.Models.OrchestratorProps).Assembly.GetName().Version?.ToString() ?? "?";
            _context.Console.WriteLine($"Open {directory} in your editor (csharp-ls, VS Code with C# Dev Kit, Rider): the .csx hooks compile against EtlFunnel.Contracts {version}.");
            _context.Console.WriteLine("The project is for editors only: etlfunnel never builds it, and 'etlfunnel hooks check' stays the authority.");
            return ExitCodes.Ok;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            await _context.Err.WriteLineAsync($"error: cannot write the editor project into {directory}: {ex.Message}").ConfigureAwait(false);
            return ExitCodes.Failure;
        }
    }

    /// <summary>The testing package next to the CLI (the worker compiles <c>*.test.csx</c> against it).</summary>
    private static string TestingAssembly() => Path.Combine(AppContext.BaseDirectory, "EtlFunnel.Contracts.Testing.dll");

    /// <summary>
    /// The editor project: SDK imported explicitly so that a Directory.Build.props/targets or central package versions of a
    /// surrounding repository do not apply; build output under .etlfunnel/; the hooks' own imports as global usings.
    /// </summary>
    internal static string Project()
    {
        var usings = new StringBuilder();
        foreach (var name in Scripting.HookHost.ScriptImports.Append("EtlFunnel.Execution.Testing"))
        {
            usings.Append("    <Using Include=\"").Append(name).Append("\" />\n");
        }

        return $$"""
            <!-- Written by `etlfunnel hooks init`: lets C# editors (csharp-ls, C# Dev Kit, Rider) complete and document the
                 .csx hooks against the contract. For editors only: etlfunnel compiles hooks itself and never builds this.
                 Language servers have no C# script support, so the .csx files are compiled here as ordinary C#: hover,
                 completion and go-to-definition work on the contract; #load lines (CS8097) and names from #load-ed helpers
                 show as errors in the editor only. `etlfunnel hooks check` is the authority. -->
            <Project>
              <PropertyGroup>
                <ImportDirectoryBuildProps>false</ImportDirectoryBuildProps>
                <ImportDirectoryBuildTargets>false</ImportDirectoryBuildTargets>
                <ImportDirectoryPackagesProps>false</ImportDirectoryPackagesProps>
                <BaseIntermediateOutputPath>{{SupportFolder}}/obj/</BaseIntermediateOutputPath>
              </PropertyGroup>
              <Import Project="Sdk.props" Sdk="Microsoft.NET.Sdk" />
              <PropertyGroup>
                <TargetFramework>net10.0</TargetFramework>
                <OutputType>Library</OutputType>
                <OutputPath>{{SupportFolder}}/bin/</OutputPath>
                <LangVersion>latest</LangVersion>
                <Nullable>disable</Nullable>
                <ImplicitUsings>disable</ImplicitUsings>
                <EnableDefaultItems>false</EnableDefaultItems>
                <NoWarn>$(NoWarn);CS8321;CS8933</NoWarn>
              </PropertyGroup>
              <ItemGroup>
                <Compile Include="**/*.csx" Exclude="{{SupportFolder}}/**" />
                <Reference Include="EtlFunnel.Contracts" HintPath="{{SupportFolder}}/EtlFunnel.Contracts.dll" />
                <Reference Include="EtlFunnel.Contracts.Testing" HintPath="{{SupportFolder}}/EtlFunnel.Contracts.Testing.dll" />
              </ItemGroup>
              <ItemGroup>
            {{usings}}  </ItemGroup>
              <Import Project="Sdk.targets" Sdk="Microsoft.NET.Sdk" />
            </Project>

            """;
    }
}
