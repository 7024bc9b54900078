using EtlFunnel.Execution.Models;

namespace EtlFunnel.Scripting.Batching;

/// <summary>Which batch-level hooks a script declares.</summary>
[Flags]
public enum BatchHookKinds
{
    /// <summary>None.</summary>
    None = 0,

    /// <summary><c>WriteRule WriteRule(PipelineInfo p)</c>: batch size and check interval, once per replica.</summary>
    WriteRule = 1,

    /// <summary><c>TerminationRule Termination(PipelineInfo p)</c>: when the replica stops, once per replica.</summary>
    Termination = 2,

    /// <summary><c>CheckpointDecision OnCheckpoint(CheckpointInfo c)</c>: continue or stop, at checkpoints.</summary>
    Checkpoint = 4,

    /// <summary><c>BacklogDecision OnBacklog(BacklogRecord r)</c>: retry, skip or stop, for a batch's failed records (one call per batch).</summary>
    Backlog = 8,
}

/// <summary>A batch-level hook threw, ran past its budget, returned null or an invalid value: the message names its <c>file(line,col)</c>.</summary>
public sealed class BatchHookException(string message) : Exception(message);

/// <summary>
/// The batch-level hooks of one script (write rule, termination rule, checkpoint, backlog), wherever they run (in the hook
/// worker, or in process). Every call is one round trip under one time budget.
/// </summary>
public interface IBatchHook
{
    /// <summary>The file's name relative to the hooks folder.</summary>
    string Name { get; }

    /// <summary>The script's full path.</summary>
    string SourcePath { get; }

    /// <summary>The loaded version (content hash).</summary>
    string VersionKey { get; }

    /// <summary>The pipelines it applies to: comma-separated <c>flow/schema.table</c> globs.</summary>
    string AppliesTo { get; }

    /// <summary>The hooks this version declares.</summary>
    BatchHookKinds Kinds { get; }

    /// <summary>True when it applies to tables of <paramref name="target"/>.</summary>
    bool Matches(Transforming.TransformTarget target);

    /// <summary>Calls <c>WriteRule</c>; the result is validated.</summary>
    Task<WriteRule> WriteRuleAsync(PipelineInfo pipeline, TimeSpan budget, CancellationToken cancellationToken = default);

    /// <summary>Calls <c>Termination</c>; the result is validated.</summary>
    Task<TerminationRule> TerminationAsync(PipelineInfo pipeline, TimeSpan budget, CancellationToken cancellationToken = default);

    /// <summary>Calls <c>OnCheckpoint</c>.</summary>
    Task<CheckpointDecision> CheckpointAsync(CheckpointInfo checkpoint, TimeSpan budget, CancellationToken cancellationToken = default);

    /// <summary>Calls <c>OnBacklog</c> once per record, all in one call under one budget; one decision per record, in order.</summary>
    Task<IReadOnlyList<BacklogDecision>> BacklogAsync(IReadOnlyList<BacklogRecord> records, TimeSpan budget, CancellationToken cancellationToken = default);
}

/// <summary>A loaded script's batch-level hooks, run in this process (the worker's side, or isolation none).</summary>
public sealed class BatchHook : IBatchHook
{
    /// <summary>Largest <see cref="WriteRule.BatchSize"/> accepted.</summary>
    public const int MaxBatchSize = 100_000;

    /// <summary>Largest <see cref="WriteRule.CheckInterval"/> accepted.</summary>
    public const int MaxCheckInterval = 1_000_000;

    private readonly Func<Task<object>> newInstance;
    private readonly Action<CancellationToken> begin;
    private readonly Func<Exception, (string? File, int? Line, int? Column)> locate;
    private readonly IReadOnlyDictionary<string, Func<object, object, object?>> methods;
    private readonly IReadOnlyDictionary<string, (int Line, int Column)> declared;
    private readonly string[] patterns;

    internal BatchHook(string name, string sourcePath, string versionKey, string appliesTo, Func<Task<object>> newInstance, Action<CancellationToken> begin,
        Func<Exception, (string? File, int? Line, int? Column)> locate, IReadOnlyDictionary<string, Func<object, object, object?>> methods, IReadOnlyDictionary<string, (int Line, int Column)> declared)
    {
        (Name, SourcePath, VersionKey, AppliesTo) = (name, sourcePath, versionKey, appliesTo);
        (this.newInstance, this.begin, this.locate, this.methods, this.declared) = (newInstance, begin, locate, methods, declared);
        patterns = appliesTo.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Kinds = (methods.ContainsKey(Compiling.ScriptCompiler.WriteRuleMethod) ? BatchHookKinds.WriteRule : 0)
            | (methods.ContainsKey(Compiling.ScriptCompiler.TerminationMethod) ? BatchHookKinds.Termination : 0)
            | (methods.ContainsKey(Compiling.ScriptCompiler.CheckpointMethod) ? BatchHookKinds.Checkpoint : 0)
            | (methods.ContainsKey(Compiling.ScriptCompiler.BacklogMethod) ? BatchHookKinds.Backlog : 0);
    }

    internal Loading.HookFileVersion? Version { get; init; }

    /// <inheritdoc />
    public string Name { get; }

    /// <inheritdoc />
    public string SourcePath { get; }

    /// <inheritdoc />
    public string VersionKey { get; }

    /// <inheritdoc />
    public string AppliesTo { get; }

    /// <inheritdoc />
    public BatchHookKinds Kinds { get; }

    /// <inheritdoc />
    public bool Matches(Transforming.TransformTarget target) => Transforming.TransformerHook.Matches(patterns, target);

