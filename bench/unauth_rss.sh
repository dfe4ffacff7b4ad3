#!/usr/bin/env bash
# Peak RSS under unauthenticated load (issue 20, point 5): for each provider route and the
# generic webhook, a fresh worker takes ROUNDS rounds of 50 concurrent 1 MiB POSTs that
# carry no valid credentials, but headers as plausible as an attacker can make them without
# a key (a well-formed signature with a current timestamp, the SNS message type), so that
# every body that has to be read to be verified is read. Prints the worker's idle RSS and
# its peak (VmHWM) per route, and exits 1 when a peak reaches the limit (64 MiB) or a request
# was answered anything but 401, 400 or 503 (000: the worker answered 401 from the head and
# closed the connection while curl was still sending the body).
# The worker runs as shipped, with its allocator settings (worker/src/allocator.rs);
# `MIMALLOC_ALLOW_THP=1 MIMALLOC_PURGE_DELAY=1000` in the environment gives mimalloc's own.
# Smoke mode (BENCH_SMOKE=1, for CI after the tests, which leave a debug build): the debug
# worker, 1 round, the answers checked but not the peak, which only a release build is held
# to (a debug worker idles at 28 MiB instead of 17).
# Usage: bash bench/unauth_rss.sh [rounds]; BENCH_SMOKE=1 bash bench/unauth_rss.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
smoke="${BENCH_SMOKE:-0}"
rounds="${1:-2}"
port="${BENCH_PORT:-9321}"
limit_kb=$((64 * 1024))

command -v openssl >/dev/null || { log "openssl is needed for the SendGrid key"; exit 1; }
if [ "$smoke" = 1 ]; then
    rounds=1
    log "smoke: building (debug)"
    cargo build -q -p bounce-worker --bin bounce-worker
    worker_bin="$target/debug/bounce-worker"
else
    log "building (release)"
    cargo build -q --release -p bounce-worker --bin bounce-worker
fi

export BENCH_EXTRA_SPEC="providers:
  generic: {enabled: true}
  ses: {enabled: true}
  sendgrid: {enabled: true, publicKeySecretRef: {name: sendgrid, key: public-key}}
  postmark: {enabled: true, credentialsSecretRef: {name: postmark, key: credentials}}
  forwardemail: {enabled: true, keySecretRef: {name: forwardemail, key: key}}
  mailgun: {enabled: true, signingKeySecretRef: {name: mailgun, key: signing-key}}
  lettermint: {enabled: true, signingKeySecretRef: {name: lettermint, key: secret}}
  azure: {enabled: true, sharedSecretRef: {name: azure, key: secret}}
  resend: {enabled: true, signingSecretRef: {name: resend, key: secret}}
  brevo: {enabled: true, tokenSecretRef: {name: brevo, key: token}}
  mailjet: {enabled: true, tokenSecretRef: {name: mailjet, key: token}}
  sparkpost: {enabled: true, tokenSecretRef: {name: sparkpost, key: token}}"
bench_database bounceops_bench_unauth
worker_pid=""
trap '[ -z "$worker_pid" ] || stop_worker; rm -rf "$bench_dir"' EXIT
secret() { mkdir -p "$bench_dir/secrets/$1"; printf '%s\n' "$3" >"$bench_dir/secrets/$1/$2"; }
openssl ecparam -name prime256v1 -genkey -noout -out "$bench_dir/sg.pem" 2>/dev/null
secret sendgrid public-key "$(openssl ec -in "$bench_dir/sg.pem" -pubout -outform DER 2>/dev/null | base64 -w0)"
# Signed with a key the worker does not hold: well-formed, and wrong.
openssl ecparam -name prime256v1 -genkey -noout -out "$bench_dir/other.pem" 2>/dev/null
forged_sg="$(printf x | openssl dgst -sha256 -sign "$bench_dir/other.pem" | base64 -w0)"
secret postmark credentials "postmark:s3cret"
secret forwardemail key "fe-key"
secret mailgun signing-key "mg-key"
secret lettermint secret "lm-secret"
secret azure secret "az-secret"
secret resend secret "whsec_$(printf 'resend-secret-0123456789abcdef' | base64 -w0)"
for p in brevo mailjet sparkpost; do secret "$p" token "tok"; done

