#!/usr/bin/env bash
# The engine against the raw-aiohttp ceiling, with the team's fan-out harness (../shared/bench).
#
#   bash scripts/bench.sh                 # full run: C=100,1000,5000 + many channels, 3 reps (~6 min)
#   bash scripts/bench.sh --clients 1000 --reps 1 --channels-clients 0    # quick look (~30 s)
#
# Any argument is passed on to run_bench.py (see `run_bench.py --help`), after the defaults below,
# so it wins over them. Results (JSON lines, summary tables, server logs) go to bench-results/.
#
# Environment:
#   BENCH_DIR          the harness (default: ../shared/bench next to the repository)
#   BENCH_VENV         venv with the reference servers' packages (default: ~/.cache/wsbench-venv)
#   BENCH_OUT          JSON-lines file, appended (default: bench-results/engine-vs-ceiling.jsonl)
#   BENCH_API_KEY      the API key the engine is started with and the generator publishes with
#   BENCH_DATABASE_URL the engine's database (default: SQLite in bench-results/var)
#
# The engine runs with its own var folder (bench-results/var: database, secret, realtime.toml),
# so the benchmark never touches the var/ of `make run`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
bench_dir="${BENCH_DIR:-$(cd "$root/../shared/bench" 2>/dev/null && pwd || true)}"
venv="${BENCH_VENV:-$HOME/.cache/wsbench-venv}"
results="$root/bench-results"
out="${BENCH_OUT:-$results/engine-vs-ceiling.jsonl}"
var_dir="$results/var"
api_key="${BENCH_API_KEY:-bench-api-key-not-a-secret-0123456789}"  # 32+ characters: shorter keys are refused
database_url="${BENCH_DATABASE_URL:-sqlite:///$var_dir/shopologic.db}"

if [[ -z "$bench_dir" || ! -f "$bench_dir/run_bench.py" ]]; then
    echo "bench.sh: the harness is not at ${BENCH_DIR:-$root/../shared/bench} (set BENCH_DIR)" >&2
    exit 1
fi
if [[ ! -x "$root/.venv/bin/python" ]]; then
    echo "bench.sh: no project venv at $root/.venv: run \`make install\` first" >&2
    exit 1
fi
command -v node >/dev/null || { echo "bench.sh: node (>= 18) is needed for the load generator" >&2; exit 1; }

# The bench venv: created once, outside the (possibly read-only) harness folder.
if ! "$venv/bin/python" -c 'import aiohttp, uvloop, orjson' 2>/dev/null; then
    echo "bench.sh: creating the bench venv in $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet -r "$bench_dir/requirements.txt"
fi

cd "$root"
mkdir -p "$var_dir"
export SHOPOLOGIC_VAR_DIR="$var_dir"
export SHOPOLOGIC_DATABASE_URL="$database_url"

# Activate the plugin (creates the default app, runs its migrations) and bring them to head.
.venv/bin/python bootstrap_plugins.py plugin activate websocket-realtime-engine >&2
.venv/bin/python bootstrap_plugins.py migrate up >&2

# Limits raised so that the blast measures delivery, not the engine's protections:
#  - write_buffer_limit: the ceiling has no slow-consumer cut-off; 64 MiB per connection
#    keeps the engine from closing subscribers that are merely behind during the burst;
#  - max_connections: above the largest C plus the publisher's connections.
# The engine reads REALTIME_API_KEY from the environment (it wins over the stored key);
# run_bench passes --api-key to it under that name and publishes with it.
exec "$venv/bin/python" "$bench_dir/run_bench.py" \
    --native-cmd '.venv/bin/python bootstrap_plugins.py websocket start --host 127.0.0.1 --port {port}' \
    --native-cwd "$root" \
    --native-env "SHOPOLOGIC_VAR_DIR=$var_dir" \
    --native-env "SHOPOLOGIC_DATABASE_URL=$database_url" \
    --native-env REALTIME_WRITE_BUFFER_LIMIT=67108864 \
    --native-env REALTIME_MAX_CONNECTIONS=20000 \
    --api-key "$api_key" \
    --out "$out" \
    "$@"
