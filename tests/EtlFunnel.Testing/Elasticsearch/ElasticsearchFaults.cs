using System.Text.Json;

namespace EtlFunnel.Testing.Elasticsearch;

/// <summary>What a dropped bulk connection has done before the connection goes away.</summary>
public enum DroppedConnectionMode
{
    /// <summary>The bulk body is read, nothing is applied, then the connection is aborted.</summary>
    BeforeApplying,

    /// <summary>Every item is applied, then the connection is aborted before the response: the client cannot know it worked.</summary>
    AfterApplying,
}

/// <summary>
/// Faults the test server injects into <c>_bulk</c> calls, configurable at any time from any thread.
/// Decisions are taken per bulk call in arrival order and are deterministic for a given seed.
/// </summary>
public sealed class ElasticsearchFaults
{
    private readonly Lock _gate = new();
    private readonly int _seed;
    private Random _random;
    private int _failNextCount;
    private int _failNextStatus;
    private double _failShare;
    private int _failShareStatus;
    private int _failNextItemsCount;
    private int _failNextItemsStatus;
    private int _dropNextCount;
    private DroppedConnectionMode _dropMode;
    private HashSet<string> _rejectedIds = new(StringComparer.Ordinal);
    private Func<string, JsonElement, bool>? _rejectWhere;
    private string _rejectionType = "document_parsing_exception";
    private int _injected429;
    private int _injected503;
    private int _rejectedItems;
    private int _transientItemFailures;
    private int _droppedConnections;

    internal ElasticsearchFaults(int seed)
    {
        _seed = seed;
        _random = new Random(seed);
    }

    /// <summary>Bulk calls answered 429 <c>es_rejected_execution_exception</c> so far.</summary>
    public int Injected429 => Volatile.Read(ref _injected429);

    /// <summary>Bulk calls answered 503 so far.</summary>
    public int Injected503 => Volatile.Read(ref _injected503);

    /// <summary>Bulk items rejected with a mapping error (status 400) so far.</summary>
    public int RejectedItems => Volatile.Read(ref _rejectedItems);

    /// <summary>Bulk items failed with a transient item status (see <see cref="FailNextItems"/>) so far.</summary>
    public int TransientItemFailures => Volatile.Read(ref _transientItemFailures);

    /// <summary>Bulk connections aborted so far.</summary>
    public int DroppedConnections => Volatile.Read(ref _droppedConnections);

    /// <summary>Answers the next <paramref name="count"/> bulk calls with <paramref name="statusCode"/> (429 or 503), applying nothing.</summary>
    public ElasticsearchFaults FailNextBulkCalls(int count, int statusCode = 429)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ValidateStatus(statusCode);
        lock (_gate)
        {
            _failNextCount = count;
            _failNextStatus = statusCode;
        }

