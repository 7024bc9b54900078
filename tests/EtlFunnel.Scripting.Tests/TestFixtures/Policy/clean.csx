// Uses only allowed APIs: must compile without diagnostics.
using System.Text.RegularExpressions;

List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param)
{
    var sb = new StringBuilder();
    var re = new Regex("^[a-z_]+$");
    var stream = new System.IO.MemoryStream();
    var sw = System.Diagnostics.Stopwatch.StartNew();
    Console.WriteLine($"planning {param.Entity.Count} flows on {Environment.ProcessorCount} cores");
    var type = param.GetType().Name;
    return param.Entity.Where(e => re.IsMatch(e.Name)).Select(e => new OrchestratorTune { ParentEntityName = e.Name, NewEntityName = e.Name }).ToList();
}