    /// <inheritdoc />
    public async Task<WriteRule> WriteRuleAsync(PipelineInfo pipeline, TimeSpan budget, CancellationToken cancellationToken = default)
    {
        const string Method = Compiling.ScriptCompiler.WriteRuleMethod;
        var rule = (WriteRule)(await CallAsync(Method, [pipeline], budget, cancellationToken).ConfigureAwait(false))[0];
        if (rule.BatchSize is < 1 or > MaxBatchSize)
        {
            throw Invalid(Method, $"returned BatchSize {rule.BatchSize} for {pipeline.Schema}.{pipeline.Table}; it must be 1 to {MaxBatchSize:N0} documents per batch (or null for the plan's batch_size)");
        }

        if (rule.CheckInterval is < 1 or > MaxCheckInterval)
        {
            throw Invalid(Method, $"returned CheckInterval {rule.CheckInterval} for {pipeline.Schema}.{pipeline.Table}; it must be 1 to {MaxCheckInterval:N0} checkpoints (or null for every checkpoint)");
        }

        return rule;
    }

    /// <inheritdoc />
    public async Task<TerminationRule> TerminationAsync(PipelineInfo pipeline, TimeSpan budget, CancellationToken cancellationToken = default)
    {
        const string Method = Compiling.ScriptCompiler.TerminationMethod;
        var rule = (TerminationRule)(await CallAsync(Method, [pipeline], budget, cancellationToken).ConfigureAwait(false))[0];
        if (rule.MaxRecords is < 1)
        {
            throw Invalid(Method, $"returned MaxRecords {rule.MaxRecords} for {pipeline.Schema}.{pipeline.Table}; it must be at least 1 (or null for no limit)");
        }

        foreach (var (what, value) in new[] { ("IdleTimeout", rule.IdleTimeout), ("MaxPipelineTime", rule.MaxPipelineTime) })
        {
            if (value is { } v && v <= TimeSpan.Zero)
            {
                throw Invalid(Method, $"returned {what} {v} for {pipeline.Schema}.{pipeline.Table}; it must be positive (or null for no limit)");
            }
        }

        return rule;
    }

    /// <inheritdoc />
    public async Task<CheckpointDecision> CheckpointAsync(CheckpointInfo checkpoint, TimeSpan budget, CancellationToken cancellationToken = default)
    {
        var decision = (CheckpointDecision)(await CallAsync(Compiling.ScriptCompiler.CheckpointMethod, [checkpoint], budget, cancellationToken).ConfigureAwait(false))[0];
        return decision.Stops && string.IsNullOrWhiteSpace(decision.Reason) ? CheckpointDecision.Stop("(no reason given)") : decision;
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<BacklogDecision>> BacklogAsync(IReadOnlyList<BacklogRecord> records, TimeSpan budget, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(records);
        var results = await CallAsync(Compiling.ScriptCompiler.BacklogMethod, records.Cast<object>().ToList(), budget, cancellationToken).ConfigureAwait(false);
        return results.Cast<BacklogDecision>().ToList();
    }

    private BatchHookException Invalid(string method, string what)
    {
        var (line, column) = declared.TryGetValue(method, out var at) ? at : (1, 1);
        return new BatchHookException($"{SourcePath}({line},{column}): {method} in '{Name}' {what}.");
    }

    /// <summary>
    /// Runs <paramref name="method"/> on a fresh script instance once per argument, under one budget. A throw, a time-out
    /// or a null result is a <see cref="BatchHookException"/> at the script's <c>file(line,col)</c>.
    /// </summary>
    private async Task<IReadOnlyList<object>> CallAsync(string method, IReadOnlyList<object> arguments, TimeSpan budget, CancellationToken cancellationToken)
    {
        if (!methods.TryGetValue(method, out var invoke))
        {
            throw new BatchHookException($"{SourcePath}(1,1): '{Name}' does not declare {method} (any more); reload the hooks.");
        }

        using var budgetSource = new CancellationTokenSource(budget);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, budgetSource.Token);
        Version?.Enter();
        var work = Task.Run(async () =>
        {
            begin(linked.Token);
            var instance = await newInstance().ConfigureAwait(false);
            var results = new object[arguments.Count];
            for (var i = 0; i < arguments.Count; i++)
            {
                results[i] = invoke(instance, arguments[i]) ?? throw Invalid(method, "returned null");
            }

            return (IReadOnlyList<object>)results;
        }, CancellationToken.None);
        var grace = Task.Delay(budget + TimeSpan.FromSeconds(2), cancellationToken);
        if (await Task.WhenAny(work, grace).ConfigureAwait(false) != work)
        {
            // The version stays entered: the call still runs, so it must not be unloaded under it.
            cancellationToken.ThrowIfCancellationRequested();
            throw new BatchHookException(
                $"{SourcePath}: {method} in '{Name}' ran past its time budget of {budget.TotalMilliseconds:0} ms in a call the budget checks cannot stop (a blocking BCL call?); the worker running it must be restarted.");
        }

        try
        {
            try
            {
                return await work.ConfigureAwait(false);
            }
            catch (BatchHookException)
            {
                throw;
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                throw;
            }
#pragma warning disable CA1031 // Any exception of the hook's is its failure, reported at its line.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                var (file, line, column) = locate(ex);
                var at = line is null ? $"{file}" : $"{file}({line},{column})";
                if (budgetSource.IsCancellationRequested)
                {
                    throw new BatchHookException($"{at}: {method} in '{Name}' ran past its time budget of {budget.TotalMilliseconds:0} ms. Make it faster or raise the budget.");
                }

                var inner = ex is System.Reflection.TargetInvocationException { InnerException: { } i } ? i : ex;
                throw new BatchHookException($"{at}: {method} in '{Name}' threw {inner.GetType().Name}: {inner.Message}");
            }
        }
        finally
        {
            Version?.Exit();
        }
    }
}
