#!/usr/bin/env bash
# The soak (issue 21): CLIENTS clients over TCP, WebSocket and BOSH against
# one private xmppd for DURATION, chatting, changing presence, talking in
# rooms, leaving (cleanly and abruptly) and coming back, while xmppbench
# samples the server's memory, goroutines and open files every
# SAMPLE_EVERY. They must stay flat, no message may be lost, and the
# server's log must have no ERROR line.
#
#	scripts/soak.sh                          # 2,000 clients, 30 minutes
#	DURATION=2m CLIENTS=300 scripts/soak.sh  # a short one
#
# Builds xmppd, xmppctl and xmppbench into the state directory (SOAK_DIR,
# default a new /tmp/xmppd-soak.XXXXXX, kept afterwards), writes a
# configuration: the defaults (SQLite, archive on, pings, info log) but for
# the per-address limits that 2,000 clients from a few loopback addresses
# would hit; creates soak1..soakN with `xmppctl user import`, starts xmppd
# and runs `xmppbench -scenario soak`. Results, in bench/results/ (RESULTS):
#	<date>-soak.jsonl          a JSON line per sample, then the result
#	<date>-soak-progress.txt   xmppbench's progress
#	<date>-soak-server-log.txt the server's WARN and ERROR lines (the whole
#	                           log stays in the state directory)
# Other knobs: SAMPLE_EVERY=30s, SOURCES (client addresses, default
# 127.0.0.1-127.0.0.16), RATE=50 (logins per second), CONCURRENCY=50,
# PORT_BASE=35400 (c2s PORT_BASE+22, http +80, admin +81), SOAK_ARGS (more
# xmppbench flags, e.g. "-msg-every 10s"), LABEL (added to the file names).
set -euo pipefail

name=soak
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
work=${SOAK_DIR:-$(mktemp -d /tmp/xmppd-soak.XXXXXX)}
export BENCH_DIR=$work
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"

duration=${DURATION:-30m}
clients=${CLIENTS:-2000}
sample=${SAMPLE_EVERY:-30s}
rate=${RATE:-50}
concurrency=${CONCURRENCY:-50}
base=${PORT_BASE:-35400}
c2s=$((base + 22)) http=$((base + 80)) admin=$((base + 81))
sources=${SOURCES:-$(seq -s, -f '127.0.0.%g' 1 16)}
results=${RESULTS:-$root/bench/results}
stamp=$(date -u +%Y-%m-%d)${LABEL:+-$LABEL}
out=$results/$stamp-soak
bin=$work/bin
config=$work/xmppd.yaml
server_log=$work/xmppd.log

for p in $c2s $http $admin; do
	port_open "$p" && die "127.0.0.1:$p is in use (set PORT_BASE)"
done
mkdir -p "$results" "$bin" "$work/data"

log "building xmppd, xmppctl and xmppbench into $bin"
(cd "$root" && go build -o "$bin/" ./cmd/xmppd ./cmd/xmppctl ./cmd/xmppbench)
copy_cert "$work/server-tls" root

cat >"$config" <<EOF
# Written by scripts/soak.sh. The defaults, but for the per-address limits:
# $clients clients come from a few loopback addresses.
domain: localhost
data_dir: $work/data
listen:
  c2s: 127.0.0.1:$c2s
  c2s_direct_tls: ""
  http: 127.0.0.1:$http
  s2s: ""
  admin: 127.0.0.1:$admin
tls:
  cert: $work/server-tls/cert.pem
  key: $work/server-tls/key.pem
storage:
  backend: sqlite
limits:
  max_unauthenticated_per_ip: 512
  connection_rate_per_ip: 500
  connection_burst_per_ip: 2000
log:
  level: info
EOF

n=$(nofile)
(
	ulimit -n "$n"
	exec "$bin/xmppd" -config "$config"
) </dev/null >>"$server_log" 2>&1 &
pid=$!
echo "$pid" >"$work/pid"
trap 'stop_pidfile "$work/pid" 30' EXIT
wait_port "$c2s" "$pid" 30 "$server_log"
log "xmppd running: pid $pid, c2s 127.0.0.1:$c2s, http 127.0.0.1:$http, admin 127.0.0.1:$admin, $(nofile_note "$n"); state in $work"

# The accounts, with `xmppctl user import` (xmppd has made the database).
log "creating soak1..soak$clients"
for ((i = 1; i <= clients; i++)); do
	echo "soak$i@localhost $bench_password"
done | "$bin/xmppctl" -config "$config" user import | tail -n 2 >&2

status=0
# shellcheck disable=SC2086 # SOAK_ARGS is a list of flags
(
	ulimit -n "$n"
	exec "$bin/xmppbench" -scenario soak -server xmppd -domain localhost -user 'soak%d' \
		-addr "127.0.0.1:$c2s" -url "ws://127.0.0.1:$http/ws" -bosh-url "http://127.0.0.1:$http/http-bind" \
		-metrics-url "http://127.0.0.1:$admin/metrics" -pid "$pid" -log "$server_log" \
		-clients "$clients" -rate "$rate" -concurrency "$concurrency" -sources "$sources" \
		-duration "$duration" -sample-every "$sample" -timeout 10m ${SOAK_ARGS:-}
) >"$out.jsonl" 2> >(tee "$out-progress.txt" >&2) || status=$?

stop_pidfile "$work/pid" 30
trap - EXIT
grep -E ' level=(ERROR|WARN) ' "$server_log" >"$out-server-log.txt" || true
log "server log: $(wc -l <"$server_log") lines, $(grep -c ' level=ERROR ' "$server_log" || true) ERROR, $(grep -c ' level=WARN ' "$server_log" || true) WARN ($server_log)"
log "results: $out.jsonl (exit status $status)"
tail -n 1 "$out.jsonl" >&2
exit "$status"
