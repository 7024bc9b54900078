using System.Buffers.Binary;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace EtlFunnel.Scripting.Isolation;

/// <summary>
/// The host ↔ worker protocol: frames of a 4-byte little-endian length and a UTF-8 JSON <see cref="WorkerMessage"/>,
/// over the worker's stdin (host → worker) and a private copy of its stdout (worker → host). A message with a binary
/// <see cref="WorkerMessage.Body"/> (the rows of a transform and its answer, see <c>Transforming/TransformFrames.cs</c>) is
/// the frame <c>length, 0x01, JSON length, JSON, body</c>: a JSON frame starts with <c>{</c>, so the two cannot be confused.
/// Version 2 (1 sent the rows as JSON strings inside the JSON).
/// </summary>
internal static class WorkerProtocol
{
    public const int Version = 2;

    // First byte of a frame with a binary body after its JSON.
    private const byte BodyMarker = 1;

    /// <summary>Largest frame either side accepts; a worker sending more is killed as broken.</summary>
    public const int MaxFrameBytes = 64 << 20;

    public static async Task WriteAsync(Stream stream, WorkerMessage message, SemaphoreSlim gate, CancellationToken cancellationToken)
    {
        var payload = JsonSerializer.SerializeToUtf8Bytes(message, WorkerJson.Default.WorkerMessage);
        var body = message.Body;
        byte[] frame;
        if (body.IsEmpty)
        {
            frame = new byte[4 + payload.Length];
            BinaryPrimitives.WriteInt32LittleEndian(frame, payload.Length);
            payload.CopyTo(frame, 4);
        }
        else
        {
            var length = 1 + 4 + payload.Length + body.Length;
            if (length > MaxFrameBytes)
            {
                throw new InvalidDataException($"a {message.Type} message of {length} bytes is larger than the protocol's {MaxFrameBytes} bytes; use smaller batches");
            }

            frame = new byte[4 + 1 + 4 + payload.Length];
            BinaryPrimitives.WriteInt32LittleEndian(frame, length);
            frame[4] = BodyMarker;
            BinaryPrimitives.WriteInt32LittleEndian(frame.AsSpan(5), payload.Length);
            payload.CopyTo(frame, 9);
        }

        await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await stream.WriteAsync(frame, cancellationToken).ConfigureAwait(false);
            if (!body.IsEmpty)
            {
                await stream.WriteAsync(body, cancellationToken).ConfigureAwait(false);
            }

            await stream.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            gate.Release();
        }
    }

    /// <summary>Reads one frame; null at a clean end of stream.</summary>
    public static async Task<WorkerMessage?> ReadAsync(Stream stream, CancellationToken cancellationToken)
    {
        var header = new byte[4];
        var read = 0;
        while (read < 4)
        {
            var n = await stream.ReadAsync(header.AsMemory(read), cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                return read == 0 ? null : throw new EndOfStreamException("the stream ended inside a frame header");
            }

            read += n;
        }

        var length = BinaryPrimitives.ReadInt32LittleEndian(header);
        if (length is <= 0 or > MaxFrameBytes)
        {
            throw new InvalidDataException($"a frame of {length} bytes is not a protocol frame");
        }

        var payload = new byte[length];
        await stream.ReadExactlyAsync(payload, cancellationToken).ConfigureAwait(false);
        if (payload[0] != BodyMarker)
        {
            return JsonSerializer.Deserialize(payload, WorkerJson.Default.WorkerMessage)
                ?? throw new InvalidDataException("an empty protocol message");
        }

        var json = length >= 5 ? BinaryPrimitives.ReadInt32LittleEndian(payload.AsSpan(1)) : -1;
        if (json <= 0 || json > length - 5)
        {
            throw new InvalidDataException($"a frame of {length} bytes has a bad JSON length {json}");
        }

        var message = JsonSerializer.Deserialize(payload.AsSpan(5, json), WorkerJson.Default.WorkerMessage)
            ?? throw new InvalidDataException("an empty protocol message");
        message.Body = payload.AsMemory(5 + json);
        return message;
    }
}

