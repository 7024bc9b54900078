// A write rule out of range, a termination rule that throws, a checkpoint hook that returns null, a slow backlog hook.
WriteRule WriteRule(PipelineInfo p) => new WriteRule { BatchSize = 0 };

TerminationRule Termination(PipelineInfo p)
{
    throw new InvalidOperationException("no limits for " + p.Table);
}

CheckpointDecision OnCheckpoint(CheckpointInfo c) => null;

BacklogDecision OnBacklog(BacklogRecord r)
{
    while (r.Id != null) { }
    return BacklogDecision.Skip;
}
