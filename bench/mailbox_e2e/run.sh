#!/usr/bin/env bash
# End to end: N bounce messages (default 10,000) in a dovecot POP3 mailbox are scanned,
# classified, recorded in Postgres and deleted by one `bounce-worker run --role mailbox
# --once`, timed from start to exit, with the worker's peak RSS.
#   bash bench/mailbox_e2e/run.sh [N] [--protocol pop3|imap] [--large BYTES]
# --large adds one message of BYTES bytes (a reply with a long text), over maxMessageBytes
# (10 MiB) when BYTES is: it must stay in the mailbox, unread, while the rest is processed.
# BOUNCEOPS_BENCH_WORKER=<binary> measures that binary instead of building one.
# Needs: dovecot-core + dovecot-pop3d (+ dovecot-imapd), psql, a Postgres reachable at
# BOUNCEOPS_BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres);
# a throwaway database is created and dropped. Run as root or as a user that can start
# dovecot on a high port.
# Exits 1, saying which, unless the worker exits 0, every message is recorded and the
# mailbox holds what must stay (nothing, or the --large message).
# Smoke mode: BENCH_SMOKE=1 bash bench/mailbox_e2e/run.sh [...]: the debug build and 100
# messages unless N is given.
set -euo pipefail
smoke="${BENCH_SMOKE:-0}"
n=10000 protocol=pop3 large=0
[ "$smoke" = 1 ] && n=100
while [ $# -gt 0 ]; do
    case "$1" in
        --protocol) protocol="$2"; shift 2 ;;
        --large) large="$2"; shift 2 ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) n="$1"; shift ;;
    esac
done
case "$protocol" in pop3|imap) ;; *) echo "--protocol: pop3 or imap" >&2; exit 2 ;; esac
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
admin="${BOUNCEOPS_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
dovecot=/usr/sbin/dovecot
[ -x "$dovecot" ] || { echo "install dovecot-core dovecot-pop3d" >&2; exit 1; }

worker="${BOUNCEOPS_BENCH_WORKER:-}"
if [ -z "$worker" ]; then
    if [ "$smoke" = 1 ]; then
        echo "building bounce-worker (debug, smoke mode)" >&2
        cargo build --quiet --manifest-path "$repo/Cargo.toml" -p bounce-worker --bin bounce-worker
        worker="${CARGO_TARGET_DIR:-$repo/target}/debug/bounce-worker"
    else
        echo "building bounce-worker (release)" >&2
        cargo build --release --quiet --manifest-path "$repo/Cargo.toml" -p bounce-worker
        worker="${CARGO_TARGET_DIR:-$repo/target}/release/bounce-worker"
    fi
fi

work="$(mktemp -d /tmp/mbxbench.XXXXXX)"
db="bounceops_bench_$$"
dburl="${admin%/*}/$db"
cleanup() {
    "$dovecot" -c "$work/dovecot.conf" stop 2>/dev/null || true
    psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# Mail processes must not run as root: as root the maildir goes to nobody.
uid="$(id -u)"; [ "$uid" -eq 0 ] && uid=65534
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
mkdir -p "$work"/{run,state,home,mail/bench/new,mail/bench/cur,mail/bench/tmp}
chmod 755 "$work"
echo 'bench:{PLAIN}bench-pw::::::' > "$work/passwd"
cat > "$work/dovecot.conf" <<CONF
base_dir = $work/run
state_dir = $work/state
log_path = $work/dovecot.log
protocols = $protocol
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
first_valid_uid = 1
mail_location = maildir:$work/mail/%u
pop3_uidl_format = %08Xu%08Xv
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $work/passwd
}
userdb {
  driver = static
  args = uid=$uid gid=$uid home=$work/home/%u
}
service pop3-login {
  inet_listener pop3 {
    port = $([ "$protocol" = pop3 ] && echo "$port" || echo 0)
  }
}
service imap-login {
  inet_listener imap {
    port = $([ "$protocol" = imap ] && echo "$port" || echo 0)
  }
}
CONF

