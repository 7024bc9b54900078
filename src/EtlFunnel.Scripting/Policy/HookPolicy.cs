namespace EtlFunnel.Scripting.Policy;

/// <summary>A policy rule that was broken: its diagnostic id and what was used.</summary>
internal sealed record PolicyViolation(string Id, string What)
{
    public string Message => $"{What} is not allowed in hooks";
}

/// <summary>
/// The sandbox policy, expressed on plain metadata names so that the Roslyn semantic check (scripts) and the
/// IL reference check (plugins) enforce exactly the same rules without the plugin path loading Roslyn.
/// </summary>
internal static class HookPolicy
{
    /// <summary>Bump when a rule changes: it is part of the compile cache key, so stricter rules re-check cached hooks.</summary>
    public const int Version = 2;

    public const string LoadOutsideFolder = "EF1001";
    public const string ReferenceDirective = "EF1002";
    public const string Files = "EF1010";
    public const string Processes = "EF1011";
    public const string Network = "EF1012";
    public const string Threads = "EF1013";
    public const string Reflection = "EF1014";
    public const string AssemblyLoading = "EF1015";
    public const string Interop = "EF1016";
    public const string UnsafeCode = "EF1017";
    public const string Dynamic = "EF1018";
    public const string EnvironmentControl = "EF1019";
    public const string ConsoleControl = "EF1020";
    public const string ModuleInitializer = "EF1021";
    public const string Finalizer = "EF1022";
    public const string LineDirective = "EF1023";
    public const string InjectedName = "EF1024";
    public const string AsyncVoid = "EF1025";

    private static readonly HashSet<string> AllowedIoTypes = new(StringComparer.Ordinal)
    {
        "MemoryStream", "StringReader", "StringWriter", "TextReader", "TextWriter", "Stream", "IOException",
        "InvalidDataException", "EndOfStreamException", "SeekOrigin", "BinaryReader", "BinaryWriter",
    };

    private static readonly HashSet<string> ProcessTypes = new(StringComparer.Ordinal)
    {
        "Process", "ProcessStartInfo", "ProcessModule", "ProcessModuleCollection", "ProcessThread",
        "ProcessThreadCollection", "Debugger", "FileVersionInfo", "EventLog", "EventLogEntry",
    };

    private static readonly HashSet<string> ThreadingTypes = new(StringComparer.Ordinal)
    {
        "Thread", "ThreadPool", "Timer", "ThreadStart", "ParameterizedThreadStart", "RegisteredWaitHandle",
        "Mutex", "Semaphore", "EventWaitHandle", "ManualResetEvent", "AutoResetEvent", "WaitHandle",
        "ExecutionContext", "SynchronizationContext", "Overlapped", "PreAllocatedOverlapped",
        "ThreadPoolBoundHandle", "CompressedStack", "HostExecutionContextManager", "PeriodicTimer",
    };

    private static readonly HashSet<string> TaskThreadingTypes = new(StringComparer.Ordinal)
    {
        "Parallel", "TaskFactory", "TaskScheduler", "ParallelLoopState", "ParallelOptions",
    };

    // Members of System.Type that only describe a type; everything else on Type is reflection.
    private static readonly HashSet<string> AllowedTypeMembers = new(StringComparer.Ordinal)
    {
        "Name", "FullName", "Namespace", "ToString", "Equals", "GetHashCode", "IsAssignableFrom", "IsAssignableTo",
        "IsInstanceOfType", "IsValueType", "IsClass", "IsInterface", "IsEnum", "IsArray", "IsGenericType",
        "IsPrimitive", "IsSealed", "IsAbstract", "op_Equality", "op_Inequality",
        "GetTypeFromHandle", // what `typeof(T)` compiles to
    };

    // Compilers emit these for ordinary code (`in` parameters, collection expressions), so plugins reference them.
    private static readonly HashSet<string> AllowedInteropTypes = new(StringComparer.Ordinal)
    {
        "InAttribute", "OutAttribute", "OptionalAttribute", "DefaultParameterValueAttribute", "CollectionsMarshal",
    };

    private static readonly HashSet<string> ForbiddenRuntimeHelpers = new(StringComparer.Ordinal)
    {
        "GetUninitializedObject", "RunClassConstructor", "RunModuleConstructor", "PrepareMethod", "PrepareDelegate",
        "PrepareContractedDelegate", "AllocateTypeAssociatedMemory", "ExecuteCodeWithGuaranteedCleanup", "GetObjectValue",
    };

    private static readonly HashSet<string> ReflectionSystemTypes = new(StringComparer.Ordinal)
    {
        "RuntimeMethodHandle", "RuntimeFieldHandle", "TypedReference",
        "ArgIterator", "RuntimeArgumentHandle", "ModuleHandle",
    };

