using EtlFunnel.Scripting.Policy;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace EtlFunnel.Scripting.Compiling;

/// <summary>
/// The sandbox's semantic check: walks every name in a hook's syntax tree, resolves it with the semantic model and
/// asks <see cref="HookPolicy"/> about the symbol; also refuses unsafe/extern/dynamic syntax, <c>#r</c> and
/// <c>#load</c> outside the hooks folder.
/// </summary>
internal static class PolicyWalker
{
    public static IEnumerable<HookDiagnostic> Check(CSharpCompilation compilation, SyntaxTree tree, string root)
    {
        var results = new List<HookDiagnostic>();
        var model = compilation.GetSemanticModel(tree);
        var compilationRoot = tree.GetCompilationUnitRoot();

        void Report(SyntaxNodeOrToken at, string id, string what)
            => results.Add(ScriptCompiler.Convert(at.GetLocation()!, "error", id, new PolicyViolation(id, what).Message));

        foreach (var directive in compilationRoot.GetReferenceDirectives())
        {
            Report(directive, HookPolicy.ReferenceDirective, "'#r' (referencing assemblies)");
        }

        foreach (var directive in compilationRoot.GetLoadDirectives())
        {
            var target = directive.File.ValueText;
            // A target that does not resolve (e.g. a link into a folder the sandbox does not show) is judged by its path.
            var resolved = HookSourceResolver.ResolveUnchecked(root, target, tree.FilePath)
                ?? Path.GetFullPath(Path.IsPathRooted(target) ? target : Path.Combine(Path.GetDirectoryName(tree.FilePath) ?? root, target));
            if (!ScriptSources.IsInside(root, resolved))
            {
                Report(directive, HookPolicy.LoadOutsideFolder, $"'#load \"{target}\"' (a file outside the hooks folder {root})");
            }
        }

        foreach (var trivia in compilationRoot.DescendantTrivia(descendIntoTrivia: true))
        {
            if (trivia.GetStructure() is LineDirectiveTriviaSyntax or LineSpanDirectiveTriviaSyntax)
            {
                Report(trivia.GetStructure()!, HookPolicy.LineDirective, "'#line' (it makes diagnostics and stack traces point at other files and lines)");
            }
        }

        foreach (var token in compilationRoot.DescendantTokens())
        {
            if (token.IsKind(SyntaxKind.IdentifierToken) && IsInjectedName(token.ValueText))
            {
                Report(token, HookPolicy.InjectedName, $"the name '{token.ValueText}' (reserved for the code the host adds to hooks, such as the time budget)");
            }
        }

        foreach (var node in compilationRoot.DescendantNodes())
        {
            switch (node)
            {
                case DestructorDeclarationSyntax destructor:
                    Report(destructor.Identifier, HookPolicy.Finalizer, "a finalizer (it runs on the runtime's finalizer thread, outside the hook's time budget)");
                    break;
                case MethodDeclarationSyntax { ReturnType: PredefinedTypeSyntax { Keyword.RawKind: (int)SyntaxKind.VoidKeyword } } method when method.Modifiers.Any(SyntaxKind.AsyncKeyword):
                    Report(method.Identifier, HookPolicy.AsyncVoid, "'async void' (an exception in it crashes the process instead of failing the call; return Task)");
                    break;
                case LocalFunctionStatementSyntax { ReturnType: PredefinedTypeSyntax { Keyword.RawKind: (int)SyntaxKind.VoidKeyword } } local when local.Modifiers.Any(SyntaxKind.AsyncKeyword):
                    Report(local.Identifier, HookPolicy.AsyncVoid, "'async void' (an exception in it crashes the process instead of failing the call; return Task)");
                    break;
                case UnsafeStatementSyntax or FixedStatementSyntax or StackAllocArrayCreationExpressionSyntax
                    or ImplicitStackAllocArrayCreationExpressionSyntax or MakeRefExpressionSyntax or RefTypeExpressionSyntax
                    or RefValueExpressionSyntax:
                    Report(node, HookPolicy.UnsafeCode, $"'{node.GetFirstToken().Text}' (unsafe code)");
                    break;
                case PointerTypeSyntax or FunctionPointerTypeSyntax:
                    Report(node, HookPolicy.UnsafeCode, "pointer types (unsafe code)");
                    break;
                case PrefixUnaryExpressionSyntax prefix when prefix.IsKind(SyntaxKind.AddressOfExpression):
                    Report(node, HookPolicy.UnsafeCode, "'&' address-of (unsafe code)");
                    break;
                case MemberDeclarationSyntax or LocalFunctionStatementSyntax:
                    CheckModifiers(node, Report);
                    break;
                case SimpleNameSyntax name:
                    CheckName(name, model, compilation, Report);
                    break;
                case BaseObjectCreationExpressionSyntax creation:
                    CheckSymbol(creation, model.GetSymbolInfo(creation), compilation, Report);
                    break;
                case ElementAccessExpressionSyntax access:
                    CheckSymbol(access, model.GetSymbolInfo(access), compilation, Report);
                    break;
            }
        }

        return results;
    }

