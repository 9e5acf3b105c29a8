#!/usr/bin/env bash
# Start the voice-bot edge: rtpengine (userspace) + Kamailio in front of N gateway workers.
#
#   edge/run.sh [--workers N] [--worker-ip IP] [--worker-base-port P] ...   (see --help)
#
# Generates STATE/dispatcher.list (workers at consecutive ports), a self-signed TLS
# certificate if missing, then runs both daemons in the foreground of this script and
# stops both on SIGTERM/SIGINT, or when either of them dies (exit status 1 then).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# Defaults: loopback only. Each can also come from the environment (EDGE_*).
state=${VOICEBOT_STATE:-$here/../var}/edge
ip=${EDGE_IP:-127.0.0.1}
udp_port=${EDGE_UDP_PORT:-5080}
tls_port=${EDGE_TLS_PORT:-5081}
ng_port=${EDGE_NG_PORT:-22222}
media_ip=${EDGE_MEDIA_IP:-}
media_min=${EDGE_MEDIA_MIN:-40000}
media_max=${EDGE_MEDIA_MAX:-40999}
workers=${EDGE_WORKERS:-2}
worker_ip=${EDGE_WORKER_IP:-127.0.0.1}
worker_base=${EDGE_WORKER_BASE_PORT:-5062}
worker_list=${EDGE_WORKER_LIST:-}
ping_interval=${EDGE_PING_INTERVAL:-5}
fr_timer=${EDGE_FR_TIMER:-2000}
pike_unit=${EDGE_PIKE_UNIT:-2}
pike_density=${EDGE_PIKE_DENSITY:-20}
pike_latency=${EDGE_PIKE_LATENCY:-10}
log_level=${EDGE_LOG_LEVEL:-2}
rtpe_log_level=${EDGE_RTPE_LOG_LEVEL:-5}
cert_names=${EDGE_CERT_NAMES:-}
rtpe_http=${EDGE_RTPE_HTTP:-}
only=${EDGE_ONLY:-}
extra_defs=()

usage() {
    cat <<EOF
usage: edge/run.sh [options]

Runs rtpengine + Kamailio (edge/kamailio.cfg) until SIGTERM/SIGINT.

  --state DIR             state dir (default \$VOICEBOT_STATE/edge or var/edge; now $state)
  --ip IP                 SIP listen address for UDP and TLS (default $ip)
  --udp-port P            SIP/UDP port (default $udp_port)
  --tls-port P            SIP/TLS port (default $tls_port)
  --ng-port P             rtpengine control port on 127.0.0.1 (default $ng_port)
  --media-ip IP           rtpengine media address (default: same as --ip)
  --media-min P           first RTP port (default $media_min)
  --media-max P           last RTP port (default $media_max)
  --workers N             number of gateway workers (default $workers)
  --worker-ip IP          their address (default $worker_ip)
  --worker-base-port P    first worker's SIP port; worker i listens on P+i (default $worker_base)
  --worker-list LIST      explicit comma list of host:port instead of the three above
  --ping-interval S       OPTIONS probe interval in seconds (default $ping_interval)
  --fr-timer MS           give up on a silent worker after MS (default $fr_timer)
  --pike-density N        requests per --pike-unit seconds from one IP before it is
                          blocked (default $pike_density per ${pike_unit}s)
  --pike-unit S           pike sampling window (default $pike_unit)
  --pike-latency S        how long a blocked IP stays blocked after it calms down
                          (default $pike_latency)
  --cert-names "A B"      subjectAltNames of the generated certificate (default: --ip)
  --rtpe-http IP:PORT     also serve rtpengine's HTTP/Prometheus metrics there
  --log-level N           Kamailio debug level (default $log_level; 3 = verbose)
  --only kamailio|rtpengine
                          run just one daemon (one container each in docker/compose.yaml)
  -D NAME=VALUE           extra Kamailio define (repeatable)
  -h, --help

Every option also reads an environment variable, e.g. EDGE_WORKERS, EDGE_UDP_PORT.
EOF
}

while [ $# -gt 0 ]; do
    case $1 in
        --state) state=$2; shift 2 ;;
        --ip) ip=$2; shift 2 ;;
        --udp-port) udp_port=$2; shift 2 ;;
        --tls-port) tls_port=$2; shift 2 ;;
        --ng-port) ng_port=$2; shift 2 ;;
        --media-ip) media_ip=$2; shift 2 ;;
        --media-min) media_min=$2; shift 2 ;;
        --media-max) media_max=$2; shift 2 ;;
        --workers) workers=$2; shift 2 ;;
        --worker-ip) worker_ip=$2; shift 2 ;;
        --worker-base-port) worker_base=$2; shift 2 ;;
        --worker-list) worker_list=$2; shift 2 ;;
        --ping-interval) ping_interval=$2; shift 2 ;;
        --fr-timer) fr_timer=$2; shift 2 ;;
        --pike-density) pike_density=$2; shift 2 ;;
        --pike-unit) pike_unit=$2; shift 2 ;;
        --pike-latency) pike_latency=$2; shift 2 ;;
        --cert-names) cert_names=$2; shift 2 ;;
        --rtpe-http) rtpe_http=$2; shift 2 ;;
        --log-level) log_level=$2; shift 2 ;;
        --only) only=$2; shift 2 ;;
        -D) extra_defs+=(-A "$2"); shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done

