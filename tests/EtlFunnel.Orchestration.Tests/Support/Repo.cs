namespace EtlFunnel.Orchestration.Tests.Support;

internal static class Repo
{
    /// <summary>The repository root (the folder holding samples/).</summary>
    public static string Root { get; } = Find();

    public static string Path(params string[] parts) => System.IO.Path.Combine([Root, .. parts]);

    private static string Find()
    {
        var dir = AppContext.BaseDirectory;
        while (!Directory.Exists(System.IO.Path.Combine(dir, "samples", "quickstart")))
        {
            dir = System.IO.Path.GetDirectoryName(dir) ?? throw new InvalidOperationException("samples/quickstart not found above " + AppContext.BaseDirectory);
        }

        return dir;
    }
}