    private static bool IsInjectedName(string name)
        => name.StartsWith("__EtlFunnel", StringComparison.Ordinal) || name == ScriptCompiler.ScriptClassName;

    private static void CheckModifiers(SyntaxNode node, Action<SyntaxNodeOrToken, string, string> report)
    {
        var modifiers = node switch
        {
            MemberDeclarationSyntax member => member.Modifiers,
            LocalFunctionStatementSyntax local => local.Modifiers,
            _ => default,
        };

        foreach (var modifier in modifiers)
        {
            if (modifier.IsKind(SyntaxKind.UnsafeKeyword))
            {
                report(modifier, HookPolicy.UnsafeCode, "'unsafe' (unsafe code)");
            }
            else if (modifier.IsKind(SyntaxKind.ExternKeyword))
            {
                report(modifier, HookPolicy.Interop, "'extern' methods (P/Invoke)");
            }
        }
    }

    private static void CheckName(SimpleNameSyntax name, SemanticModel model, Compilation compilation, Action<SyntaxNodeOrToken, string, string> report)
    {
        // `var` only names a type some checked expression produced; reporting it again would be noise.
        if (name is IdentifierNameSyntax { IsVar: true })
        {
            return;
        }

        // `File.ReadAllText`: the member check covers its type, so report once, at the start of the access.
        SyntaxNode at = name;
        if (name.Parent is MemberAccessExpressionSyntax access)
        {
            if (access.Expression == name)
            {
                return;
            }

            at = access;
        }
        else if (name.Parent is QualifiedNameSyntax qualified)
        {
            if (qualified.Left == name)
            {
                return;
            }

            at = qualified;
        }
        else if (name.Parent is MemberBindingExpressionSyntax)
        {
            at = name;
        }

        CheckSymbol(at, model.GetSymbolInfo(name), compilation, report);
    }

    private static void CheckSymbol(SyntaxNode at, SymbolInfo info, Compilation compilation, Action<SyntaxNodeOrToken, string, string> report)
    {
        var symbols = info.Symbol is { } symbol ? [symbol] : info.CandidateSymbols;
        foreach (var candidate in symbols)
        {
            if (Violation(candidate, compilation) is { } violation)
            {
                report(at, violation.Id, violation.What);
                return;
            }
        }
    }

    private static PolicyViolation? Violation(ISymbol symbol, Compilation compilation)
    {
        switch (symbol)
        {
            case IAliasSymbol alias:
                return Violation(alias.Target, compilation);
            case IDynamicTypeSymbol:
                return new PolicyViolation(HookPolicy.Dynamic, "'dynamic'");
            case IPointerTypeSymbol or IFunctionPointerTypeSymbol:
                return new PolicyViolation(HookPolicy.UnsafeCode, "pointer types (unsafe code)");
            case IArrayTypeSymbol array:
                return Violation(array.ElementType, compilation);
            case INamedTypeSymbol type:
                if (IsOwnCode(type, compilation))
                {
                    return null;
                }

                var (ns, name) = Names(type);
                if (HookPolicy.CheckType(ns, name) is { } typeViolation)
                {
                    return typeViolation;
                }

                foreach (var argument in type.TypeArguments)
                {
                    if (Violation(argument, compilation) is { } argumentViolation)
                    {
                        return argumentViolation;
                    }
                }

                return null;
            case IMethodSymbol or IPropertySymbol or IFieldSymbol or IEventSymbol:
                var member = symbol is IMethodSymbol { ReducedFrom: { } reduced } ? reduced : symbol.OriginalDefinition;
                if (member.ContainingType is not { } containing || IsOwnCode(containing, compilation))
                {
                    return null;
                }

                var (memberNs, typeName) = Names(containing);
                var memberName = member is IMethodSymbol { MethodKind: MethodKind.PropertyGet or MethodKind.PropertySet } accessor
                    ? accessor.AssociatedSymbol!.Name
                    : member.Name;
                return HookPolicy.CheckMember(memberNs, typeName, memberName, member is IMethodSymbol { IsGenericMethod: true });
            default:
                return null;
        }
    }

    private static bool IsOwnCode(INamedTypeSymbol type, Compilation compilation)
        => SymbolEqualityComparer.Default.Equals(type.ContainingAssembly, compilation.Assembly)
           || type.ContainingAssembly?.Name is "EtlFunnel.Contracts" or "EtlFunnel.Contracts.Testing";

    private static (string Namespace, string Name) Names(INamedTypeSymbol type)
    {
        var original = type.OriginalDefinition;
        var name = original.Name;
        var outer = original;
        while (outer.ContainingType is { } containing)
        {
            outer = containing;
            name = outer.Name + "+" + name;
        }

        var ns = outer.ContainingNamespace is { IsGlobalNamespace: false } n ? n.ToDisplayString() : "";
        return (ns, name);
    }
}
