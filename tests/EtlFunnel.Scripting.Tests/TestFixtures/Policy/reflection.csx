// Reflection, emit, loading types by name.
List<OrchestratorTune> GetFlowOrchestration(OrchestratorProps param)
{
    var t = Type.GetType("System.IO.File"); // expect: EF1014
    var o = Activator.CreateInstance("mscorlib", "System.Object"); // expect: EF1014
    var m = typeof(string).GetMethod("Concat"); // expect: EF1014
    var name = typeof(string).Name;
    var asm = System.Reflection.Assembly.Load("System.Private.CoreLib"); // expect: EF1014
    var emit = System.Reflection.Emit.AssemblyBuilder.DefineDynamicAssembly(null, System.Reflection.Emit.AssemblyBuilderAccess.Run); // expect: EF1014
    var a = param.GetType().Assembly; // expect: EF1014
    return new List<OrchestratorTune>();
}
