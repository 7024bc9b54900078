#!/usr/bin/env bash
# Measures EtlFunnel against its limits and prints one markdown table (also written to artifacts/benchmarks/results.md).
#   tests/EtlFunnel.Benchmarks/run.sh            full run (~5-10 min on 2 cores): 1M-row sync, 1000 reloads, 200 schemas
#   tests/EtlFunnel.Benchmarks/run.sh --smoke    tiny sizes (10k rows, 20 reloads, 5 schemas): checks the command still works
# Extra arguments go to the benchmark (e.g. --only hooks,reload,watch; groups: hooks reload watch hotpath planning sync cdc). Needs PostgreSQL server binaries (the test fixture
# starts a throwaway cluster) or ETLFUNNEL_TEST_PG. Progress goes to stderr, the table to stdout.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
echo "building Release (CLI and benchmarks)..." >&2
dotnet build -c Release src/EtlFunnel.Cli/EtlFunnel.Cli.csproj -nologo -v q >&2
dotnet build -c Release tests/EtlFunnel.Benchmarks/EtlFunnel.Benchmarks.csproj -nologo -v q >&2
exec tests/EtlFunnel.Benchmarks/bin/Release/net10.0/EtlFunnel.Benchmarks "$@"
