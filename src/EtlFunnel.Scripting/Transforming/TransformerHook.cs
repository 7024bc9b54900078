using System.Buffers;
using EtlFunnel.Execution.Models;

namespace EtlFunnel.Scripting.Transforming;

/// <summary>One source row handed to a transformer: its document id, what happened to it, and the engine's JSON document.</summary>
public sealed record SourceDocument(string Id, RowOperation Operation, byte[] Json);

/// <summary>What became of one row.</summary>
public enum TransformOutcome
{
    /// <summary>The transformer wrote a document (for a delete: the id to delete).</summary>
    Written,

    /// <summary>The transformer skipped the row: nothing is written.</summary>
    Skipped,

    /// <summary>The transformer threw on this row: the row goes to the dead letters with <see cref="TransformedDocument.Error"/>.</summary>
    Failed,
}

/// <summary>The transformer's result for one row, in input order.</summary>
public sealed record TransformedDocument(TransformOutcome Outcome, string Id, RowOperation Operation, string? Index, byte[]? Json, string? Error);

/// <summary>Where a batch comes from; matched against a transformer's <c>AppliesTo</c> glob.</summary>
public sealed record TransformTarget(string Flow, string Schema, string Table);

/// <summary>A transformer ran past its per-batch time budget: no row of the batch may be acknowledged.</summary>
public sealed class TransformTimeoutException(string message) : Exception(message);

/// <summary>A data-plane transformer as the engine uses it, wherever it runs (in the hook worker, or in process for tests).</summary>
public interface IDataTransformer
{
    /// <summary>The file's name relative to the hooks folder.</summary>
    string Name { get; }

    /// <summary>The script's full path.</summary>
    string SourcePath { get; }

    /// <summary>The loaded version (content hash): documents are counted per version in the run report.</summary>
    string VersionKey { get; }

    /// <summary>The pipelines it applies to: comma-separated <c>flow/schema.table</c> globs.</summary>
    string AppliesTo { get; }

    /// <summary>True when the transformer applies to tables of <paramref name="target"/>.</summary>
    bool Matches(TransformTarget target);

    /// <summary>Transforms a batch in one call under one budget; <see cref="TransformTimeoutException"/> when it runs out.</summary>
    Task<IReadOnlyList<TransformedDocument>> TransformAsync(TransformTarget target, IReadOnlyList<SourceDocument> rows, TimeSpan budget, CancellationToken cancellationToken = default);
}

/// <summary>
/// A loaded transformer script (<c>void Transform(RowView row, DocumentWriter doc)</c> in a hooks-folder .csx). One call
/// transforms a whole batch under one time budget; a row the script throws on is reported with the script's
/// <c>file(line,col)</c> and the others go on.
/// </summary>
public sealed class TransformerHook : IDataTransformer
{
    private readonly Func<Task<Action<RowView, DocumentWriter>>> newInstance;
    private readonly Action<CancellationToken> begin;
    private readonly Func<Exception, (string? File, int? Line, int? Column)> locate;
    private readonly string[] patterns;

    internal TransformerHook(string name, string sourcePath, string versionKey, string appliesTo, Func<Task<Action<RowView, DocumentWriter>>> newInstance,
        Action<CancellationToken> begin, Func<Exception, (string? File, int? Line, int? Column)> locate)
    {
        (Name, SourcePath, VersionKey, AppliesTo) = (name, sourcePath, versionKey, appliesTo);
        (this.newInstance, this.begin, this.locate) = (newInstance, begin, locate);
        patterns = appliesTo.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
    }

    internal Loading.HookFileVersion? Version { get; init; }

    /// <summary>The file's name relative to the hooks folder.</summary>
    public string Name { get; }

    /// <summary>The script's full path.</summary>
    public string SourcePath { get; }

    /// <summary>The loaded version (content hash): documents are counted per version in the run report.</summary>
    public string VersionKey { get; }

    /// <summary>The pipelines it applies to: comma-separated <c>flow/schema.table</c> globs (<c>*</c> and <c>?</c>); default <c>*/*.*</c>.</summary>
    public string AppliesTo { get; }

    /// <summary>True when the transformer applies to tables of <paramref name="target"/>.</summary>
    public bool Matches(TransformTarget target) => Matches(patterns, target);

    internal static bool Matches(string[] patterns, TransformTarget target)
    {
        var path = $"{target.Flow}/{target.Schema}.{target.Table}";
        return patterns.Any(p => Glob(p.Contains('/', StringComparison.Ordinal) ? p : "*/" + p, path));
    }

