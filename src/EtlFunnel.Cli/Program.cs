using EtlFunnel.Cli.Hosting;

namespace EtlFunnel.Cli;

internal static class Program
{
    public static Task<int> Main(string[] args)
    {
        StartupTrace.Start();
        return CliApp.RunAsync(args, Console.Out, Console.Error);
    }
}
