// Batch-level hooks with the wrong shapes: EF0006 at each.
int WriteRule(PipelineInfo p) => 5;
TerminationRule Termination() => new TerminationRule();
CheckpointDecision OnCheckpoint(PipelineInfo p) => CheckpointDecision.Continue;
IReadOnlyList<BacklogDecision> OnBacklog(IReadOnlyList<BacklogRecord> r) => null;