    /// <summary>Checks a type by its namespace and (nested, arity-free) name, e.g. <c>System.IO</c> + <c>File</c>.</summary>
    public static PolicyViolation? CheckType(string ns, string typeName)
    {
        var outer = typeName.Split('+')[0];
        var display = ns.Length == 0 ? typeName.Replace('+', '.') : $"{ns}.{typeName.Replace('+', '.')}";

        if (ns == "System.IO" && AllowedIoTypes.Contains(outer))
        {
            return null;
        }

        if (InNamespace(ns, "System.IO") || ns == "Microsoft.Win32")
        {
            return new(Files, $"'{display}' (file system access)");
        }

        if (ns == "System.Diagnostics" && ProcessTypes.Contains(outer))
        {
            return new(Processes, $"'{display}' (processes and debuggers)");
        }

        if (InNamespace(ns, "System.Net") && !(ns == "System.Net" && outer is "WebUtility" or "HttpStatusCode"))
        {
            return new(Network, $"'{display}' (network access)");
        }

        if ((ns == "System.Threading" && ThreadingTypes.Contains(outer))
            || (ns == "System.Threading.Tasks" && TaskThreadingTypes.Contains(outer))
            || ns == "System.Timers")
        {
            return new(Threads, $"'{display}' (threads, timers and schedulers)");
        }

        if (ns == "System.Runtime.CompilerServices" && outer == "ModuleInitializerAttribute")
        {
            return new(ModuleInitializer, $"'{display}' (code that runs when the hook is loaded, even by 'hooks check')");
        }

        if (InNamespace(ns, "System.Runtime.Loader") || (ns == "System" && outer == "AppDomain"))
        {
            return new(AssemblyLoading, $"'{display}' (assembly loading)");
        }

        // Assembly attributes (AssemblyCompanyAttribute...) are declarations, not reflection.
        if (ns == "System.Reflection" && outer.EndsWith("Attribute", StringComparison.Ordinal))
        {
            return null;
        }

        if (InNamespace(ns, "System.Reflection")
            || InNamespace(ns, "System.Linq.Expressions")
            || (ns == "System" && ReflectionSystemTypes.Contains(outer))
            || (ns == "System.Runtime.CompilerServices" && outer is "UnsafeAccessorAttribute" or "UnsafeAccessorTypeAttribute"))
        {
            return new(Reflection, $"'{display}' (reflection and runtime code generation)");
        }

        if ((InNamespace(ns, "System.Runtime.InteropServices") && !(ns == "System.Runtime.InteropServices" && AllowedInteropTypes.Contains(outer)))
            || (ns == "System.Runtime.CompilerServices" && outer == "Unsafe"))
        {
            return new(Interop, $"'{display}' (interop and raw memory access)");
        }

        return null;
    }

    /// <summary>Checks a member (method, property, field, event; <c>.ctor</c> for constructors) of an allowed type.</summary>
    public static PolicyViolation? CheckMember(string ns, string typeName, string memberName, bool genericMethod = false)
    {
        var typeDisplay = $"{(ns.Length == 0 ? "" : ns + ".")}{typeName.Replace('+', '.')}";
        var display = memberName == ".ctor" ? $"'new {typeDisplay}(...)'" : $"'{typeDisplay}.{memberName}'";

        // Type.Name and friends are inherited from MemberInfo: describing a type is not reflection.
        if (ns == "System.Reflection" && typeName == "MemberInfo" && memberName is "Name" or "ToString" or "Equals" or "GetHashCode")
        {
            return null;
        }

        if (CheckType(ns, typeName) is { } typeViolation)
        {
            return typeViolation with { What = typeViolation.What.Replace($"'{typeDisplay}'", display, StringComparison.Ordinal) };
        }

        if (ns == "System")
        {
            switch (typeName)
            {
                case "Activator" when !(memberName == "CreateInstance" && genericMethod): // `new T()` compiles to CreateInstance<T>()
                    return new(Reflection, $"{display} (reflection; use `new T()` or a factory delegate)");
                case "Type" when !AllowedTypeMembers.Contains(memberName):
                    return new(Reflection, $"{display} (reflection)");
                case "Delegate" or "MulticastDelegate" when memberName is "CreateDelegate" or "DynamicInvoke" or "Method" or "GetMethodInfo":
                    return new(Reflection, $"{display} (reflection)");
                case "Environment" when memberName is "Exit" or "FailFast" or "SetEnvironmentVariable" or "CurrentDirectory":
                    return new(EnvironmentControl, $"{display} (process control)");
                case "AppContext" when memberName is "SetData" or "SetSwitch":
                    return new(EnvironmentControl, $"{display} (process control)");
                case "Console" when memberName is not ("Write" or "WriteLine"):
                    return new(ConsoleControl, $"{display} (console input and redirection; use Console.Write/WriteLine only)");
                case "GC" when memberName is "AddMemoryPressure" or "RemoveMemoryPressure" or "TryStartNoGCRegion" or "EndNoGCRegion" or "RegisterForFullGCNotification":
                    return new(EnvironmentControl, $"{display} (process control)");
                default:
                    break;
            }
        }

        if (ns == "System.Runtime.CompilerServices" && typeName == "RuntimeHelpers" && ForbiddenRuntimeHelpers.Contains(memberName))
        {
            return new(Reflection, $"{display} (reflection)");
        }

        if (ns == "System.Threading.Tasks" && typeName is "Task" or "ValueTask"
            && memberName is "Run" or "Factory" or "Start" or "RunSynchronously" or ".ctor")
        {
            return new(Threads, $"{display} (starting work on other threads)");
        }

        return null;
    }

    private static bool InNamespace(string ns, string root)
        => ns == root || ns.StartsWith(root + ".", StringComparison.Ordinal);
}
