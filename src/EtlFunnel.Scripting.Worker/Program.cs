using EtlFunnel.Scripting.Isolation;

namespace EtlFunnel.Scripting.Worker;

internal static class Program
{
    // Started by HookHost only; speaks the length-prefixed JSON protocol of docs/hooks.md on its stdin/stdout.
    public static Task<int> Main(string[] args) => HookWorker.RunAsync(args);
}