/// <summary>One protocol message; <see cref="Type"/> says which fields are set.</summary>
internal sealed class WorkerMessage
{
    // hello (host → worker, first message), snapshot (answer to hello/reload, and unsolicited "reloaded" in watch mode),
    // reload, invoke, result, failure, cancel, engine (worker asks the host), engine-reply, fatal (worker gives up),
    // transform/transformed, test/tested (run the folder's *.test.csx cases), and the batch-level hooks:
    // write-rule/write-rule-result, termination/termination-result, checkpoint/checkpoint-result, backlog/backlog-result.
    [JsonPropertyName("t")]
    public string Type { get; set; } = "";

    [JsonPropertyName("id")]
    public long Id { get; set; }

    public int? Version { get; set; }

    public WorkerSettings? Settings { get; set; }

    public SnapshotDto? Snapshot { get; set; }

    public List<LayerDto>? Layers { get; set; }

    public string? Hook { get; set; }

    public PropsDto? Props { get; set; }

    public List<TuneDto>? Tunes { get; set; }

    public FailureDto? Failure { get; set; }

    public int? Engine { get; set; }

    /// <summary>On an engine request: the invoke it belongs to (engine numbers are per invoke).</summary>
    public long? Invoke { get; set; }

    public string? Call { get; set; }

    public StatsDto? Stats { get; set; }

    public ConnectionDto? Connection { get; set; }

    public string? Error { get; set; }

    /// <summary>On a transform request: the batch's flow, schema and table.</summary>
    public TargetDto? Target { get; set; }

    /// <summary>On a transform request: the batch's time budget.</summary>
    public double? BudgetMs { get; set; }

    /// <summary>
    /// On a transform request: the batch's rows; on a transformed answer: one result per row, in order. Binary
    /// (<c>Transforming.TransformRequest</c> / <c>TransformReplyWriter</c>), after the JSON of the frame.
    /// </summary>
    [JsonIgnore]
    public ReadOnlyMemory<byte> Body { get; set; }

    /// <summary>On a tested answer: one result per test case of the folder's <c>*.test.csx</c> files.</summary>
    public List<TestResultDto>? Tests { get; set; }

    /// <summary>On a tested answer: a case could not be stopped, so the worker exits after answering.</summary>
    public bool? Abandoned { get; set; }

    /// <summary>On a log message (worker → host, unsolicited): a line a hook wrote with <c>param.Log</c>.</summary>
    public LogDto? Log { get; set; }

    /// <summary>On a write-rule or termination request: the pipeline replica.</summary>
    public Execution.Models.PipelineInfo? Pipeline { get; set; }

    /// <summary>On a checkpoint request: the replica's progress.</summary>
    public Execution.Models.CheckpointInfo? Checkpoint { get; set; }

    /// <summary>On a backlog request: the batch's failed records (one round trip per batch).</summary>
    public List<Execution.Models.BacklogRecord>? Records { get; set; }

    /// <summary>On a write-rule-result answer.</summary>
    public Execution.Models.WriteRule? WriteRule { get; set; }

    /// <summary>On a termination-result answer.</summary>
    public Execution.Models.TerminationRule? Termination { get; set; }

    /// <summary>On a checkpoint-result (one) or backlog-result (one per record) answer.</summary>
    public List<DecisionDto>? Decisions { get; set; }
}

/// <summary>A checkpoint decision (0 continue, 1 stop) or a backlog decision (<see cref="Execution.Models.BacklogAction"/>), with its reason.</summary>
internal sealed record DecisionDto(int Action, string? Reason);

internal sealed record BatchHookDto(string Key, string Name, string Path, string AppliesTo, string Version, int Kinds);

internal sealed record LogDto(string Level, string File, int Line, string Message);

internal sealed record TestResultDto(string TestFile, string Case, bool Passed, string File, int Line, int Column, string Message, double DurationMs);

internal sealed record TargetDto(string Flow, string Schema, string Table);

internal sealed record TransformerDto(string Key, string Name, string Path, string AppliesTo, string Version);

