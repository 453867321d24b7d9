# Sourced by .ci/run: a throwaway PostgreSQL cluster for the tests, loopback only, stopped on
# exit. Installs Debian's `postgresql` package when no server binaries are found; runs the
# server as a non-root user (initdb and postgres refuse root). Exports
# WABOT_TEST_POSTGRES_URL and WABOT_TEST_POSTGRES_REQUIRED=1: a test that cannot reach it
# fails instead of skipping.

pg_bindir() {
    local d
    for d in "${PG_BINDIR:-}" /usr/lib/postgresql/*/bin /usr/local/pgsql/bin /usr/local/bin /usr/bin; do
        if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
            echo "$d"
            return 0
        fi
    done
    return 1
}

pg_start() {
    local bin
    if ! bin=$(pg_bindir); then
        echo "== installing PostgreSQL (Debian's package)"
        local sudo=""
        [ "$(id -u)" -ne 0 ] && sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql >/dev/null
        bin=$(pg_bindir) || { echo "PostgreSQL installed but initdb not found" >&2; return 1; }
    fi
    PG_DIR=$(mktemp -d /tmp/wabot-pg.XXXXXX)
    local run=()
    if [ "$(id -u)" -eq 0 ]; then
        # initdb and postgres refuse to run as root.
        local user=postgres
        id "$user" >/dev/null 2>&1 || user=nobody
        chown "$user" "$PG_DIR"
        run=(runuser -u "$user" --)
    fi
    PG_RUN=("${run[@]}")
    PG_BIN=$bin
    # A free port, picked by the kernel.
    PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "${run[@]}" "$bin/initdb" -D "$PG_DIR/data" -U wabot -A trust --no-sync >/dev/null
    trap pg_stop EXIT
    # fsync off: a throwaway cluster, and the tests' thousands of commits stay fast. PG_DURABLE=1
    # keeps PostgreSQL's durable defaults (the load figures, compared with SQLite's fsyncs).
    local fast="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    [ "${PG_DURABLE:-0}" = 1 ] && fast=""
    PG_OPTS="-c listen_addresses=127.0.0.1 -p $PG_PORT -c unix_socket_directories=$PG_DIR $fast -c max_connections=400"
    "${run[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w -t 30 start -o "$PG_OPTS" >/dev/null
    export WABOT_TEST_POSTGRES_URL="postgres://wabot@127.0.0.1:$PG_PORT/postgres?sslmode=disable"
    export WABOT_TEST_POSTGRES_REQUIRED=1
    echo "== PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT ($PG_DIR)"
}

pg_stop() {
    if [ -n "${PG_DIR:-}" ] && [ -d "$PG_DIR/data" ]; then
        "${PG_RUN[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$PG_DIR"
    fi
}