die() { echo "run.sh: $*" >&2; exit 2; }
isint() { [[ $2 =~ ^[0-9]+$ ]] || die "$1 must be a number, got '$2'"; }
for v in udp_port tls_port ng_port media_min media_max workers worker_base ping_interval \
         fr_timer pike_density pike_unit pike_latency log_level; do
    isint "--${v//_/-}" "${!v}"
done
[ "$media_min" -lt "$media_max" ] || die "--media-min must be below --media-max"
[ "$udp_port" != "$tls_port" ] || die "--udp-port and --tls-port must differ"
case $only in ""|kamailio|rtpengine) ;; *) die "--only must be kamailio or rtpengine, got '$only'" ;; esac
run_kam=1; run_rtpe=1
[ "$only" != rtpengine ] || run_kam=""
[ "$only" != kamailio ] || run_rtpe=""
if [ -n "$run_kam" ]; then
    command -v kamailio >/dev/null || die "kamailio not found (apt-get install kamailio kamailio-tls-modules)"
    [ -n "$(find /usr/lib -name tls.so -path '*kamailio*' 2>/dev/null | head -1)" ] \
        || die "Kamailio tls module missing (apt-get install kamailio-tls-modules)"
fi
if [ -n "$run_rtpe" ]; then
    command -v rtpengine >/dev/null \
        || die "rtpengine not found (apt-get install --no-install-recommends rtpengine-daemon)"
fi
media_ip=${media_ip:-$ip}

mkdir -p "$state/run"
state=$(cd "$state" && pwd)

# --- dispatcher list: set 1 = the gateway workers ---
ds="$state/dispatcher.list"
{
    echo "# generated by edge/run.sh at $(date -u +%FT%TZ): setid destination flags priority"
    if [ -n "$worker_list" ]; then
        IFS=',' read -ra hosts <<<"$worker_list"
        for h in "${hosts[@]}"; do echo "1 sip:$h 0 0"; done
    else
        [ "$workers" -ge 1 ] || die "--workers must be at least 1"
        for ((i = 0; i < workers; i++)); do echo "1 sip:$worker_ip:$((worker_base + i)) 0 0"; done
    fi
} >"$ds.tmp"
mv "$ds.tmp" "$ds"

# --- TLS certificate (kept across runs) ---
# shellcheck disable=SC2086
[ -z "$run_kam" ] || "$here/gen-cert.sh" "$state/tls" ${cert_names:-$ip}

pids=()
stop() {
    trap - TERM INT
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -f "$state/run/"*.pid
}
trap 'stop; exit 0' TERM INT

# --- rtpengine: userspace only (--table=-1; no kernel module here) ---
if [ -n "$run_rtpe" ]; then
rtpe_args=(--config-file=none --table=-1 --foreground --log-stderr
    --interface="$media_ip" --listen-ng="127.0.0.1:$ng_port"
    --port-min="$media_min" --port-max="$media_max"
    --pidfile="$state/run/rtpengine.pid" --log-level="$rtpe_log_level"
    --delete-delay=0 --timeout=60 --silent-timeout=3600)
[ -z "$rtpe_http" ] || rtpe_args+=(--listen-http="$rtpe_http")
rtpengine "${rtpe_args[@]}" &
pids+=($!)

# wait until rtpengine answers an ng ping (Kamailio marks it dead otherwise)
ready=""
for _ in $(seq 50); do
    if python3 - "$ng_port" <<'EOF' 2>/dev/null; then ready=1; break; fi
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.2)
s.sendto(b"run1 d7:command4:pinge", ("127.0.0.1", int(sys.argv[1])))
sys.exit(0 if b"pong" in s.recv(200) else 1)
EOF
    kill -0 "${pids[0]}" 2>/dev/null || break
    sleep 0.1
done
[ -n "$ready" ] || { echo "run.sh: rtpengine did not start" >&2; stop; exit 1; }
fi

# --- Kamailio: -DD = no daemon but keep its worker processes; logs on stderr ---
if [ -n "$run_kam" ]; then
kamailio -DD -E -f "$here/kamailio.cfg" -Y "$state/run" -P "$state/run/kamailio.pid" \
    -A "EDGE_IP=$ip" -A "UDP_PORT=$udp_port" -A "TLS_PORT=$tls_port" \
    -A "RTPE_SOCK=\"udp:127.0.0.1:$ng_port\"" -A "DS_LIST=\"$ds\"" \
    -A "TLS_CERT=\"$state/tls/edge.crt\"" -A "TLS_KEY=\"$state/tls/edge.key\"" \
    -A "CTL_SOCK=\"unix:$state/run/kamailio.ctl\"" \
    -A "DS_PING_INTERVAL=$ping_interval" -A "FR_TIMER=$fr_timer" \
    -A "PIKE_UNIT=$pike_unit" -A "PIKE_DENSITY=$pike_density" -A "PIKE_LATENCY=$pike_latency" \
    -A "LOG_LEVEL=$log_level" ${extra_defs[@]+"${extra_defs[@]}"} &
pids+=($!)
fi

echo "run.sh: edge up (${only:-kamailio+rtpengine}): sip:$ip:$udp_port (udp), sips $ip:$tls_port (tls), rtpengine ng 127.0.0.1:$ng_port," \
     "media $media_ip:$media_min-$media_max, workers from $ds" >&2

# either daemon exiting on its own is a failure: take the other one down too
set +e
wait -n "${pids[@]}"
rc=$?
echo "run.sh: a daemon exited (status $rc), stopping the edge" >&2
stop
exit 1
