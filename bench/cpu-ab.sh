#!/usr/bin/env bash
# Server CPU per chat message for two xmppd builds, run alternately under
# the same fixed load: the comparison that finds a cost on the message path
# that the best-rate figure of bench/run.sh hides in its noise (the best rate
# depends on one step's p99; CPU per message does not).
#
#	bench/cpu-ab.sh BIN_DIR_A BIN_DIR_B     # each holds xmppd and xmppctl
#
# e.g. git worktree add /tmp/base <commit> && (cd /tmp/base && go build -o
# /tmp/base/bin/ ./cmd/...) && go build -o bin/ ./cmd/... && bench/cpu-ab.sh
# /tmp/base/bin bin
#
# For each of REPS rounds (default 3), each build in turn: bench/xmppd.sh
# starts it (pinned to $SERVER_CPU), xmppbench (pinned to CPU 0, this
# repository's bin/xmppbench) signs in CLIENTS (500) clients and offers RATE
# (25000) messages/s for STEP (20s). A line per run: server CPU seconds
# (utime+stime from /proc), messages delivered, microseconds of CPU per
# message, write and read system calls and bytes written per message, and
# the latency. Each build keeps its own state under $BENCH_DIR/cpu-ab.
set -euo pipefail

name=cpu-ab
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

(($# == 2)) || die "usage: $0 BIN_DIR_A BIN_DIR_B"
: "${REPS:=3}" "${RATE:=25000}" "${STEP:=20s}" "${CLIENTS:=500}"
[[ -x $root/bin/xmppbench ]] || (cd "$root" && go build -o bin/ ./cmd/xmppbench)

# proc PID FIELD prints a counter of the process: cpu (clock ticks),
# syscw, syscr, wchar.
proc() {
	case $2 in
	cpu) awk '{print $14 + $15}' "/proc/$1/stat" ;;
	*) awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/io" ;;
	esac
}

run() {
	local label=$1 bin=$2 pid out
	local -A before after
	export XMPPD_BIN_DIR=$bin XMPPD_DIR=$bench_dir/cpu-ab/$label
	"$here/xmppd.sh" stop >/dev/null 2>&1 || true
	"$here/xmppd.sh" start 2>/dev/null
	if [[ ! -f $XMPPD_DIR/provisioned-$CLIENTS ]]; then
		"$here/xmppd.sh" provision "$CLIENTS" 2>/dev/null
		touch "$XMPPD_DIR/provisioned-$CLIENTS"
	fi
	pid=$(cat "$XMPPD_DIR/pid")
	for k in cpu syscw syscr wchar; do before[$k]=$(proc "$pid" $k); done
	out=$(taskset -c 0 "$root/bin/xmppbench" -scenario chat -server xmppd -addr 127.0.0.1:35222 \
		-domain "$bench_domain" -user 'bench%d' -first 1 -password "$bench_password" \
		-sources 127.0.0.1,127.0.0.2 -concurrency 50 -pid "$pid" -timeout 5m \
		-clients "$CLIENTS" -rates "$RATE" -step "$STEP" 2>/dev/null) || true
	for k in cpu syscw syscr wchar; do after[$k]=$(proc "$pid" $k); done
	"$here/xmppd.sh" stop >/dev/null 2>&1
	printf '%s\n' "$out" | grep '^{' | tail -n 1 | /usr/bin/python3 -c '
import json, sys
label, rep, hz = sys.argv[1], sys.argv[2], float(sys.argv[3])
d = [float(x) for x in sys.argv[4:]]
r = json.loads(sys.stdin.read())
s = (r.get("steps") or [{}])[-1]
n = s.get("delivered") or 0
if not n:
    sys.exit("%s round %s: nothing delivered: %s" % (label, rep, r))
cpu = d[0] / hz
print("%s round %s: cpu %.2f s, %d delivered, %.2f us/msg, %.3f writes/msg, %.3f reads/msg, %.0f B/msg, p50 %.2f ms, p99 %.2f ms" % (
    label, rep, cpu, n, cpu * 1e6 / n, d[1] / n, d[2] / n, d[3] / n,
    s["latency_ms"]["p50"], s["latency_ms"]["p99"]))
' "$label" "$rep" "$(getconf CLK_TCK)" \
		$((after[cpu] - before[cpu])) $((after[syscw] - before[syscw])) \
		$((after[syscr] - before[syscr])) $((after[wchar] - before[wchar]))
}

for ((rep = 1; rep <= REPS; rep++)); do
	run A "$(cd "$1" && pwd)"
	run B "$(cd "$2" && pwd)"
done
