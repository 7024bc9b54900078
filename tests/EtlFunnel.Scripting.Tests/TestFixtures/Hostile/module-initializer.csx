// Attack: run code when the hook is merely loaded (as 'hooks check' used to do): a module initializer.
using System.Runtime.CompilerServices;

static class Init
{
    [ModuleInitializer] // expect: EF1021
    public static void Run() => Console.WriteLine("MODULE INITIALIZER RAN");
}

List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param) => new List<OrchestratorTune>();
