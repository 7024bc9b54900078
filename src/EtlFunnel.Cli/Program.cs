using System.Runtime;
using EtlFunnel.Cli.Hosting;
using EtlFunnel.Scripting;

namespace EtlFunnel.Cli;

internal static class Program
{
    public static Task<int> Main(string[] args)
    {
        StartupTrace.Start();
        StartJitProfile(args);
        return CliApp.RunAsync(args, Console.Out, Console.Error);
    }

    /// <summary>
    /// Multi-core JIT: the first run of a command records which methods it compiled into the cache folder next to the
    /// compiled hooks; later runs compile them ahead on a background thread while the main thread starts up. Most of a
    /// warm <c>plan</c> is JIT of Npgsql, YamlDotNet, Spectre and Serilog (none of them ship precompiled code).
    /// </summary>
    private static void StartJitProfile(string[] args)
    {
        if (Environment.GetEnvironmentVariable("ETLFUNNEL_JIT_PROFILE") == "0")
        {
            return;
        }

        var command = args.FirstOrDefault(a => !a.StartsWith('-')) switch
        {
            "plan" => "plan",
            "run" => "run",
            "watch" => "watch",
            "hooks" => "hooks",
            _ => null,
        };
        if (command is null)
        {
            return;
        }

        try
        {
            var root = Path.GetDirectoryName(HookHostOptions.DefaultCacheDirectory)!;
            Directory.CreateDirectory(root);
            ProfileOptimization.SetProfileRoot(root);
            ProfileOptimization.StartProfile($"jit-{command}.profile");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // No writable cache folder: start-up is only slower.
        }
    }
}