echo "writing $n bounce messages" >&2
python3 - "$work/mail/bench/new" "$n" <<'PY'
import base64, sys, uuid
folder, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    rcpt = f"sub{i}@example.net"
    status = "4.2.2" if i % 10 == 0 else "5.1.1"
    original = (f"From: news@example.com\r\nTo: {rcpt}\r\nSubject: Issue {i}\r\n"
                f"X-Listmonk-Campaign: {uuid.uuid4()}\r\n\r\nHello\r\n").encode()
    enc = base64.encodebytes(original).decode().replace("\n", "\r\n")
    msg = (f"From: MAILER-DAEMON@mx.example.net\r\nTo: bounces@example.com\r\n"
           f"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <{uuid.uuid4()}@mx>\r\n"
           f"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n"
           f"--B\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n\r\n"
           f"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"
           f"Final-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: {status}\r\n"
           f"Diagnostic-Code: smtp; 550 {status} user unknown\r\n\r\n"
           f"--B\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n{enc}\r\n--B--\r\n")
    with open(f"{folder}/{1700000000 + i}.M{i}P1.bench", "w", newline="") as f:
        f.write(msg)
PY
if [ "$large" -gt 0 ]; then
    echo "writing one message of $large bytes" >&2
    python3 - "$work/mail/bench/new" "$large" <<'PY'
import sys
folder, size = sys.argv[1], int(sys.argv[2])
line = "archive " * 9 + "\r\n"
with open(f"{folder}/1800000000.Mlarge.bench", "w", newline="") as f:
    f.write("From: Carol <carol@example.org>\r\nTo: bounces@example.com\r\n"
            "Subject: Re: the whole archive\r\nContent-Type: text/plain\r\n\r\n")
    chunk = line * 10000
    for _ in range(size // len(chunk)):
        f.write(chunk)
PY
fi
chown -R "$uid:$uid" "$work/mail" "$work/home"

"$dovecot" -c "$work/dovecot.conf"
for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done

psql -q "$admin" -c "CREATE DATABASE $db" >/dev/null
mkdir -p "$work/secrets"/{db,api,mbox}
echo "$dburl" > "$work/secrets/db/url"
echo "bench:token" > "$work/secrets/api/credentials"
echo bench > "$work/secrets/mbox/username"
echo bench-pw > "$work/secrets/mbox/password"
cat > "$work/config.yaml" <<YAML
apiVersion: bounceops.io/v1alpha1
kind: BounceConfig
metadata: {name: bench}
spec:
  database: {urlSecretRef: {name: db, key: url}, schema: standalone}
  api: {credentialsSecretRef: {name: api, key: credentials}}
  mailboxes:
    - name: bench
      protocol: $protocol
      host: 127.0.0.1
      port: $port
      tls: none
      usernameSecretRef: {name: mbox, key: username}
      passwordSecretRef: {name: mbox, key: password}
      maxMessagesPerScan: $((n + 1))
YAML
args=(--config "$work/config.yaml" --secrets-dir "$work/secrets")
"$worker" migrate "${args[@]}" 2>/dev/null
psql -q "$dburl" -c "INSERT INTO subscribers (uuid, email, name)
    SELECT gen_random_uuid(), 'sub' || g || '@example.net', 's' FROM generate_series(0, $n - 1) g" >/dev/null

echo "scanning" >&2
# The child's peak RSS (ru_maxrss, KiB) and wall time, from one Python parent.
measured="$(BOUNCEOPS_LOG_FORMAT=text RUST_LOG=warn python3 - "$worker" run --role mailbox --once "${args[@]}" <<'PY'
import resource, subprocess, sys, time
start = time.monotonic()
rc = subprocess.run(sys.argv[1:]).returncode
print(rc, time.monotonic() - start, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
PY
)"

bounces="$(psql -tA "$dburl" -c 'SELECT COUNT(*) FROM bounces')"
left="$(find "$work/mail/bench/new" "$work/mail/bench/cur" -type f | wc -l)"
expected_left=0; [ "$large" -gt 0 ] && expected_left=1
python3 - $measured "$n" "$bounces" "$left" "$expected_left" "$protocol" <<'PY'
import sys
rc, s, rss_kib = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
n, bounces, left, expected_left = map(int, sys.argv[4:8])
print(f"{sys.argv[8]}: messages {n}  recorded {bounces}  left in mailbox {left}  "
      f"time {s:.2f} s  ({n / s:.0f} messages/s)  peak RSS {rss_kib / 1024:.1f} MiB  exit {rc}")
failed = [what for what, bad in [
    (f"the worker exited {rc}", rc != 0),
    (f"{bounces} bounces recorded of {n} messages", bounces != n),
    (f"{left} messages left in the mailbox, {expected_left} expected", left != expected_left),
] if bad]
if failed:
    print("bench: FAILED: " + "; ".join(failed), file=sys.stderr)
    sys.exit(1)
PY
