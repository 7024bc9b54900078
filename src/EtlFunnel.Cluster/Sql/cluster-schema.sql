-- The cluster's tables in the state database, all in schema etlfunnel_cluster (created by ClusterSchema.EnsureAsync
-- under an advisory lock, once per database; every statement is idempotent).
--
-- 1. Orleans membership (Microsoft.Orleans.Clustering.AdoNet, invariant "Npgsql"). The provider reads the SQL it runs
--    from OrleansQuery by key, with @-named parameters and result columns of fixed names and types (the interface of
--    the provider's PostgreSQL scripts); the statements below are our own implementation of that interface, written as
--    single statements (data-modifying CTEs) instead of PL/pgSQL functions. Orleans 10.4 sends no @MetadataJson: the
--    column exists (newer providers write it) but these statements leave it alone. Each write that Orleans treats as a
--    conditional (insert/update of a member together with the table version) returns the affected-row count: 1 when
--    it applied, 0 when the version moved on (Orleans then re-reads and retries).
-- 2. Our own: members (what each worker announces) and leases (one row per pipeline replica of a cluster run, with
--    the fencing epoch that checkpoint writes are checked against).

CREATE SCHEMA IF NOT EXISTS etlfunnel_cluster;

CREATE TABLE IF NOT EXISTS etlfunnel_cluster.OrleansQuery
(
    QueryKey  varchar(64)   NOT NULL PRIMARY KEY,
    QueryText varchar(8000) NOT NULL
);

CREATE TABLE IF NOT EXISTS etlfunnel_cluster.OrleansMembershipVersionTable
(
    DeploymentId varchar(150)   NOT NULL PRIMARY KEY,
    Timestamp    timestamptz(3) NOT NULL DEFAULT now(),
    Version      integer        NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS etlfunnel_cluster.OrleansMembershipTable
(
    DeploymentId varchar(150)   NOT NULL REFERENCES etlfunnel_cluster.OrleansMembershipVersionTable (DeploymentId),
    Address      varchar(45)    NOT NULL,
    Port         integer        NOT NULL,
    Generation   integer        NOT NULL,
    SiloName     varchar(150)   NOT NULL,
    HostName     varchar(150)   NOT NULL,
    Status       integer        NOT NULL,
    ProxyPort    integer        NULL,
    SuspectTimes varchar(8000)  NULL,
    MetadataJson text           NULL,
    StartTime    timestamptz(3) NOT NULL,
    IAmAliveTime timestamptz(3) NOT NULL,
    PRIMARY KEY (DeploymentId, Address, Port, Generation)
);

INSERT INTO etlfunnel_cluster.OrleansQuery (QueryKey, QueryText) VALUES
('UpdateIAmAlivetimeKey', $q$
UPDATE etlfunnel_cluster.OrleansMembershipTable SET IAmAliveTime = @IAmAliveTime
WHERE DeploymentId = @DeploymentId AND Address = @Address AND Port = @Port AND Generation = @Generation;
$q$),
('InsertMembershipVersionKey', $q$
WITH inserted AS (
    INSERT INTO etlfunnel_cluster.OrleansMembershipVersionTable (DeploymentId) VALUES (@DeploymentId)
    ON CONFLICT (DeploymentId) DO NOTHING RETURNING 1)
SELECT count(*)::integer FROM inserted;
$q$),
('InsertMembershipKey', $q$
WITH version AS (
    UPDATE etlfunnel_cluster.OrleansMembershipVersionTable SET Timestamp = now(), Version = Version + 1
    WHERE DeploymentId = @DeploymentId AND Version = @Version
      AND NOT EXISTS (SELECT 1 FROM etlfunnel_cluster.OrleansMembershipTable m
                      WHERE m.DeploymentId = @DeploymentId AND m.Address = @Address AND m.Port = @Port AND m.Generation = @Generation)
    RETURNING DeploymentId),
inserted AS (
    INSERT INTO etlfunnel_cluster.OrleansMembershipTable
        (DeploymentId, Address, Port, Generation, SiloName, HostName, Status, ProxyPort, StartTime, IAmAliveTime)
    SELECT version.DeploymentId, @Address, @Port, @Generation, @SiloName, @HostName, @Status, @ProxyPort, @StartTime, @IAmAliveTime
    FROM version
    RETURNING 1)
SELECT count(*)::integer FROM inserted;
$q$),
('UpdateMembershipKey', $q$
WITH version AS (
    UPDATE etlfunnel_cluster.OrleansMembershipVersionTable SET Timestamp = now(), Version = Version + 1
    WHERE DeploymentId = @DeploymentId AND Version = @Version
      AND EXISTS (SELECT 1 FROM etlfunnel_cluster.OrleansMembershipTable m
                  WHERE m.DeploymentId = @DeploymentId AND m.Address = @Address AND m.Port = @Port AND m.Generation = @Generation)
    RETURNING DeploymentId),
updated AS (
    UPDATE etlfunnel_cluster.OrleansMembershipTable m
    SET Status = @Status, SuspectTimes = @SuspectTimes, IAmAliveTime = @IAmAliveTime
    FROM version
    WHERE m.DeploymentId = version.DeploymentId AND m.Address = @Address AND m.Port = @Port AND m.Generation = @Generation
    RETURNING 1)
SELECT count(*)::integer FROM updated;
$q$),
('MembershipReadRowKey', $q$
SELECT v.DeploymentId, m.Address, m.Port, m.Generation, m.SiloName, m.HostName, m.Status, m.ProxyPort, m.SuspectTimes,
       m.MetadataJson, m.StartTime, m.IAmAliveTime, v.Version
FROM etlfunnel_cluster.OrleansMembershipVersionTable v
LEFT JOIN etlfunnel_cluster.OrleansMembershipTable m
       ON m.DeploymentId = v.DeploymentId AND m.Address = @Address AND m.Port = @Port AND m.Generation = @Generation
WHERE v.DeploymentId = @DeploymentId;
$q$),
('MembershipReadAllKey', $q$
SELECT v.DeploymentId, m.Address, m.Port, m.Generation, m.SiloName, m.HostName, m.Status, m.ProxyPort, m.SuspectTimes,
       m.MetadataJson, m.StartTime, m.IAmAliveTime, v.Version
FROM etlfunnel_cluster.OrleansMembershipVersionTable v
LEFT JOIN etlfunnel_cluster.OrleansMembershipTable m ON m.DeploymentId = v.DeploymentId
WHERE v.DeploymentId = @DeploymentId;
$q$),
('DeleteMembershipTableEntriesKey', $q$
DELETE FROM etlfunnel_cluster.OrleansMembershipTable WHERE DeploymentId = @DeploymentId;
DELETE FROM etlfunnel_cluster.OrleansMembershipVersionTable WHERE DeploymentId = @DeploymentId;
$q$),
('GatewaysQueryKey', $q$
SELECT Address, ProxyPort, Generation FROM etlfunnel_cluster.OrleansMembershipTable
WHERE DeploymentId = @DeploymentId AND Status = @Status AND ProxyPort > 0;
$q$),
('CleanupDefunctSiloEntriesKey', $q$
DELETE FROM etlfunnel_cluster.OrleansMembershipTable
WHERE DeploymentId = @DeploymentId AND IAmAliveTime < @IAmAliveTime AND Status <> 3;
$q$)
ON CONFLICT (QueryKey) DO UPDATE SET QueryText = EXCLUDED.QueryText;

-- What each worker announces when its silo starts, refreshed every few seconds (seen_at): the caller places replicas
-- on members seen recently, by free cores and labels.
CREATE TABLE IF NOT EXISTS etlfunnel_cluster.members
(
    cluster_id  text        NOT NULL,
    silo        text        NOT NULL, -- Orleans SiloAddress.ToParsableString(), e.g. 127.0.0.1:11111@123456
    host_name   text        NOT NULL,
    cores       integer     NOT NULL,
    memory      bigint      NOT NULL,
    region      text        NULL,
    labels      jsonb       NOT NULL DEFAULT '{}',
    hooks_hash  text        NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    seen_at     timestamptz NOT NULL DEFAULT now(),
    left_at     timestamptz NULL,
    PRIMARY KEY (cluster_id, silo)
);

-- One row per pipeline replica of a cluster run. epoch goes up by one each time an owner takes the lease; a checkpoint
-- write carries the epoch its owner took and is refused when the row has moved on (EtlFunnel.Sync StateFence).
CREATE TABLE IF NOT EXISTS etlfunnel_cluster.leases
(
    lease_key   text        NOT NULL PRIMARY KEY, -- <run id>/<flow replica>/<pipeline replica>
    run_id      text        NOT NULL,
    flow        text        NOT NULL,
    replica     text        NOT NULL,
    epoch       bigint      NOT NULL DEFAULT 0,
    owner       text        NULL,
    expires_at  timestamptz NULL,
    status      text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
    takeovers   integer     NOT NULL DEFAULT 0,
    report      jsonb       NULL,
    error       text        NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS leases_run ON etlfunnel_cluster.leases (run_id);
-- When the current owner took the lease (cluster status shows it as "since"); added after the table shipped.
ALTER TABLE etlfunnel_cluster.leases ADD COLUMN IF NOT EXISTS taken_at timestamptz NULL;
-- Documents the replica's transformers wrote, per version ("items.csx@<version>": count); added after the table shipped.
ALTER TABLE etlfunnel_cluster.leases ADD COLUMN IF NOT EXISTS transformed jsonb NULL;
