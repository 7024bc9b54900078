-- The seed's US region at scale: 200 tenant schemas × 10 tables (2000 tables, 100 rows each), for measuring
-- discovery + planning. Schemas are tenant_<flow>_<n> so us-scale.yaml can give each of its 10 flows 20 schemas.
-- psql "$QUICKSTART_PG" -f samples/quickstart/us-scale.sql
SET client_min_messages = warning;
DO $$
DECLARE
    f int;
    s int;
    t int;
    schema_name text;
BEGIN
    FOR f IN 0..9 LOOP
        FOR s IN 0..19 LOOP
            schema_name := format('tenant_%s_%s', f, lpad(s::text, 2, '0'));
            EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', schema_name);
            EXECUTE format('CREATE SCHEMA %I', schema_name);
            FOR t IN 0..9 LOOP
                EXECUTE format('CREATE TABLE %I.%I (id int PRIMARY KEY, payload text)', schema_name, 'table_' || t);
                EXECUTE format('INSERT INTO %I.%I SELECT g, md5(g::text) FROM generate_series(1, 100) g', schema_name, 'table_' || t);
            END LOOP;
        END LOOP;
    END LOOP;
END
$$;
ANALYZE;
