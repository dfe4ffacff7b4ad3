#!/usr/bin/env bash
# Installs Debian's postfix for the bounce MX's tests and benchmark, non-interactively:
# "No configuration" (no /etc/postfix/main.cf is written) and, while it installs, a
# policy-rc.d that forbids starting services, so the system's mail service never runs.
# The tests start their own Postfix with `postfix -c <dir>`. Run as root; does nothing
# when postfix and smtp-source are there already.
set -euo pipefail
log() { printf 'ensure-postfix: %s\n' "$*" >&2; }

if [ -x /usr/sbin/postfix ] && [ -x /usr/sbin/smtp-source ]; then
    log "postfix is installed"
    exit 0
fi
[ "$(id -u)" -eq 0 ] || { log "ERROR: must run as root"; exit 1; }
policy=/usr/sbin/policy-rc.d own_policy=0 status=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
fi
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
log "installing postfix (not configured, not started)"
DEBIAN_FRONTEND=noninteractive apt-get update -qq || status=$?
if [ "$status" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postfix \
        </dev/null >/dev/null || status=$?
fi
[ "$own_policy" -eq 0 ] || rm -f "$policy"
[ "$status" -eq 0 ] || { log "ERROR: installing postfix failed"; exit 1; }
[ -x /usr/sbin/postfix ] || { log "ERROR: /usr/sbin/postfix still missing"; exit 1; }
