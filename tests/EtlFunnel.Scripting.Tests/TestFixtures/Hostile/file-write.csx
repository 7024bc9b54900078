// Attack: write a file outside the hooks folder (the entity name is its path) and one inside the hooks folder.
using System.IO;

List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param)
{
    var errors = new List<string>();
    foreach (var path in new[] { param.Entity[0].Name, param.Entity[1].Name })
    {
        try
        {
            File.WriteAllText(path, "owned"); // expect: EF1010
        }
        catch (Exception ex)
        {
            errors.Add(ex.GetType().Name + ": " + ex.Message);
        }
    }

    throw new InvalidOperationException("writes failed: " + string.Join(" | ", errors));
}
