using System.Reflection;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;

namespace EtlFunnel.Scripting.Policy;

/// <summary>
/// Checks a plugin's IL references (type and member references, P/Invoke definitions) against <see cref="HookPolicy"/>
/// with System.Reflection.Metadata, before anything of the plugin is loaded.
/// </summary>
internal static class PluginInspector
{
    public static List<HookDiagnostic> Check(string pluginDirectory, string pluginName)
    {
        var diagnostics = new List<HookDiagnostic>();
        foreach (var dll in Directory.EnumerateFiles(pluginDirectory, "*.dll").Order(StringComparer.Ordinal))
        {
            if (Path.GetFileName(dll) == typeof(Execution.Models.OrchestratorProps).Assembly.GetName().Name + ".dll")
            {
                continue;
            }

            var seen = new HashSet<string>(StringComparer.Ordinal);
            void Report(PolicyViolation violation)
            {
                if (seen.Add(violation.What))
                {
                    diagnostics.Add(new HookDiagnostic(dll, 1, 1, "error", violation.Id,
                        $"{violation.Message}; plugin '{pluginName}' is refused (add \"{pluginName}\" to TrustedPlugins only if you trust it)"));
                }
            }

            using var stream = File.OpenRead(dll);
            using var pe = new PEReader(stream);
            if (!pe.HasMetadata)
            {
                continue;
            }

            var md = pe.GetMetadataReader();
            foreach (var handle in md.TypeReferences)
            {
                var (ns, name) = TypeName(md, handle);
                if (HookPolicy.CheckType(ns, name) is { } violation)
                {
                    Report(violation);
                }
            }

            foreach (var handle in md.MemberReferences)
            {
                var member = md.GetMemberReference(handle);
                if (ParentType(md, member.Parent) is not { } parent)
                {
                    continue;
                }

                var generic = member.GetKind() == MemberReferenceKind.Method && md.GetBlobReader(member.Signature).ReadSignatureHeader().IsGeneric;
                if (HookPolicy.CheckMember(parent.Namespace, parent.Name, MemberName(md.GetString(member.Name)), generic) is { } violation)
                {
                    Report(violation);
                }
            }

            foreach (var handle in md.MethodDefinitions)
            {
                var method = md.GetMethodDefinition(handle);
                if ((method.Attributes & MethodAttributes.PinvokeImpl) != 0)
                {
                    Report(new PolicyViolation(HookPolicy.Interop, $"P/Invoke method '{md.GetString(method.Name)}' (interop)"));
                }
            }
        }

        return diagnostics;
    }

    private static string MemberName(string name)
    {
        foreach (var prefix in (ReadOnlySpan<string>)["get_", "set_", "add_", "remove_"])
        {
            if (name.StartsWith(prefix, StringComparison.Ordinal))
            {
                return name[prefix.Length..];
            }
        }

        return name;
    }

    private static (string Namespace, string Name)? ParentType(MetadataReader md, EntityHandle parent)
    {
        switch (parent.Kind)
        {
            case HandleKind.TypeReference:
                return TypeName(md, (TypeReferenceHandle)parent);
            case HandleKind.TypeSpecification:
                // A generic instantiation: GENERICINST (CLASS|VALUETYPE) TypeDefOrRef ...
                var blob = md.GetBlobReader(md.GetTypeSpecification((TypeSpecificationHandle)parent).Signature);
                if (blob.ReadSignatureTypeCode() != SignatureTypeCode.GenericTypeInstance)
                {
                    return null;
                }

                blob.ReadSignatureTypeCode();
                var generic = blob.ReadTypeHandle();
                return generic.Kind == HandleKind.TypeReference ? TypeName(md, (TypeReferenceHandle)generic) : null;
            default:
                return null;
        }
    }

    private static (string Namespace, string Name) TypeName(MetadataReader md, TypeReferenceHandle handle)
    {
        var type = md.GetTypeReference(handle);
        var name = StripArity(md.GetString(type.Name));
        if (type.ResolutionScope.Kind == HandleKind.TypeReference)
        {
            var (ns, outer) = TypeName(md, (TypeReferenceHandle)type.ResolutionScope);
            return (ns, outer + "+" + name);
        }

        return (md.GetString(type.Namespace), name);
    }

    private static string StripArity(string name)
    {
        var tick = name.IndexOf('`', StringComparison.Ordinal);
        return tick < 0 ? name : name[..tick];
    }
}
