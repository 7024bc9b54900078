// All four batch-level hooks in one file (no Transform): applies to shop's products only.
string AppliesTo => "shop/public.products";

WriteRule WriteRule(PipelineInfo p) => new WriteRule { BatchSize = p.Replica.EndsWith("_0") ? 250 : 500, CheckInterval = 2 };

TerminationRule Termination(PipelineInfo p) => new TerminationRule { MaxRecords = 10_000, MaxPipelineTime = TimeSpan.FromMinutes(5) };

CheckpointDecision OnCheckpoint(CheckpointInfo c)
{
    if (c.DeadLettered > 10) return CheckpointDecision.Stop($"too many dead letters in {c.Pipeline.Table}: {c.DeadLettered}");
    return CheckpointDecision.Continue;
}

BacklogDecision OnBacklog(BacklogRecord r)
{
    if (r.Stage == FailureStage.Transform && r.Attempt < 2) return BacklogDecision.Retry;
    if (r.Document.Contains("\"fatal\"")) return BacklogDecision.Stop("record " + r.Id + " is fatal");
    return BacklogDecision.Skip;
}
