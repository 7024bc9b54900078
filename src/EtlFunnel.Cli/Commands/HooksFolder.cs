using EtlFunnel.Cli.Hosting;

namespace EtlFunnel.Cli.Commands;

/// <summary>Finds and loads the hooks folder; prints the host's diagnostics exactly as it formats them.</summary>
internal static class HooksFolder
{
    public const string DefaultDirectory = "hooks";

    /// <summary>Loads hooks; returns no hooks and the exit code when the folder is missing or a hook has errors.</summary>
    public static async Task<(ILoadedHooks? Hooks, int ExitCode)> LoadAsync(CliContext context, string? explicitDirectory, CancellationToken cancellationToken, HookSettings? settings = null)
    {
        context.HookSettings = settings ?? HookSettings.Default;
        var directory = explicitDirectory ?? DefaultDirectory;
        if (!Directory.Exists(directory))
        {
            if (explicitDirectory is not null)
            {
                await context.Err.WriteLineAsync($"error: the hooks folder '{directory}' does not exist; create it or point --hooks (or 'hooks:' in the config) at the right folder").ConfigureAwait(false);
                return (null, ExitCodes.Usage);
            }

            context.Log.Information("No {Directory} folder here: one replica per flow and per table", directory);
            return (new NoHooks(), ExitCodes.Ok);
        }

        ILoadedHooks loaded;
        try
        {
            loaded = await context.LoadHooks(directory, cancellationToken).ConfigureAwait(false);
        }
        catch (Scripting.HookIsolationException ex)
        {
            await context.Err.WriteLineAsync($"error: {ex.Message}").ConfigureAwait(false);
            return (null, ExitCodes.Usage);
        }

        foreach (var layer in loaded.IsolationLayers)
        {
            context.Log.Debug("Hook isolation: {Layer}", layer.ToString());
        }

        var errors = 0;
        foreach (var diagnostic in loaded.Diagnostics)
        {
            await context.Err.WriteLineAsync(diagnostic.ToString()).ConfigureAwait(false);
            if (string.Equals(diagnostic.Severity, "error", StringComparison.OrdinalIgnoreCase))
            {
                errors++;
            }
        }

        if (errors > 0)
        {
            await context.Err.WriteLineAsync($"{errors} error{(errors == 1 ? "" : "s")} in {directory}; fix the hooks above (nothing was planned)").ConfigureAwait(false);
            await loaded.DisposeAsync().ConfigureAwait(false);
            return (null, ExitCodes.Failure);
        }

        context.Log.Information("Hooks from {Directory}: flow [{Flow}], pipeline [{Pipeline}]", directory,
            string.Join(", ", loaded.Hooks.FlowHooks.Select(h => h.Name)), string.Join(", ", loaded.Hooks.PipelineHooks.Select(h => h.Name)));
        return (loaded, ExitCodes.Ok);
    }
}
