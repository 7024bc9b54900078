#!/usr/bin/env bash
# Cost of data-plane transformers (docs/data-hooks.md), whole `etlfunnel run` processes on one table into NDJSON files:
# no transformer (baseline) vs an identity transformer vs a realistic one (rename 2, drop 1, compute 1), interleaved
# runs in this one invocation, CPU (user+sys of the CLI and the hook worker; the worker's is sampled from /proc, as
# bubblewrap's processes are not always reaped into the CLI's rusage) per row and the ratios.
#
#   tests/EtlFunnel.Benchmarks/transformers.sh [runs]
#
# Source: ETLFUNNEL_PG (an Npgsql connection string) or the quickstart's local cluster (bash samples/quickstart/run.sh
# loads it); table sales.orders (1.2M rows: id, customer_id, amount, created_at). ETLFUNNEL_CLI: a built CLI (e.g.
# dotnet build src/EtlFunnel.Cli -c Release -o /tmp/relcli → /tmp/relcli/etlfunnel); default: build one in Release.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
runs="${1:-3}"
pg="${ETLFUNNEL_PG:-Host=127.0.0.1;Port=${ETLFUNNEL_PG_PORT:-55439};Username=postgres;Database=quickstart}"
work="$(mktemp -d /tmp/etlfunnel-transformers-XXXXXX)"
trap 'rm -rf "$work"' EXIT
cli="${ETLFUNNEL_CLI:-}"
if [[ -z "$cli" ]]; then
    dotnet build "$repo/src/EtlFunnel.Cli/EtlFunnel.Cli.csproj" -c Release -o "$work/cli" >&2
    cli="$work/cli/etlfunnel"
fi

mkdir -p "$work/none" "$work/identity" "$work/realistic"
cat > "$work/identity/t.csx" <<'CSX'
string AppliesTo => "bench/sales.orders";
void Transform(RowView row, DocumentWriter doc) { }
CSX
cat > "$work/realistic/t.csx" <<'CSX'
string AppliesTo => "bench/sales.orders";
void Transform(RowView row, DocumentWriter doc)
{
    doc.Rename("customer_id", "customer");
    doc.Rename("amount", "total");
    doc.Drop("created_at");
    doc.Set("id_even", row.GetInt64("id") % 2 == 0);
}
CSX

rows=""
measure() { # variant → "seconds cpu_seconds"
    local variant="$1" out="$work/out-$1"
    rm -rf "$out" "$work/state"
    cat > "$work/flows.yaml" <<YAML
state: $work/state
flows:
  - name: bench
    source: {postgres: "$pg"}
    destination: {files: $out}
    pipelines:
      - schema: sales
        table: orders
YAML
    /usr/bin/time -f "%e %U %S" -o "$work/time" "$cli" run --config "$work/flows.yaml" --hooks "$work/$variant" > "$work/log" 2>&1 &
    local timer=$!
    # The hook worker runs under bubblewrap and is not always reaped into the CLI's rusage (so /usr/bin/time can miss it):
    # sample the CPU (utime + stime) of every process under the CLI every 0.1 s and keep each one's last reading.
    local -A ticks=()
    local pid t
    while kill -0 "$timer" 2>/dev/null; do
        while read -r pid t; do ticks[$pid]=$t; done < <(
            ps -e -o pid=,ppid= | awk -v root="$timer" '{ parent[$1] = $2 } END { for (p in parent) { q = p; while (q in parent && q != root && q > 1) q = parent[q]; if (q == root && p != root) print p } }' \
                | while read -r p; do awk '{ print $1, $14 + $15 }' "/proc/$p/stat" 2>/dev/null || true; done)
        sleep 0.1
    done
    wait "$timer" || { cat "$work/log" >&2; exit 1; }
    local sampled=0
    for t in "${ticks[@]}"; do sampled=$((sampled + t)); done
    rows="$(grep -o 'Synced [0-9]* documents' "$work/log" | grep -o '[0-9]*')"
    # Whichever is larger: the rusage of the CLI and what it reaped, or the CLI and its descendants as sampled.
    awk -v s="$sampled" -v hz="$(getconf CLK_TCK)" '{ r = $2 + $3; c = s / hz; printf "%s %.3f\n", $1, (c > r ? c : r) }' "$work/time"
}

declare -A wall cpu
for variant in none identity realistic; do wall[$variant]=""; cpu[$variant]=""; done
measure none > /dev/null # warm PostgreSQL's buffers and the hook compile cache; not counted
measure identity > /dev/null
measure realistic > /dev/null
for ((r = 0; r < runs; r++)); do
    for variant in none identity realistic; do
        read -r w c < <(measure "$variant")
        wall[$variant]+="$w "; cpu[$variant]+="$c "
        echo "run $r $variant: ${w} s wall, ${c} s CPU" >&2
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
base_cpu="$(echo "${cpu[none]}" | median)"
echo "| measure | value | baseline | ratio | goal | met |"
echo "|---|---|---|---|---|---|"
for variant in identity realistic; do
    c="$(echo "${cpu[$variant]}" | median)"; w="$(echo "${wall[$variant]}" | median)"; bw="$(echo "${wall[none]}" | median)"
    goal=$([[ $variant == identity ]] && echo 1.3 || echo 1.6)
    awk -v v="$variant" -v c="$c" -v b="$base_cpu" -v n="$rows" -v w="$w" -v bw="$bw" -v g="$goal" -v runs="$runs" 'BEGIN {
        ratio = c / b
        printf "| transformers: `etlfunnel run`, %s transformer vs none, %d rows of sales.orders → files, client CPU per row (CLI + hook worker; wall %.1f s vs %.1f s; median of %d) | %.0f ns | %.0f ns | %.2f× | ≤ %s× | %s |\n",
            v, n, w, bw, runs, c / n * 1e9, b / n * 1e9, ratio, g, (ratio <= g ? "yes" : "**no**") }'
done
