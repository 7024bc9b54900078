using EtlFunnel.Execution.Models;

namespace EtlFunnel.Scripting;

/// <summary>Which level a hook serves.</summary>
public enum HookLevel
{
    /// <summary>Decides flow replicas (<c>GetFlowOrchestration</c>).</summary>
    Flow,

    /// <summary>Decides pipeline replicas (<c>GetPipelineOrchestration</c>).</summary>
    Pipeline,
}

/// <summary>One loaded hook at one level, ready to invoke under the host's guard (time budget, error mapping).</summary>
public interface IOrchestrationHook
{
    /// <summary>Display name, e.g. <c>flow-by-cores.csx</c> or <c>Vendor.Hooks.dll:Vendor.Hooks.CpuFlows</c>.</summary>
    string Name { get; }

    /// <summary>Full path of the file the hook came from (the .csx or the .dll).</summary>
    string SourcePath { get; }

    /// <summary>The level this hook serves.</summary>
    HookLevel Level { get; }

    /// <summary>Invokes the hook. Failures (a throw, a time-out, a null result) surface as <see cref="HookInvocationException"/>.</summary>
    Task<IReadOnlyList<OrchestratorTune>> InvokeAsync(OrchestratorProps props, CancellationToken cancellationToken = default);
}

/// <summary>The active set of hooks, in the documented deterministic order (ordinal by file name).</summary>
public interface IOrchestrationHooks
{
    /// <summary>Flow-level hooks; empty means one replica per flow.</summary>
    IReadOnlyList<IOrchestrationHook> FlowHooks { get; }

    /// <summary>Pipeline-level hooks; empty means one replica per pipeline.</summary>
    IReadOnlyList<IOrchestrationHook> PipelineHooks { get; }
}

/// <summary>A hook failed when invoked: it threw, ran past its time budget or returned nothing.</summary>
public sealed class HookInvocationException : Exception
{
    /// <summary>Creates the exception.</summary>
    public HookInvocationException(string hookName, string? file, int? line, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        HookName = hookName;
        File = file;
        Line = line;
    }

    /// <summary>The failing hook's name.</summary>
    public string HookName { get; }

    /// <summary>The source file where it failed (the .csx, or a plugin's source when its PDB says so).</summary>
    public string? File { get; }

    /// <summary>The 1-based line where it failed, when known.</summary>
    public int? Line { get; }
}

/// <summary>The exception a hook threw inside the worker, by type name and message (the object itself never leaves the worker).</summary>
public sealed class HookWorkerException : Exception
{
    /// <summary>Creates the exception.</summary>
    public HookWorkerException(string typeName, string message)
        : base(message)
    {
        TypeName = typeName;
    }

    /// <summary>The full name of the exception type the hook threw, e.g. <c>System.InvalidOperationException</c>.</summary>
    public string TypeName { get; }
}
