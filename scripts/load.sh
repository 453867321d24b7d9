#!/usr/bin/env bash
# Load (or soak) test on loopback: builds release, starts `wabot serve` on a fresh database
# in a temporary directory, runs `wabot-load` against it for a bounded time, stops the server.
#
#   scripts/load.sh                 # 10 s load, 16 connections, one server on SQLite
#   DURATION=30 CONNECTIONS=64 scripts/load.sh
#   scripts/load.sh --soak          # 600 s, server RSS sampled every 10 s
#   WABOT_BIN=/path/to/other/wabot scripts/load.sh   # another build of the server, same load tool
#   CHANNELS=meta scripts/load.sh   # only Meta's webhook (default: Twilio's, then Meta's, one server)
#
# Several replicas on PostgreSQL (a throwaway cluster with PostgreSQL's durable defaults,
# started here; the connections of the load spread over the replicas in turn):
#
#   DB=postgres REPLICAS=3 scripts/load.sh
#   DB=postgres REPLICAS=2 PG_RESTART_AT=5 scripts/load.sh   # PostgreSQL restarted 5 s in
#   scripts/load.sh --replicas      # one run: SQLite x1, then PostgreSQL x1, x2, x3 (Twilio),
#                                   # with msgs/s, p99 and where the CPU went, side by side
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-16}
PORT=${PORT:-5077}
GRAPH_PORT=${GRAPH_PORT:-5078}
CHANNELS=${CHANNELS:-twilio meta}
DB=${DB:-sqlite}
REPLICAS=${REPLICAS:-1}
PG_RESTART_AT=${PG_RESTART_AT:-}
EXTRA=()
CASES=("$DB:$REPLICAS")
case "${1:-}" in
--soak)
    DURATION=${SOAK_DURATION:-600}
    EXTRA=(--rss-every 10)
    ;;
--replicas)
    CASES=(sqlite:1 postgres:1 postgres:2 postgres:3)
    CHANNELS=${CHANNELS_REPLICAS:-twilio}
    ;;
esac

cargo build --release --locked -p wabot -p wabot-load --bins >&2

tmp=$(mktemp -d)
servers=()
stop_servers() {
    for pid in "${servers[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${servers[@]}"; do wait "$pid" 2>/dev/null || true; done
    servers=()
}
cleanup() {
    stop_servers
    if declare -F pg_stop >/dev/null; then pg_stop; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

export TWILIO_AUTH_TOKEN="load-test-token-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
export WABOT_LOG=${WABOT_LOG:-warn}
# Every replica signs for the same public URL, as behind a balancer.
export WABOT_PUBLIC_URL=http://wabot.load
# Meta's channel on, its Graph API answered by wabot-load's sink on loopback.
export META_APP_SECRET="load-test-secret-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
export META_ACCESS_TOKEN=load-test-access-token
export META_PHONE_NUMBER_ID=1234
export WABOT_META_GRAPH_BASE="http://127.0.0.1:$GRAPH_PORT/v23.0"

needs_pg=0
for c in "${CASES[@]}"; do [[ "$c" == postgres:* ]] && needs_pg=1; done
if [[ $needs_pg == 1 ]]; then
    . .ci/postgres.sh
    trap cleanup EXIT # pg_start sets its own; ours stops the servers first
    PG_DURABLE=1 pg_start >&2
    trap cleanup EXIT
    PSQL=(psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U wabot)
fi

hz=$(getconf CLK_TCK)
# CPU ticks (user + system) of processes, and of PostgreSQL: the postmaster, its children, and
# the children it has already reaped.
ticks_of() {
    local t=0 pid
    for pid in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0))); done
    echo "$t"
}
pg_ticks() {
    [[ -n "${PG_DIR:-}" ]] || { echo 0; return; }
    local pm t child
    pm=$(head -1 "$PG_DIR/data/postmaster.pid")
    t=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$pm/stat")
    for child in $(pgrep -P "$pm"); do t=$((t + $(ticks_of "$child"))); done
    echo "$t"
}

