-- Quickstart data: three schemas with tables of very different sizes, so the seed hooks have something to decide.
-- sales.orders (~1.2M rows) is big enough for the row-split hook to cut it in two; the rest stays whole.
-- Loads in a few seconds: psql "$QUICKSTART_PG" -f samples/quickstart/schema.sql
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS catalog, sales, crm CASCADE;
CREATE SCHEMA catalog;
CREATE SCHEMA sales;
CREATE SCHEMA crm;

CREATE TABLE catalog.categories (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO catalog.categories SELECT g, 'category ' || g FROM generate_series(1, 200) g;

CREATE TABLE catalog.products (
    id int PRIMARY KEY,
    category_id int NOT NULL REFERENCES catalog.categories (id),
    name text NOT NULL,
    price numeric(10, 2) NOT NULL);
INSERT INTO catalog.products SELECT g, 1 + g % 200, 'product ' || g, (g % 1000) / 10.0 FROM generate_series(1, 50000) g;

CREATE TABLE sales.orders (
    id bigint PRIMARY KEY,
    customer_id int NOT NULL,
    amount numeric(10, 2) NOT NULL,
    created_at timestamptz NOT NULL);
INSERT INTO sales.orders
SELECT g, 1 + g % 100000, (g % 50000) / 100.0, timestamptz '2025-01-01' + g * interval '20 seconds'
FROM generate_series(1, 1200000) g;

-- A partitioned table counts as one pipeline entity with PartitionCount = 4.
CREATE TABLE sales.events (
    id bigint NOT NULL,
    at date NOT NULL,
    kind text NOT NULL,
    PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE sales.events_q1 PARTITION OF sales.events FOR VALUES FROM ('2025-01-01') TO ('2025-04-01');
CREATE TABLE sales.events_q2 PARTITION OF sales.events FOR VALUES FROM ('2025-04-01') TO ('2025-07-01');
CREATE TABLE sales.events_q3 PARTITION OF sales.events FOR VALUES FROM ('2025-07-01') TO ('2025-10-01');
CREATE TABLE sales.events_q4 PARTITION OF sales.events FOR VALUES FROM ('2025-10-01') TO ('2026-01-01');
INSERT INTO sales.events SELECT g, date '2025-01-01' + (g % 365), 'kind' || (g % 7) FROM generate_series(1, 200000) g;

CREATE TABLE crm.customers (id int PRIMARY KEY, name text NOT NULL, region text NOT NULL);
INSERT INTO crm.customers SELECT g, 'customer ' || g, (ARRAY['US', 'EU', 'APAC'])[1 + g % 3] FROM generate_series(1, 100000) g;

-- No primary key: flows.yaml names its key explicitly (key: [customer_id, at]).
CREATE TABLE crm.audit_log (customer_id int NOT NULL, at timestamptz NOT NULL, note text, UNIQUE (customer_id, at));
INSERT INTO crm.audit_log SELECT 1 + g % 100000, timestamptz '2025-01-01' + g * interval '1 minute', 'note ' || g FROM generate_series(1, 30000) g;

-- The planner reads row estimates from the catalog; ANALYZE makes them real right away.
ANALYZE;