        return this;
    }

    /// <summary>
    /// Answers a share (0..1) of the following bulk calls with <paramref name="statusCode"/>; which calls fail is drawn from a
    /// random source reseeded with <paramref name="seed"/> (the server's seed when null), so a run repeats exactly.
    /// </summary>
    public ElasticsearchFaults FailShareOfBulkCalls(double share, int statusCode = 429, int? seed = null)
    {
        if (share is < 0 or > 1 || double.IsNaN(share))
        {
            throw new ArgumentOutOfRangeException(nameof(share), share, "A share of bulk calls is between 0 and 1.");
        }

        ValidateStatus(statusCode);
        lock (_gate)
        {
            _failShare = share;
            _failShareStatus = statusCode;
            _random = new Random(seed ?? _seed);
        }

        return this;
    }

    /// <summary>
    /// Fails the next <paramref name="count"/> bulk items (across calls) with an item-level <paramref name="statusCode"/>
    /// (429 <c>es_rejected_execution_exception</c> by default, as a full write queue does); other items succeed.
    /// </summary>
    public ElasticsearchFaults FailNextItems(int count, int statusCode = 429)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ValidateStatus(statusCode);
        lock (_gate)
        {
            _failNextItemsCount = count;
            _failNextItemsStatus = statusCode;
        }

        return this;
    }

    /// <summary>Rejects every index/create/update item whose id is listed, each time it is sent, with status 400 (a mapping error).</summary>
    public ElasticsearchFaults RejectDocuments(params IEnumerable<string> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        lock (_gate)
        {
            _rejectedIds = new HashSet<string>(_rejectedIds.Concat(ids), StringComparer.Ordinal);
        }

        return this;
    }

    /// <summary>Rejects every index/create/update item for which <paramref name="predicate"/>(id, source) is true, with status 400.</summary>
    public ElasticsearchFaults RejectDocumentsWhere(Func<string, JsonElement, bool> predicate)
    {
        ArgumentNullException.ThrowIfNull(predicate);
        lock (_gate)
        {
            _rejectWhere = predicate;
        }

        return this;
    }

    /// <summary>The error type of per-item rejections: <c>document_parsing_exception</c> (Elasticsearch 8.8+, default) or <c>mapper_parsing_exception</c>.</summary>
    public ElasticsearchFaults UseRejectionType(string errorType)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(errorType);
        lock (_gate)
        {
            _rejectionType = errorType;
        }

        return this;
    }

    /// <summary>Aborts the connection of the next <paramref name="count"/> bulk calls; see <see cref="DroppedConnectionMode"/>.</summary>
    public ElasticsearchFaults DropNextBulkConnections(int count, DroppedConnectionMode mode = DroppedConnectionMode.BeforeApplying)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        lock (_gate)
        {
            _dropNextCount = count;
            _dropMode = mode;
        }

        return this;
    }

    /// <summary>Answers every bulk call only after <paramref name="delay"/> (a slow cluster; a real one under load is slow too). Zero turns it off.</summary>
    public ElasticsearchFaults DelayBulkCalls(TimeSpan delay)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(delay, TimeSpan.Zero);
        lock (_gate)
        {
            BulkDelay = delay;
        }

        return this;
    }

    internal TimeSpan BulkDelay { get; private set; }

    /// <summary>Answers every <c>_search</c> call only after <paramref name="delay"/> (e.g. to stop a client while it lists an index). Zero turns it off.</summary>
    public ElasticsearchFaults DelaySearchCalls(TimeSpan delay)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(delay, TimeSpan.Zero);
        lock (_gate)
        {
            SearchDelay = delay;
        }

        return this;
    }

    internal TimeSpan SearchDelay { get; private set; }

    /// <summary>How many <c>_search</c> calls were held by <see cref="DelaySearchCalls"/> so far (counted when the hold starts).</summary>
    public int DelayedSearches => Volatile.Read(ref _delayedSearches);

    private int _delayedSearches;

    internal void CountDelayedSearch() => Interlocked.Increment(ref _delayedSearches);

    /// <summary>Stops injecting every fault (the counters keep their values).</summary>
    public void Clear()
    {
        lock (_gate)
        {
            _failNextCount = 0;
            _failShare = 0;
            _failNextItemsCount = 0;
            _dropNextCount = 0;
            BulkDelay = TimeSpan.Zero;
            SearchDelay = TimeSpan.Zero;
            _rejectedIds = new HashSet<string>(StringComparer.Ordinal);
            _rejectWhere = null;
            _random = new Random(_seed);
        }
    }

    /// <summary>Decides, once per bulk call, whether the whole call fails or its connection drops.</summary>
    internal BulkCallFault NextBulkCall()
    {
        lock (_gate)
        {
            if (_dropNextCount > 0)
            {
                _dropNextCount--;
                _droppedConnections++;
                return new BulkCallFault(0, _dropMode);
            }

            var status = 0;
            if (_failNextCount > 0)
            {
                _failNextCount--;
                status = _failNextStatus;
            }
            else if (_failShare > 0 && _random.NextDouble() < _failShare)
            {
                status = _failShareStatus;
            }

            if (status == 429)
            {
                _injected429++;
            }
            else if (status == 503)
            {
                _injected503++;
            }

            return new BulkCallFault(status, null);
        }
    }

    /// <summary>The item-level failure to inject for one item, if any: (status, error type). Deletes carry no source and are never rejected.</summary>
    /// <summary>True when a rejection predicate needs each item's parsed source.</summary>
    internal bool InspectsSources
    {
        get
        {
            lock (_gate)
            {
                return _rejectWhere is not null;
            }
        }
    }

    internal (int Status, string Type)? ItemFault(string id, JsonElement? source, bool isDelete)
    {
        lock (_gate)
        {
            if (_failNextItemsCount > 0)
            {
                _failNextItemsCount--;
                _transientItemFailures++;
                return (_failNextItemsStatus, _failNextItemsStatus == 429 ? "es_rejected_execution_exception" : "unavailable_shards_exception");
            }

            var rejected = !isDelete && _rejectedIds.Contains(id) || (source is { } s && _rejectWhere is { } where && where(id, s));
            if (rejected)
            {
                _rejectedItems++;
                return (400, _rejectionType);
            }

            return null;
        }
    }

    private static void ValidateStatus(int statusCode)
    {
        if (statusCode is not (429 or 503))
        {
            throw new ArgumentOutOfRangeException(nameof(statusCode), statusCode, "The test server injects 429 or 503.");
        }
    }
}

/// <summary>The fault decided for one bulk call: an HTTP status to answer with (0 = none), or a connection drop.</summary>
internal readonly record struct BulkCallFault(int Status, DroppedConnectionMode? Drop);
