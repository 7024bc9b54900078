using System.Text;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Text;

namespace EtlFunnel.Scripting.Compiling;

/// <summary>
/// Makes a hook interruptible: .NET cannot abort a thread, so the compiled code checks the call's budget token itself.
/// Inserts <c>Loop()</c> at every loop back-edge (start of each loop body, before every <c>goto</c>), <c>Enter()</c>
/// (budget + stack-depth check) at every method, accessor, local function and lambda entry, and a
/// <c>when (!Stopping)</c> filter on every <c>catch</c> so a hook cannot swallow its own cancellation.
/// Edits are text insertions without line breaks, so lines in the PDB and in stack traces stay those of the .csx.
/// </summary>
internal static class BudgetRewriter
{
    private const string Loop = ScriptCompiler.RuntimeClassName + ".Loop(); ";
    private const string Enter = ScriptCompiler.RuntimeClassName + ".Enter(); ";
    private const string Stopping = "!" + ScriptCompiler.RuntimeClassName + ".Stopping";

    public static SourceText Rewrite(SyntaxTree tree, SemanticModel model)
    {
        var edits = new Edits();
        foreach (var node in tree.GetRoot().DescendantNodes())
        {
            switch (node)
            {
                case WhileStatementSyntax s:
                    LoopBody(edits, s.Statement);
                    break;
                case DoStatementSyntax s:
                    LoopBody(edits, s.Statement);
                    break;
                case ForStatementSyntax s:
                    LoopBody(edits, s.Statement);
                    break;
                case CommonForEachStatementSyntax s:
                    LoopBody(edits, s.Statement);
                    break;
                case GotoStatementSyntax s:
                    edits.Open(s.SpanStart, "{ " + Loop);
                    edits.Close(s.Span.End, " }");
                    break;
                case BaseMethodDeclarationSyntax m:
                    Body(edits, m.Body, m.ExpressionBody, m.SemicolonToken, ReturnsValue(model.GetDeclaredSymbol(m)));
                    break;
                case LocalFunctionStatementSyntax f:
                    Body(edits, f.Body, f.ExpressionBody, f.SemicolonToken, ReturnsValue(model.GetDeclaredSymbol(f) as IMethodSymbol));
                    break;
                case AccessorDeclarationSyntax a:
                    Body(edits, a.Body, a.ExpressionBody, a.SemicolonToken, a.IsKind(SyntaxKind.GetAccessorDeclaration));
                    break;
                case BasePropertyDeclarationSyntax p when ExpressionBody(p) is { } arrow:
                    // `int P => e;` becomes `int P { get { Enter(); return e; } }`.
                    edits.Replace(arrow.ArrowToken.Span, "{ get { " + Enter + (arrow.Expression is ThrowExpressionSyntax ? "" : "return "));
                    edits.Replace(SemicolonOf(p).Span, "; } }");
                    break;
                case AnonymousFunctionExpressionSyntax lambda:
                    Lambda(edits, lambda, model);
                    break;
                case CatchClauseSyntax c:
                    if (c.Filter is { } filter)
                    {
                        edits.Open(filter.FilterExpression.SpanStart, Stopping + " && (");
                        edits.Close(filter.FilterExpression.Span.End, ")");
                    }
                    else
                    {
                        var after = c.Declaration?.Span.End ?? c.CatchKeyword.Span.End;
                        edits.Open(after, " when (" + Stopping + ")");
                    }

                    break;
            }
        }

        return tree.GetText().WithChanges(edits.ToChanges());
    }

    private static void LoopBody(Edits edits, StatementSyntax body)
    {
        if (body is BlockSyntax block)
        {
            edits.Open(block.OpenBraceToken.Span.End, " " + Loop);
        }
        else
        {
            edits.Open(body.SpanStart, "{ " + Loop);
            edits.Close(body.Span.End, " }");
        }
    }

    private static void Body(Edits edits, BlockSyntax? body, ArrowExpressionClauseSyntax? arrow, SyntaxToken semicolon, bool returnsValue)
    {
        if (body is not null)
        {
            edits.Open(body.OpenBraceToken.Span.End, " " + Enter);
        }
        else if (arrow is not null && !semicolon.IsMissing)
        {
            var value = returnsValue && arrow.Expression is not ThrowExpressionSyntax;
            edits.Replace(arrow.ArrowToken.Span, "{ " + Enter + (value ? "return " : ""));
            edits.Replace(semicolon.Span, "; }");
        }
    }

    private static void Lambda(Edits edits, AnonymousFunctionExpressionSyntax lambda, SemanticModel model)
    {
        if (lambda.Block is { } block)
        {
            edits.Open(block.OpenBraceToken.Span.End, " " + Enter);
            return;
        }

        if (lambda.ExpressionBody is not { } expression)
        {
            return;
        }

        // Expression trees cannot hold statements; they are data, not code that runs here.
        var converted = model.GetTypeInfo(lambda).ConvertedType;
        if (converted is null || converted.Name == "Expression" || converted.TypeKind != TypeKind.Delegate)
        {
            return;
        }

        var returnsValue = ReturnsValue(model.GetSymbolInfo(lambda).Symbol as IMethodSymbol) && expression is not ThrowExpressionSyntax;
        edits.Open(expression.SpanStart, "{ " + Enter + (returnsValue ? "return " : ""));
        edits.Close(expression.Span.End, "; }");
    }

    private static bool ReturnsValue(IMethodSymbol? method)
    {
        if (method is null || method.ReturnsVoid)
        {
            return false;
        }

        // An async method returning Task/ValueTask has a statement body: `await X();`, not `return await X();`.
        return !(method.IsAsync && method.ReturnType is INamedTypeSymbol { IsGenericType: false, Name: "Task" or "ValueTask" });
    }

    private static ArrowExpressionClauseSyntax? ExpressionBody(BasePropertyDeclarationSyntax property) => property switch
    {
        PropertyDeclarationSyntax p => p.ExpressionBody,
        IndexerDeclarationSyntax i => i.ExpressionBody,
        _ => null,
    };

    private static SyntaxToken SemicolonOf(BasePropertyDeclarationSyntax property) => property switch
    {
        PropertyDeclarationSyntax p => p.SemicolonToken,
        IndexerDeclarationSyntax i => i.SemicolonToken,
        _ => default,
    };

    /// <summary>Insertions and token replacements, merged per position so nested edits nest correctly.</summary>
    private sealed class Edits
    {
        private readonly SortedDictionary<int, Edit> byPosition = [];

        public void Open(int position, string text) => At(position).Opens.Append(text);

        public void Close(int position, string text) => At(position).Closes.Insert(0, text);

        public void Replace(TextSpan span, string text)
        {
            var edit = At(span.Start);
            edit.Length = span.Length;
            edit.Replacement = text;
        }

        public IEnumerable<TextChange> ToChanges()
            => byPosition.Select(p => new TextChange(
                new TextSpan(p.Key, p.Value.Length),
                p.Value.Closes.ToString() + p.Value.Opens + (p.Value.Replacement ?? "")));

        private Edit At(int position)
        {
            if (!byPosition.TryGetValue(position, out var edit))
            {
                edit = new Edit();
                byPosition[position] = edit;
            }

            return edit;
        }

        private sealed class Edit
        {
            public StringBuilder Closes { get; } = new();

            public StringBuilder Opens { get; } = new();

            public int Length { get; set; }

            public string? Replacement { get; set; }
        }
    }
}