internal sealed class WorkerSettings
{
    public string Root { get; set; } = "";

    public string Cache { get; set; } = "";

    public double BudgetMs { get; set; }

    public double DebounceMs { get; set; }

    public bool Watch { get; set; }

    public bool CompileOnly { get; set; }

    public bool Trim { get; set; }

    public bool SkipPolicy { get; set; }

    public List<string> TrustedPlugins { get; set; } = [];

    public long CpuSeconds { get; set; }

    public long MemoryBytes { get; set; }

    /// <summary>The host's network namespace (readlink of /proc/self/ns/net), so the worker can tell whether it has its own.</summary>
    public string? HostNetNamespace { get; set; }

    public string? HostMountNamespace { get; set; }

    public string Sandbox { get; set; } = "";

    /// <summary>When set, the worker logs its pid and waits up to this long for a debugger before loading the hooks.</summary>
    public double? WaitForDebuggerMs { get; set; }
}

internal sealed class SnapshotDto
{
    public List<HookDto> Hooks { get; set; } = [];

    public List<DiagnosticDto> Diagnostics { get; set; } = [];

    public List<TransformerDto> Transformers { get; set; } = [];

    public List<BatchHookDto> BatchHooks { get; set; } = [];

    public List<string> Changed { get; set; } = [];

    public bool Succeeded { get; set; }

    /// <summary>True for a watch-mode reload the worker started itself (raise Reloaded), false for an answer.</summary>
    public bool Event { get; set; }
}

internal sealed record HookDto(string Key, string Name, string Path, string Level);

internal sealed record DiagnosticDto(string File, int Line, int Column, string Severity, string Id, string Message);

internal sealed record LayerDto(string Name, bool Active, string Detail);

internal sealed class FailureDto
{
    public string HookName { get; set; } = "";

    public string? File { get; set; }

    public int? Line { get; set; }

    public string Message { get; set; } = "";

    /// <summary>The type of the hook's own exception (the inner exception in-process), when it threw.</summary>
    public string? ExceptionType { get; set; }

    public string? ExceptionMessage { get; set; }

    public bool Cancelled { get; set; }

    /// <summary>The worker is no longer usable (e.g. a finalizer never returned) and exits after this answer.</summary>
    public bool Fatal { get; set; }
}

internal sealed class PropsDto
{
    public List<EntityDto> Entity { get; set; } = [];

    public MachineDto Machine { get; set; } = new();

    /// <summary>The cluster's members under <c>run --cluster</c> (null on one machine).</summary>
    public List<MachineDto>? Cluster { get; set; }

    public TuneDto? Parent { get; set; }
}

internal sealed class EntityDto
{
    public string Name { get; set; } = "";

    public EngineDto Source { get; set; } = new();

    public EngineDto Dest { get; set; } = new();

    public Dictionary<string, EngineDto>? Auxiliary { get; set; }
}

/// <summary>An engine as the worker sees it: a number to ask the host about, a kind and a display name. No connection string.</summary>
internal sealed class EngineDto
{
    public int Id { get; set; }

    public string Kind { get; set; } = "";

    public string Name { get; set; } = "";
}

internal sealed class MachineDto
{
    public int LogicalCores { get; set; }

    public long TotalMemoryBytes { get; set; }

    public string? Region { get; set; }

    public string HostName { get; set; } = "";

    public Dictionary<string, string> Labels { get; set; } = [];
}

internal sealed class TuneDto
{
    public string ParentEntityName { get; set; } = "";

    public string NewEntityName { get; set; } = "";

    public Dictionary<string, JsonElement> ReplicaProps { get; set; } = [];
}

internal sealed class StatsDto
{
    public long TotalRows { get; set; }

    public long TotalBytes { get; set; }

    public int TableCount { get; set; }

    public int PartitionCount { get; set; }

    public bool RowsAreExact { get; set; }
}

internal sealed class ConnectionDto
{
    public double RoundTripMs { get; set; }

    public double? ThroughputBytesPerSecond { get; set; }
}

[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(WorkerMessage))]
internal sealed partial class WorkerJson : JsonSerializerContext;
