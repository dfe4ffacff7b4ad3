#!/usr/bin/env bash
# Make sure a PostgreSQL server is reachable on 127.0.0.1 and print a superuser
# URL for it as the last (and only) line on stdout. Progress goes to stderr.
#
# Order of attempts:
#   1. $DATABASE_URL, if set and the server answers.
#   2. Whatever answers on 127.0.0.1:$BOUNCEOPS_PG_PORT (default 5432).
#   3. A Debian cluster (pg_lsclusters) on that port that is down: start it.
#   4. Install the Debian `postgresql` package if missing, re-check 2 and 3
#      (the package creates and starts a cluster on 5432 by itself), else
#      start a throwaway cluster in $BOUNCEOPS_PG_DIR (default .demo/pg).
# Whenever we use a server on 127.0.0.1 we verify that user postgres can log
# in over TCP, without a password or with $BOUNCEOPS_PG_PASSWORD (default
# "postgres"). On a local Debian cluster where postgres has no password at all
# (Debian's default: peer auth only) we set that password; we never overwrite
# an existing one.
#
# Usage: scripts/pg-ensure.sh          ensure a server, print its URL
#        scripts/pg-ensure.sh --stop   stop the throwaway cluster, if running
# Idempotent: running it again reuses whatever the first run set up.
set -euo pipefail

me="pg-ensure"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

port="${BOUNCEOPS_PG_PORT:-5432}"
host="127.0.0.1"
password="${BOUNCEOPS_PG_PASSWORD:-postgres}"
pg_dir="${BOUNCEOPS_PG_DIR:-$repo/.demo/pg}"

# --- privileges and packages -------------------------------------------------

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

# Run a command as the operating-system user postgres (Debian cluster admin).
as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    elif [ "$(id -un)" = postgres ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -u postgres "$@"
    else
        return 1
    fi
}

apt_updated=""
apt_install() {
    if [ -z "$apt_updated" ]; then
        log "running apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        apt_updated=1
    fi
    log "installing Debian package(s): $*"
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$@" >&2
}

# Debian's server binaries (initdb, pg_ctl) are not on PATH; find the newest.
pg_bindir() {
    local d
    d="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null \
        | sort -V | tail -n 1 || true)"
    if [ -n "$d" ] && [ -x "$d/initdb" ]; then
        printf '%s\n' "$d"
    elif command -v initdb >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
    else
        return 1
    fi
}

# --- probes ------------------------------------------------------------------

tcp_ready() { pg_isready -q -h "$host" -p "$port" -t 3 >/dev/null 2>&1; }

# Succeeds if $1 logs in and is a superuser.
url_works() {
    local out
    out="$(PGCONNECT_TIMEOUT=5 psql "$1" -w -X -A -t -q \
        -c 'SELECT rolsuper FROM pg_roles WHERE rolname = current_user' 2>/dev/null)" \
        || return 1
    [ "$out" = t ] || { log "note: $1 logs in but is not a superuser"; return 1; }
}

url_nopass="postgres://postgres@$host:$port/postgres"
url_pass="postgres://postgres:$password@$host:$port/postgres"

# Print a working superuser URL for the server on $host:$port, or fail.
# $1 = "may-set-password" when the server is a local Debian cluster we manage.
login_url() {
    if url_works "$url_nopass"; then
        printf '%s\n' "$url_nopass"; return 0
    fi
    if url_works "$url_pass"; then
        printf '%s\n' "$url_pass"; return 0
    fi
    [ "${1:-}" = may-set-password ] || return 1
    # Debian default: postgres has no password and only peer auth locally.
    local has_pw
    has_pw="$(as_postgres psql -p "$port" -X -A -t -q \
        -c "SELECT rolpassword IS NOT NULL FROM pg_authid WHERE rolname = 'postgres'" \
        2>/dev/null)" || return 1
    if [ "$has_pw" != f ]; then
        log "user postgres already has a password that is not BOUNCEOPS_PG_PASSWORD; not touching it"
        return 1
    fi
    log "user postgres has no password: setting it to \$BOUNCEOPS_PG_PASSWORD (default 'postgres') for TCP logins on $host"
    printf "ALTER ROLE postgres PASSWORD '%s';\n" "${password//\'/\'\'}" \
        | as_postgres psql -p "$port" -X -q -v ON_ERROR_STOP=1 >/dev/null || return 1
    url_works "$url_pass" || return 1
    printf '%s\n' "$url_pass"
}

# Debian cluster on our port, as "version name status", if any.
debian_cluster() {
    command -v pg_lsclusters >/dev/null 2>&1 || return 1
    pg_lsclusters -h 2>/dev/null | awk -v p="$port" '$3 == p { print $1, $2, $4; exit }' | grep .
}

wait_ready() {
    local i
    for i in $(seq 1 60); do
        tcp_ready && return 0
        [ $((i % 10)) -eq 0 ] && log "still waiting for $host:$port ($((i / 2))s)"
        sleep 0.5
    done
    return 1
}

# --- the steps -----------------------------------------------------------------