# 1 MiB bodies of many small JSON objects: the shape that costs most once parsed. (`yes`
# ends on SIGPIPE, which pipefail would take for a failure.)
set +o pipefail
item='{"event":"bounce","email":"someone@example.com","reason":"550 5.1.1 user unknown","sg_event_id":"e","timestamp":1767323045},'
array_body="$bench_dir/array.json"
{ printf '['; yes "$item" | head -c $((1024 * 1024 - 64)) | tr -d '\n'; printf '%s]' "${item%,}"; } >"$array_body"
mailgun_body="$bench_dir/mailgun.json"
{ printf '{"signature":{"timestamp":"%s","token":"t","signature":"%064d"},"event-data":{"items":[' "$(date +%s)" 0
  yes "$item" | head -c $((1024 * 1024 - 200)) | tr -d '\n'; printf '%s]}}' "${item%,}"; } >"$mailgun_body"
sns_body="$bench_dir/sns.json"
{ printf '{"Type":"Notification","MessageId":"m","TopicArn":"arn:aws:sns:us-east-1:1:t","Timestamp":"%s","SignatureVersion":"2","Signature":"AAAA","SigningCertURL":"https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0.pem","Message":"' "$(date -u +%Y-%m-%dT%H:%M:%S.000Z)"
  yes 'x' | head -c $((1024 * 1024 - 400)) | tr -d '\n'; printf '"}'; } >"$sns_body"
set -o pipefail

# Route, body file, extra headers (one per line).
cases() {
    local now; now="$(date +%s)"
    printf '%s\n' "generic|$array_body|"
    printf '%s\n' "service/ses|$sns_body|x-amz-sns-message-type: Notification"
    printf '%s\n' "service/sendgrid|$array_body|X-Twilio-Email-Event-Webhook-Signature: $forged_sg;X-Twilio-Email-Event-Webhook-Timestamp: $now"
    printf '%s\n' "service/postmark|$array_body|"
    printf '%s\n' "service/forwardemail|$array_body|X-Webhook-Signature: 00"
    printf '%s\n' "service/mailgun|$mailgun_body|"
    printf '%s\n' "service/lettermint|$array_body|X-Lettermint-Signature: t=$now,v1=00"
    printf '%s\n' "service/azure|$array_body|"
    printf '%s\n' "service/resend|$array_body|svix-id: msg_1;svix-timestamp: $now;svix-signature: v1,AAAA"
    printf '%s\n' "service/brevo|$array_body|"
    printf '%s\n' "service/mailjet|$array_body|"
    printf '%s\n' "service/sparkpost|$array_body|"
}

post_one() { # url body headers(;-separated)
    local args=(-s -o /dev/null -w '%{http_code}\n' --max-time 30 -H 'content-type: application/json' -H 'Expect:')
    local IFS=';'
    for h in $3; do [ -n "$h" ] && args+=(-H "$h"); done
    curl "${args[@]}" --data-binary "@$2" "$1" || true
}
export -f post_one

worst=0 failed=0
printf '%-22s %10s %10s  %s\n' route "idle MiB" "peak MiB" "answers"
while IFS='|' read -r route body headers; do
    path="/webhooks/${route}"
    [ "$route" = generic ] && path="/webhooks/bounce"
    start_worker "$port"
    idle="$(rss_kb "$worker_pid" VmRSS)"
    answers="$(for _ in $(seq 1 "$rounds"); do
        seq 1 50 | xargs -P 50 -I{} bash -c 'post_one "$0" "$1" "$2"' \
            "http://127.0.0.1:$port$path" "$body" "$headers"
    done | sort | uniq -c | awk '{printf "%s×%s ", $1, $2}')"
    peak="$(rss_kb "$worker_pid" VmHWM)"
    stop_worker
    printf '%-22s %10.1f %10.1f  %s\n' "$route" "$(bc -l <<<"$idle/1024")" "$(bc -l <<<"$peak/1024")" "$answers"
    [ "$peak" -gt "$worst" ] && worst="$peak"
    grep -qvE '^[0-9]+×(401|400|503|000) ?' <<<"$(tr ' ' '\n' <<<"$answers" | sed '/^$/d')" && failed=1
done < <(cases)
log "peak RSS over all routes: $(bc -l <<<"scale=1; $worst/1024") MiB (limit 64 MiB)"
[ "$failed" -eq 0 ] || { log "FAILED: an unauthenticated request was answered something else"; exit 1; }
if [ "$smoke" = 1 ]; then
    log "smoke: every answer as expected (the peak is held to 64 MiB in a release run only)"
    exit 0
fi
[ "$worst" -lt "$limit_kb" ] || { log "FAILED: peak RSS reached 64 MiB"; exit 1; }
