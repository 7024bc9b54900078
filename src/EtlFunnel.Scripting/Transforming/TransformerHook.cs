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
public sealed class TransformerHook : IDataTransformer, IFrameTransformer
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
        var input = new TransformInput[rows.Count];
        for (var i = 0; i < input.Length; i++)
        {
            input[i] = new TransformInput(rows[i].Id, rows[i].Operation, rows[i].Json);
        }

        using var reply = await RunBatchAsync(target, input, budget, cancellationToken).ConfigureAwait(false);
        var decoded = TransformReply.Read(reply.Body, input.Length);
        var results = new TransformedDocument[input.Length];
        for (var i = 0; i < results.Length; i++)
        {
            var row = rows[i];
            var outcome = decoded.Outcome(i);
            var json = outcome == TransformOutcome.Written && row.Operation == RowOperation.Upsert
                ? decoded.IsUnchanged(i) ? row.Json : decoded.Json(i).ToArray()
                : null;
            results[i] = new TransformedDocument(outcome, decoded.NewId(i) ?? row.Id, row.Operation, decoded.Index(i), json, decoded.Error(i));
        }

        return results;
    }

    /// <summary>
    /// The batch in its binary form (<see cref="TransformRequest"/> → <see cref="TransformReply"/>), as the host's adapter
    /// calls it; the same rules as <see cref="TransformAsync(TransformTarget, IReadOnlyList{SourceDocument}, TimeSpan, CancellationToken)"/>.
    /// </summary>
    async Task<TransformReply> IFrameTransformer.TransformFramesAsync(TransformTarget target, TransformRequest request, TimeSpan budget, CancellationToken cancellationToken)
    {
        var rows = TransformRequest.Read(request.Body);
        using var reply = await RunBatchAsync(target, rows, budget, cancellationToken).ConfigureAwait(false);
        return TransformReply.Read(reply.Body.ToArray(), rows.Length);
    }

    /// <summary>
    /// Runs the script over <paramref name="rows"/> under one budget; the results, encoded (the caller disposes them). Throws
    /// <see cref="TransformTimeoutException"/> when the budget runs out.
    /// </summary>
    internal async Task<TransformReplyWriter> RunBatchAsync(TransformTarget target, TransformInput[] rows, TimeSpan budget, CancellationToken cancellationToken)
    {
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
                $"{SourcePath}: transformer '{Name}' ran past its per-batch time budget of {budget.TotalMilliseconds:0} ms at row {at + 1} of {rows.Length} in a call the budget checks cannot stop (a blocking BCL call?); the batch was not written or acknowledged and the worker running it must be restarted.");
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

    private async Task<TransformReplyWriter> RunAsync(TransformTarget target, TransformInput[] rows, TimeSpan budget, CancellationToken token, int[] progress)
    {
        begin(token);
        var transform = await newInstance().ConfigureAwait(false); // top-level code and fields run once per batch
        var view = new JsonRowView();
        var writer = new JsonDocumentWriter();
        Action<System.Buffers.IBufferWriter<byte>> writeDocument = writer.WriteTo;
        var output = new TransformReplyWriter((rows.Length * 8) + 256);
        try
        {
            for (var i = 0; i < rows.Length; i++)
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
                        $"{file}({line},{column}): transformer '{Name}' ran past its per-batch time budget of {budget.TotalMilliseconds:0} ms at row {i + 1} of {rows.Length} (id '{row.Id}'); the batch was not written or acknowledged. Make it faster or raise the budget.");
                }
#pragma warning disable CA1031 // Any exception of the hook's is that row's failure; the other rows go on.
                catch (Exception ex)
#pragma warning restore CA1031
                {
                    var (file, line, column) = locate(ex);
                    output.Add(TransformOutcome.Failed, null, null,
                        $"{file}({line},{column}): transformer '{Name}' threw {ex.GetType().Name} on {target.Schema}.{target.Table} id '{row.Id}': {ex.Message}");
                    continue;
                }

                var newId = string.Equals(writer.Id, row.Id, StringComparison.Ordinal) ? null : writer.Id;
                if (writer.IsSkipped)
                {
                    output.Add(TransformOutcome.Skipped, newId, writer.Index, null);
                }
                else if (row.Operation == RowOperation.Upsert && writer.IsEdited)
                {
                    output.AddDocument(newId, writer.Index, writeDocument);
                }
                else
                {
                    // A delete writes no document; an upsert nobody edited is the input document, byte for byte.
                    output.Add(TransformOutcome.Written, newId, writer.Index, null);
                }
            }
        }
        catch
        {
            output.Dispose();
            throw;
        }

        return output;
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
