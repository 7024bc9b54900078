using System.Buffers;

namespace EtlFunnel.Sync.Documents;

/// <summary>One document of a batch: its id and where its JSON source sits in the batch buffer.</summary>
internal readonly record struct BatchItem(string Id, int Offset, int Length);

/// <summary>Documents (JSON sources, one after the other in one buffer) bound for one index.</summary>
internal sealed class DocumentBatch
{
    private readonly ArrayBufferWriter<byte> _buffer;

    public DocumentBatch(string index, int capacityBytes)
    {
        Index = index;
        _buffer = new ArrayBufferWriter<byte>(Math.Max(capacityBytes, 256));
    }

    public string Index { get; }

    public List<BatchItem> Items { get; } = [];

    public IBufferWriter<byte> Writer => _buffer;

    public int Bytes => _buffer.WrittenCount;

    public int Count => Items.Count;

    public ReadOnlyMemory<byte> Source(BatchItem item) => _buffer.WrittenMemory.Slice(item.Offset, item.Length);

    public void Add(string id, int start) => Items.Add(new BatchItem(id, start, _buffer.WrittenCount - start));

    public void Clear()
    {
        Items.Clear();
        _buffer.ResetWrittenCount();
    }
}
