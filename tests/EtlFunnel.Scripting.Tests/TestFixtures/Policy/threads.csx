// Threads, thread pool, timers, starting work elsewhere.
using System.Threading;

async Task<List<OrchestratorTune>> GetFlowOrchestration(OrchestratorProps param)
{
    new Thread(() => { }).Start(); // expect: EF1013
    ThreadPool.QueueUserWorkItem(_ => { }); // expect: EF1013
    await Task.Run(() => 1); // expect: EF1013
    Parallel.For(0, 10, i => { }); // expect: EF1013
    await Task.Delay(1, param.CancellationToken);
    Thread.Sleep(10); // expect: EF1013
    return new List<OrchestratorTune>();
}
