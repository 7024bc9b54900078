using Microsoft.Extensions.Logging;

namespace EtlFunnel.Runtime.Hooks;

/// <summary>What <see cref="HooksFolder.LoadAsync"/> found: hooks, a named folder that does not exist, or hooks with errors.</summary>
internal enum HooksFolderStatus
{
    /// <summary>Hooks loaded (or no default <c>hooks</c> folder: no hooks).</summary>
    Loaded,

    /// <summary>The folder named by <c>--hooks</c> or <c>hooks:</c> does not exist (a usage error).</summary>
    Missing,

    /// <summary>A hook has errors; they were written out.</summary>
    Broken,

    /// <summary>The hooks need a sandbox this machine cannot give, and the config does not opt out (a usage error; written out).</summary>
    NoIsolation,
}

/// <summary>Finds and loads the hooks folder; prints the host's diagnostics exactly as it formats them.</summary>
internal static class HooksFolder
{
    public const string DefaultDirectory = "hooks";

    /// <summary>Loads hooks; returns no hooks and why when the folder is missing or a hook has errors (written to <paramref name="err"/>).</summary>
    public static async Task<(ILoadedHooks? Hooks, HooksFolderStatus Status)> LoadAsync(HookLoader loadHooks, TextWriter err, ILogger log, string? explicitDirectory, CancellationToken cancellationToken)
    {
        var directory = explicitDirectory ?? DefaultDirectory;
        if (!Directory.Exists(directory))
        {
            if (explicitDirectory is not null)
            {
                await err.WriteLineAsync($"error: the hooks folder '{directory}' does not exist; create it or point --hooks (or 'hooks:' in the config) at the right folder").ConfigureAwait(false);
                return (null, HooksFolderStatus.Missing);
            }

            log.LogInformation("No {Directory} folder here: one replica per flow and per table", directory);
            return (new NoHooks(), HooksFolderStatus.Loaded);
        }

        ILoadedHooks loaded;
        try
        {
            loaded = await loadHooks(directory, cancellationToken).ConfigureAwait(false);
        }
        catch (Scripting.HookIsolationException ex)
        {
            await err.WriteLineAsync($"error: {ex.Message}").ConfigureAwait(false);
            return (null, HooksFolderStatus.NoIsolation);
        }

        foreach (var layer in loaded.IsolationLayers)
        {
            log.LogDebug("Hook isolation: {Layer}", layer.ToString());
        }

        var errors = 0;
        foreach (var diagnostic in loaded.Diagnostics)
        {
            await err.WriteLineAsync(diagnostic.ToString()).ConfigureAwait(false);
            if (string.Equals(diagnostic.Severity, "error", StringComparison.OrdinalIgnoreCase))
            {
                errors++;
            }
        }

        if (errors > 0)
        {
            await err.WriteLineAsync($"{errors} error{(errors == 1 ? "" : "s")} in {directory}; fix the hooks above (nothing was planned)").ConfigureAwait(false);
            await loaded.DisposeAsync().ConfigureAwait(false);
            return (null, HooksFolderStatus.Broken);
        }

        log.LogInformation("Hooks from {Directory}: flow [{Flow}], pipeline [{Pipeline}]", directory,
            string.Join(", ", loaded.Hooks.FlowHooks.Select(h => h.Name)), string.Join(", ", loaded.Hooks.PipelineHooks.Select(h => h.Name)));
        return (loaded, HooksFolderStatus.Loaded);
    }
}
