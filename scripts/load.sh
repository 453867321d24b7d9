#!/usr/bin/env bash
# Load (or soak) test on loopback: builds release, starts `wabot serve` on a fresh database
# in a temporary directory, runs `wabot-load` against it for a bounded time, stops the server.
#
#   scripts/load.sh                 # 10 s load, 16 connections
#   DURATION=30 CONNECTIONS=64 scripts/load.sh
#   scripts/load.sh --soak          # 600 s, server RSS sampled every 10 s
#   WABOT_BIN=/path/to/other/wabot scripts/load.sh   # another build of the server, same load tool
#   CHANNELS=meta scripts/load.sh   # only Meta's webhook (default: Twilio's, then Meta's, one server)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-16}
PORT=${PORT:-5077}
GRAPH_PORT=${GRAPH_PORT:-5078}
CHANNELS=${CHANNELS:-twilio meta}
EXTRA=()
if [[ "${1:-}" == "--soak" ]]; then
    DURATION=${SOAK_DURATION:-600}
    EXTRA=(--rss-every 10)
fi

cargo build --release --locked -p wabot -p wabot-load --bins >&2

tmp=$(mktemp -d)
export TWILIO_AUTH_TOKEN="load-test-token-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
export WABOT_DB="$tmp/wabot.db"
export WABOT_FAQ_JOURNAL="$tmp/journal.jsonl"
export WABOT_LOG=${WABOT_LOG:-warn}
# Meta's channel on, its Graph API answered by wabot-load's sink on loopback.
export META_APP_SECRET="load-test-secret-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
export META_ACCESS_TOKEN=load-test-access-token
export META_PHONE_NUMBER_ID=1234
export WABOT_META_GRAPH_BASE="http://127.0.0.1:$GRAPH_PORT/v23.0"
# WABOT_BIN runs another build of the server (an older commit's, to compare in the same run).
"${WABOT_BIN:-./target/release/wabot}" serve --listen "127.0.0.1:$PORT" 2>"$tmp/server.log" &
server=$!
cleanup() {
    kill -TERM "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

# With the semantic scorer on (the default), a fresh data directory means the FAQ is
# embedded before the server listens: wait up to two minutes.
for _ in $(seq 1 1200); do
    curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done
echo "semantic scorer: ${WABOT_SEMANTIC:-on}" >&2

echo "machine: $(nproc) cores, $(uptime | sed 's/.*load average/load average/')" >&2
for channel in $CHANNELS; do
    sink=()
    [[ "$channel" == meta ]] && sink=(--graph-sink "$GRAPH_PORT")
    timeout $((DURATION + 60)) ./target/release/wabot-load \
        --addr "127.0.0.1:$PORT" --connections "$CONNECTIONS" --duration "$DURATION" \
        --channel "$channel" "${sink[@]}" --rss-pid "$server" "${EXTRA[@]}"
done
echo "database after the run: $(du -h "$WABOT_DB" | cut -f1)" >&2