    /// <summary>
    /// Transforms a batch (one call, one budget). Throws <see cref="TransformTimeoutException"/> when the budget runs out:
    /// there is no result, and the caller must not write or acknowledge the batch.
    /// </summary>
    public async Task<IReadOnlyList<TransformedDocument>> TransformAsync(TransformTarget target, IReadOnlyList<SourceDocument> rows, TimeSpan budget, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(rows);
        using var budgetSource = new CancellationTokenSource(budget);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, budgetSource.Token);
        var progress = new int[1];
        Version?.Enter(); // a reload unloads this version only after the batch ends

        // On a pool thread of its own, so the script's budget token (an AsyncLocal) never leaks into the caller's context.
        var work = Task.Run(() => RunAsync(target, rows, budget, linked.Token, progress), CancellationToken.None);
        var grace = Task.Delay(budget + TimeSpan.FromSeconds(2), cancellationToken);
        if (await Task.WhenAny(work, grace).ConfigureAwait(false) != work)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var at = Volatile.Read(ref progress[0]);
            throw new TransformTimeoutException(
                $"{SourcePath}: transformer '{Name}' ran past its per-batch time budget of {budget.TotalMilliseconds:0} ms at row {at + 1} of {rows.Count} in a call the budget checks cannot stop (a blocking BCL call?); the batch was not written or acknowledged and the worker running it must be restarted.");
        }

        try
        {
            return await work.ConfigureAwait(false);
        }
        finally
        {
            Version?.Exit();
        }
    }

    private async Task<IReadOnlyList<TransformedDocument>> RunAsync(TransformTarget target, IReadOnlyList<SourceDocument> rows, TimeSpan budget, CancellationToken token, int[] progress)
    {
        begin(token);
        var transform = await newInstance().ConfigureAwait(false); // top-level code and fields run once per batch
        var view = new JsonRowView();
        var writer = new JsonDocumentWriter();
        var output = new ArrayBufferWriter<byte>(4096);
        var results = new TransformedDocument[rows.Count];
        for (var i = 0; i < rows.Count; i++)
        {
            Volatile.Write(ref progress[0], i);
            var row = rows[i];
            view.Reset(target.Flow, target.Schema, target.Table, row.Id, row.Operation, row.Json);
            writer.Reset(view);
            try
            {
                transform(view, writer);
            }
            catch (Exception ex) when (token.IsCancellationRequested)
            {
                var (file, line, column) = locate(ex);
                throw new TransformTimeoutException(
                    $"{file}({line},{column}): transformer '{Name}' ran past its per-batch time budget of {budget.TotalMilliseconds:0} ms at row {i + 1} of {rows.Count} (id '{row.Id}'); the batch was not written or acknowledged. Make it faster or raise the budget.");
            }
#pragma warning disable CA1031 // Any exception of the hook's is that row's failure; the other rows go on.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                var (file, line, column) = locate(ex);
                results[i] = new TransformedDocument(TransformOutcome.Failed, row.Id, row.Operation, null, null,
                    $"{file}({line},{column}): transformer '{Name}' threw {ex.GetType().Name} on {target.Schema}.{target.Table} id '{row.Id}': {ex.Message}");
                continue;
            }

            if (writer.IsSkipped)
            {
                results[i] = new TransformedDocument(TransformOutcome.Skipped, writer.Id, row.Operation, writer.Index, null, null);
                continue;
            }

            byte[]? json = null;
            if (row.Operation == RowOperation.Upsert)
            {
                output.ResetWrittenCount();
                writer.WriteTo(output);
                json = output.WrittenSpan.ToArray();
            }

            results[i] = new TransformedDocument(TransformOutcome.Written, writer.Id, row.Operation, writer.Index, json, null);
        }

        return results;
    }

    internal static bool Glob(string pattern, string text)
    {
        // Iterative glob with backtracking to the last '*': linear enough for short names, no regex.
        int p = 0, t = 0, star = -1, mark = 0;
        while (t < text.Length)
        {
            if (p < pattern.Length && (pattern[p] == '?' || pattern[p] == text[t]))
            {
                p++;
                t++;
            }
            else if (p < pattern.Length && pattern[p] == '*')
            {
                star = p++;
                mark = t;
            }
            else if (star >= 0)
            {
                p = star + 1;
                t = ++mark;
            }
            else
            {
                return false;
            }
        }

        while (p < pattern.Length && pattern[p] == '*')
        {
            p++;
        }

        return p == pattern.Length;
    }
}