# Steps 2 and 3: a server on the port already, or a Debian cluster to start.
try_existing() {
    local cl ver name status url
    if tcp_ready; then
        log "a server answers on $host:$port"
        if cl="$(debian_cluster)"; then
            read -r ver name status <<<"$cl"
            url="$(login_url may-set-password)" || die "server on $host:$port (Debian cluster $ver/$name) does not let user postgres log in over TCP; set DATABASE_URL to a superuser URL"
        else
            url="$(login_url)" || die "server on $host:$port does not let user postgres log in without a password or with BOUNCEOPS_PG_PASSWORD; set DATABASE_URL to a superuser URL"
        fi
        printf '%s\n' "$url"; return 0
    fi
    if cl="$(debian_cluster)"; then
        read -r ver name status <<<"$cl"
        log "Debian cluster $ver/$name on port $port is $status: starting it"
        as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start >&2 \
            || die "could not start cluster $ver/$name (see /var/log/postgresql/postgresql-$ver-$name.log)"
        wait_ready || die "cluster $ver/$name started but $host:$port does not answer (is listen_addresses set?)"
        url="$(login_url may-set-password)" || die "cluster $ver/$name does not let user postgres log in over TCP; set DATABASE_URL"
        printf '%s\n' "$url"; return 0
    fi
    return 1
}

# Step 4: a throwaway cluster owned by us.
throwaway() {
    local bindir owner sockdir
    bindir="$(pg_bindir)" || die "no initdb found even after installing postgresql"
    owner="$(id -un)"
    if [ "$(id -u)" -eq 0 ]; then
        owner=postgres
        getent passwd postgres >/dev/null || die "user postgres does not exist (is the postgresql package installed?)"
        mkdir -p "$pg_dir"
        # The server must not run as root; user postgres needs to reach the dir.
        chown postgres: "$pg_dir"
        if ! runuser -u postgres -- test -w "$pg_dir"; then
            local fallback="${TMPDIR:-/tmp}/bounceops-pg-$port"
            log "user postgres cannot reach $pg_dir (a parent directory is private); using $fallback"
            pg_dir="$fallback"
            mkdir -p "$pg_dir"; chown postgres: "$pg_dir"; chmod 700 "$pg_dir"
        fi
    else
        mkdir -p "$pg_dir"
    fi
    chmod 700 "$pg_dir"
    run_owner() { if [ "$owner" = "$(id -un)" ]; then "$@"; else runuser -u "$owner" -- "$@"; fi; }

    if [ ! -f "$pg_dir/PG_VERSION" ]; then
        log "initdb of a throwaway cluster in $pg_dir (user $owner, trust auth)"
        run_owner "$bindir/initdb" -D "$pg_dir" --auth=trust -U postgres \
            -E UTF8 --no-locale >"$pg_dir.initdb.log" 2>&1 \
            || { cat "$pg_dir.initdb.log" >&2; die "initdb failed"; }
    else
        log "reusing the throwaway cluster in $pg_dir"
    fi

    # Unix socket next to the data; skip it if the path is too long for a socket.
    sockdir="$pg_dir"
    [ "${#sockdir}" -le 80 ] || sockdir=""
    log "starting it on $host:$port (log: $pg_dir/server.log)"
    run_owner "$bindir/pg_ctl" -D "$pg_dir" -l "$pg_dir/server.log" -W \
        -o "-p $port -k '$sockdir' -c listen_addresses=$host" start >&2 \
        || { tail -n 20 "$pg_dir/server.log" >&2 || true; die "pg_ctl start failed"; }
    if ! wait_ready; then
        tail -n 20 "$pg_dir/server.log" >&2 || true
        die "the throwaway cluster did not become ready within 30s"
    fi
    url_works "$url_nopass" || die "throwaway cluster is up but postgres cannot log in"
    log "ready; stop it with: scripts/pg-ensure.sh --stop"
    printf '%s\n' "$url_nopass"
}

stop_throwaway() {
    local bindir dir
    bindir="$(pg_bindir)" || { log "no pg_ctl found: nothing to stop"; return 0; }
    for dir in "$pg_dir" "${TMPDIR:-/tmp}/bounceops-pg-$port"; do
        [ -f "$dir/postmaster.pid" ] || continue
        local -a run=()
        [ "$(id -u)" -ne 0 ] || run=(runuser -u postgres --)
        # A stale pid file (after a crash or reboot) means nothing to stop.
        "${run[@]}" "$bindir/pg_ctl" -D "$dir" status >/dev/null 2>&1 || continue
        log "stopping the throwaway cluster in $dir"
        "${run[@]}" "$bindir/pg_ctl" -D "$dir" -m fast -w stop >&2
        return 0
    done
    log "no throwaway cluster is running"
}

main() {
    if [ "${1:-}" = --stop ]; then stop_throwaway; return 0; fi
    [ $# -eq 0 ] || die "usage: $0 [--stop]"

    if ! command -v pg_isready >/dev/null 2>&1 || ! command -v psql >/dev/null 2>&1; then
        log "pg_isready/psql missing"
        apt_install postgresql-client
    fi

    if [ -n "${DATABASE_URL:-}" ]; then
        if pg_isready -q -d "$DATABASE_URL" -t 3 >/dev/null 2>&1; then
            log "using DATABASE_URL (server answers)"
            printf '%s\n' "$DATABASE_URL"; return 0
        fi
        log "DATABASE_URL is set but its server does not answer; looking for another one"
    fi

    try_existing && return 0

    if ! pg_bindir >/dev/null; then
        log "no PostgreSQL server installed"
        apt_install postgresql
        # Debian's package creates (and usually starts) a cluster on 5432.
        try_existing && return 0
    fi

    log "nothing on $host:$port: starting a throwaway cluster"
    throwaway
}

main "$@"
