#!/usr/bin/env bash
# Self-signed TLS certificate for the edge's SIP-over-TLS listener.
#
#   edge/gen-cert.sh OUT_DIR [IP_OR_NAME ...]
#
# Writes OUT_DIR/edge.key (0600) and OUT_DIR/edge.crt, valid 10 years, with every
# argument as a subjectAltName (IP or DNS). Leaves an existing pair alone, so set-up can
# call it every time. For a public deployment replace the pair with a CA-issued one
# (same file names) so callers can verify the edge.
set -euo pipefail

out=${1:?usage: gen-cert.sh OUT_DIR [IP_OR_NAME ...]}
shift || true
[ $# -gt 0 ] || set -- 127.0.0.1 localhost

if [ -s "$out/edge.crt" ] && [ -s "$out/edge.key" ]; then
    exit 0
fi
mkdir -p "$out"
chmod 700 "$out"

san=""
for n in "$@"; do
    if [[ $n =~ ^[0-9.]+$ || $n == *:* ]]; then san+="IP:$n,"; else san+="DNS:$n,"; fi
done
san=${san%,}

umask 077
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
    -subj "/CN=$1/O=voicebot-edge" -addext "subjectAltName=$san" \
    -keyout "$out/edge.key" -out "$out/edge.crt" 2>/dev/null
chmod 644 "$out/edge.crt"
echo "gen-cert: wrote $out/edge.crt (SAN $san)" >&2