summary=()
n=0
for case in "${CASES[@]}"; do
    db=${case%%:*}
    replicas=${case##*:}
    n=$((n + 1))
    if [[ $db == postgres ]]; then
        "${PSQL[@]}" -d postgres -c "CREATE DATABASE load_$n" >/dev/null
        export WABOT_DB="postgres://wabot@127.0.0.1:$PG_PORT/load_$n?sslmode=disable"
    else
        export WABOT_DB="$tmp/wabot-$n.db"
        export WABOT_FAQ_JOURNAL="$tmp/journal-$n.jsonl"
    fi
    addrs=()
    for i in $(seq 1 "$replicas"); do
        port=$((PORT + 10 * (i - 1)))
        # WABOT_BIN runs another build of the server (an older commit's, to compare in the same run).
        "${WABOT_BIN:-${CARGO_TARGET_DIR:-target}/release/wabot}" serve --listen "127.0.0.1:$port" 2>"$tmp/server-$n-$i.log" &
        servers+=($!)
        addrs+=("127.0.0.1:$port")
    done
    # With the semantic scorer on (the default), a fresh data directory means the FAQ is
    # embedded before the server listens: wait up to two minutes.
    for addr in "${addrs[@]}"; do
        for _ in $(seq 1 1200); do
            curl -fsS "http://$addr/healthz" >/dev/null 2>&1 && break
            sleep 0.1
        done
    done
    echo "== $db, $replicas server(s): ${addrs[*]}" >&2
    echo "semantic scorer: ${WABOT_SEMANTIC:-on}" >&2
    echo "machine: $(nproc) cores, $(uptime | sed 's/.*load average/load average/')" >&2
    rss=()
    [[ $replicas == 1 ]] && rss=(--rss-pid "${servers[0]}")
    for channel in $CHANNELS; do
        sink=()
        [[ "$channel" == meta ]] && sink=(--graph-sink "$GRAPH_PORT")
        if [[ -n "$PG_RESTART_AT" && $db == postgres ]]; then
            (
                sleep "$PG_RESTART_AT"
                echo "== restarting PostgreSQL $PG_RESTART_AT s into the load" >&2
                "${PG_RUN[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w -t 60 -m fast \
                    restart -o "$PG_OPTS" >/dev/null
                echo "== PostgreSQL is back" >&2
            ) &
            restarter=$!
        fi
        before_servers=$(ticks_of "${servers[@]}")
        before_pg=$(pg_ticks)
        started=$(date +%s.%N)
        out=$(timeout $((DURATION + 60)) "${CARGO_TARGET_DIR:-target}/release/wabot-load" \
            --addr "$(IFS=,; echo "${addrs[*]}")" --signed-url "$WABOT_PUBLIC_URL/bot" \
            --connections "$CONNECTIONS" --duration "$DURATION" \
            --channel "$channel" "${sink[@]}" "${rss[@]}" "${EXTRA[@]}")
        wall=$(echo "$(date +%s.%N) - $started" | bc -l)
        server_cpu=$(echo "($(ticks_of "${servers[@]}") - $before_servers) / $hz" | bc -l)
        pg_cpu=$(echo "($(pg_ticks) - $before_pg) / $hz" | bc -l)
        [[ -n "${restarter:-}" ]] && { wait "$restarter" || true; unset restarter; }
        echo "$out"
        rate=$(echo "$out" | sed -n 's/.* \([0-9]*\) msgs\/s.*/\1/p' | head -1)
        p99=$(echo "$out" | sed -n 's/.*p99 \([0-9.]*\)  p99.9.*/\1/p' | head -1)
        load_pct=$(echo "$out" | sed -n 's/.*wabot-load [0-9]* µs (\([0-9]*\)% of one core).*/\1/p;s/.*and \([0-9]*\)% of one core).*/\1/p' | tail -1)
        ok=$(echo "$out" | sed -n 's/.*(200: \([0-9]*\),.*/\1/p' | head -1)
        [[ -n "$PG_RESTART_AT" && $db == postgres ]] && echo "(PostgreSQL's CPU counts only its processes since the restart)"
        printf 'cpu over %.1f s: servers %.1f s (%.0f%% of one core), PostgreSQL %.1f s (%.0f%%), wabot-load %s%%\n' \
            "$wall" "$server_cpu" "$(echo "$server_cpu * 100 / $wall" | bc -l)" \
            "$pg_cpu" "$(echo "$pg_cpu * 100 / $wall" | bc -l)" "${load_pct:-?}"
        if [[ $db == postgres && $channel == twilio ]]; then
            # Every 200 is a committed turn, every 503 wrote nothing: the claims in the
            # database are exactly the messages answered 200.
            claims=$("${PSQL[@]}" -d "load_$n" -At -c "SELECT count(*) FROM messages WHERE channel = 'twilio'")
            echo "messages claimed in the database: $claims, answered 200: $ok"
        fi
        summary+=("$(printf '%-9s %2s  %-7s %8s %9s %10.0f%% %12.0f%%' "$db" "$replicas" "$channel" "$rate" "$p99" \
            "$(echo "$server_cpu * 100 / $wall" | bc -l)" "$(echo "$pg_cpu * 100 / $wall" | bc -l)")")
    done
    if [[ $db == sqlite ]]; then
        echo "database after the run: $(du -h "$WABOT_DB" | cut -f1)" >&2
    fi
    stop_servers
done

if [[ ${#summary[@]} -gt 1 ]]; then
    echo
    echo "store   servers channel   msgs/s   p99 ms   servers' CPU  PostgreSQL's CPU  (% of one core; $(nproc) cores)"
    printf '%s\n' "${summary[@]}"
fi
