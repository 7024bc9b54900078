using Spectre.Console.Cli;

namespace EtlFunnel.Cli;

internal static class Program
{
    public static int Main(string[] args)
    {
        var app = new CommandApp();
        app.Configure(config =>
        {
            config.SetApplicationName("etlfunnel");
        });
        return app.Run(args);
    }
}
