#!/usr/bin/env bash
# The quickstart end to end: a PostgreSQL with the sample data, then `etlfunnel run` into NDJSON files under ./out
# (or into Elasticsearch when ETLFUNNEL_ELASTICSEARCH_URL is set).
#
#   samples/quickstart/run.sh                 # throwaway local cluster under .etlfunnel/pg (port 55439)
#   ETLFUNNEL_PG="Host=db;Port=5432;Username=me;Password=...;Database=quickstart" samples/quickstart/run.sh
#   ETLFUNNEL_ELASTICSEARCH_URL=http://127.0.0.1:9200 samples/quickstart/run.sh
#   samples/quickstart/run.sh stop            # stop the throwaway cluster
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
port="${ETLFUNNEL_PG_PORT:-55439}"
pg_root="$repo/.etlfunnel/pg"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

find_pg_bin() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [[ -x "$dir/initdb" && -x "$dir/pg_ctl" && -x "$dir/psql" ]] && { echo "$dir"; return; }
    done
    if command -v pg_ctl >/dev/null && command -v initdb >/dev/null; then dirname "$(command -v pg_ctl)"; fi
}

# Run as the postgres user when we are root (initdb and the server refuse to run as root).
as_pg() {
    if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Npgsql "Host=..;Port=..;Username=..;Password=..;Database=.." -> libpq "host=.. port=.. user=.. password=.. dbname=.." for psql.
libpq_of() {
    local out="" pair key value
    IFS=';' read -ra pairs <<< "$1"
    for pair in "${pairs[@]}"; do
        [[ "$pair" == *=* ]] || continue
        key="$(echo "${pair%%=*}" | tr -d ' ' | tr '[:upper:]' '[:lower:]')"
        value="${pair#*=}"
        case "$key" in
            host|server) out+=" host='$value'" ;;
            port) out+=" port='$value'" ;;
            username|user|userid|uid) out+=" user='$value'" ;;
            password|pwd) out+=" password='$value'" ;;
            database|db) out+=" dbname='$value'" ;;
            sslmode) out+=" sslmode='$value'" ;;
        esac
    done
    echo "${out# }"
}

command -v dotnet >/dev/null || die "the .NET SDK is not on PATH; install .NET 10 (https://dot.net) and run again"
bin="$(find_pg_bin || true)"

if [[ "${1:-}" == "stop" ]]; then
    [[ -n "$bin" && -d "$pg_root/data" ]] && as_pg "$bin/pg_ctl" -D "$pg_root/data" -m fast -w stop
    exit 0
fi

if [[ -n "${ETLFUNNEL_PG:-}" ]]; then
    say "Using the PostgreSQL from ETLFUNNEL_PG"
    export QUICKSTART_PG="$ETLFUNNEL_PG"
    psql_bin="$(command -v psql || { [[ -n "$bin" ]] && echo "$bin/psql"; } || true)"
    [[ -n "$psql_bin" ]] || die "psql is needed to load the sample data; install it: apt-get install -y postgresql-client"
    psql_target="$(libpq_of "$ETLFUNNEL_PG")"
    psql_cmd=("$psql_bin" "$psql_target")
else
    [[ -n "$bin" ]] || die "no PostgreSQL server binaries (initdb, pg_ctl, psql) in /usr/lib/postgresql/*/bin or on PATH.
Install them:   sudo apt-get update && sudo apt-get install -y postgresql
or point ETLFUNNEL_PG at an existing server:   ETLFUNNEL_PG=\"Host=...;Port=5432;Username=...;Password=...;Database=quickstart\" $0"
    mkdir -p "$pg_root"
    if [[ $(id -u) -eq 0 ]]; then
        id postgres >/dev/null 2>&1 || die "running as root needs the 'postgres' user (it comes with: apt-get install -y postgresql)"
        chown postgres:postgres "$pg_root"
        as_pg test -w "$pg_root" || die "the postgres user cannot write $pg_root (a parent folder is not traversable); run as a normal user or set ETLFUNNEL_PG"
    fi
    if [[ ! -f "$pg_root/data/PG_VERSION" ]]; then
        say "Creating a throwaway PostgreSQL cluster in $pg_root/data ($("$bin/postgres" --version))"
        as_pg "$bin/initdb" -D "$pg_root/data" -U postgres --auth=trust -E UTF8 --locale=C --no-sync >/dev/null
    fi
    if as_pg "$bin/pg_ctl" -D "$pg_root/data" status >/dev/null 2>&1; then
        say "Reusing the running cluster on 127.0.0.1:$port"
    else
        say "Starting PostgreSQL on 127.0.0.1:$port"
        as_pg "$bin/pg_ctl" -D "$pg_root/data" -l "$pg_root/server.log" -w -t 60 \
            -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$pg_root -c fsync=off -c synchronous_commit=off -c full_page_writes=off" start >/dev/null \
            || die "PostgreSQL did not start (is port $port taken? set ETLFUNNEL_PG_PORT); see $pg_root/server.log"
    fi
    if ! "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'quickstart'" | grep -q 1; then
        "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qc "CREATE DATABASE quickstart"
    fi
    export QUICKSTART_PG="Host=127.0.0.1;Port=$port;Username=postgres;Database=quickstart"
    psql_cmd=("$bin/psql" "host=127.0.0.1 port=$port user=postgres dbname=quickstart")
fi

if [[ "$("${psql_cmd[@]}" -tAc "SELECT to_regclass('crm.audit_log') IS NOT NULL")" != "t" ]]; then
    say "Loading samples/quickstart/schema.sql (about 1.6M rows)"
    "${psql_cmd[@]}" -q -v ON_ERROR_STOP=1 -f samples/quickstart/schema.sql
else
    say "Sample data already loaded"
fi

es_url="${ETLFUNNEL_ELASTICSEARCH_URL:-${ELASTICSEARCH_URL:-}}"   # the old name still works (deprecated)
if [[ -n "$es_url" ]]; then
    say "Syncing into Elasticsearch at $es_url"
else
    say "Syncing into NDJSON files under $repo/out"
fi
set +e
dotnet run --project src/EtlFunnel.Cli -c Release -- run --config samples/quickstart/flows.yaml --hooks hooks --report out/report.json "$@"
code=$?
set -e
if [[ $code -eq 0 && -z "$es_url" ]]; then
    say "Done: $(find out -name '*.ndjson' | wc -l) NDJSON files, report in out/report.json. Load one into Elasticsearch with:"
    echo "  curl -H 'Content-Type: application/x-ndjson' --data-binary @\$(ls out/sales_orders/*.ndjson | head -1) http://127.0.0.1:9200/_bulk" >&2
fi
exit $code
