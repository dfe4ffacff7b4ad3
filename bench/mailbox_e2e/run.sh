#!/usr/bin/env bash
# End to end: N bounce messages (default 10,000) in a dovecot POP3 mailbox are scanned,
# classified, recorded in Postgres and deleted by one `bounce-worker run --role mailbox
# --once`, timed from start to exit.
#   bash bench/mailbox_e2e/run.sh [N]
# Needs: dovecot-core + dovecot-pop3d, psql, a Postgres reachable at
# BOUNCEOPS_BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres);
# a throwaway database is created and dropped. Run as root or as a user that can start
# dovecot on a high port.
set -euo pipefail
n="${1:-10000}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
admin="${BOUNCEOPS_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
dovecot=/usr/sbin/dovecot
[ -x "$dovecot" ] || { echo "install dovecot-core dovecot-pop3d" >&2; exit 1; }

echo "building bounce-worker (release)" >&2
cargo build --release --quiet --manifest-path "$repo/Cargo.toml" -p bounce-worker
worker="${CARGO_TARGET_DIR:-$repo/target}/release/bounce-worker"

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
protocols = pop3
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
    port = $port
  }
}
service imap-login {
  inet_listener imap {
    port = 0
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
      protocol: pop3
      host: 127.0.0.1
      port: $port
      tls: none
      usernameSecretRef: {name: mbox, key: username}
      passwordSecretRef: {name: mbox, key: password}
      maxMessagesPerScan: $n
YAML
args=(--config "$work/config.yaml" --secrets-dir "$work/secrets")
"$worker" migrate "${args[@]}" 2>/dev/null
psql -q "$dburl" -c "INSERT INTO subscribers (uuid, email, name)
    SELECT gen_random_uuid(), 'sub' || g || '@example.net', 's' FROM generate_series(0, $n - 1) g" >/dev/null

echo "scanning" >&2
start="$(date +%s.%N)"
BOUNCEOPS_LOG_FORMAT=text RUST_LOG=warn "$worker" run --role mailbox --once "${args[@]}"
end="$(date +%s.%N)"

bounces="$(psql -tA "$dburl" -c 'SELECT COUNT(*) FROM bounces')"
left="$(find "$work/mail/bench/new" "$work/mail/bench/cur" -type f | wc -l)"
python3 - "$start" "$end" "$n" "$bounces" "$left" <<'PY'
import sys
start, end, n, bounces, left = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
s = end - start
print(f"messages {n}  recorded {bounces}  left in mailbox {left}  "
      f"time {s:.2f} s  ({n / s:.0f} messages/s)")
sys.exit(0 if bounces == n and left == 0 else 1)
PY
