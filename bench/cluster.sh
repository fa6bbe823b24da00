#!/usr/bin/env bash
# The cluster benchmark (issue 20): one-to-one chat against 1, 2 and 3 xmppd
# nodes (this repository's bin/xmppd) that share one PostgreSQL and one
# Redis and route to each other over the Redis bus, at a few fixed rates;
# then, with 2 nodes, every pair on one node against every pair across the
# two, which prices a cross-node message against a local one.
#
#	bench/cluster.sh        # about 3 minutes
#
# Placement (this machine has 2 cores): every node is pinned to CPU 1
# ($NODE_CPU), so 1, 2 and 3 nodes share one core's budget, and xmppbench to
# CPU 0 ($LOAD_CPU). Go sizes GOMAXPROCS from the affinity: one P per node.
# Redis and PostgreSQL are the machine's own services, unpinned: they run
# on whichever core is free, mostly beside the load tool. So the runs show
# what a message costs in a cluster (CPU per message on the nodes and in
# Redis), not added capacity: more nodes on the same core cannot deliver
# more.
#
# Each run starts its nodes afresh (node1..nodeN, presence.node
# bench-nodeI, c2s with STARTTLS on a free loopback port each), runs
# xmppbench's chat scenario with CLIENTS clients, client i on node i mod N,
# offering each of RATES messages/s for STEP, and stops them. State:
# $BENCH_DIR/cluster (default /tmp/xmppd-bench/cluster). PostgreSQL: the
# database `test` on 127.0.0.1:5432 ($XMPPD_TEST_POSTGRES, a postgres://
# URL, names another), in the schema bench_cluster, made afresh at the start
# and dropped at the end. Redis: $REDIS_ADDR (127.0.0.1:6379), every key under
# the prefix xmppd-bench-cluster:, deleted at the start and the end.
# Accounts bench1..benchCLIENTS are provisioned once, before the runs.
#
# Knobs: CLIENTS=240 (a multiple of 12, as -pairs half with 3 nodes needs),
# RATES=5000,10000, STEP=10s.
#
# Then one chat room (the muc scenario) on 1 node and on 3, occupant i on
# node i mod N, so that on 3 nodes two thirds of every message's copies go
# to other nodes: MUC_CLIENTS=60 occupants, MUC_SENDERS=6 of them sending
# MUC_RATES=100,200 messages/s in all (6,000 and 12,000 deliveries/s).
#
# CASES=2-local,muc-3-nodes runs only those; PPROF=1 serves node I's
# profiler on 127.0.0.1:606I (xmppd -pprof).
#
# Output: one JSON line per run (xmppbench's chat result, with "run",
# "nodes" and "redis_info_cpu_seconds", Redis's used_cpu_sys+used_cpu_user
# from INFO cpu over the whole xmppbench run, logins included), then a
# table per step, then the cost of a cross-node message.
set -euo pipefail

name=cluster
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

: "${CLIENTS:=240}" "${RATES:=5000,10000}" "${STEP:=10s}"
: "${MUC_CLIENTS:=60}" "${MUC_SENDERS:=6}" "${MUC_RATES:=100,200}"
: "${REDIS_ADDR:=127.0.0.1:6379}"
node_cpu=${NODE_CPU:-1}
load_cpu=${LOAD_CPU:-0}
work=$bench_dir/cluster
bin=$root/bin
pg_base=${XMPPD_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
pg_schema=bench_cluster
prefix=xmppd-bench-cluster:
max_nodes=3
results=$work/results.jsonl

psql_run() {
	PGOPTIONS="-c client_min_messages=warning" psql "$pg_base" -X -q -v ON_ERROR_STOP=1 "$@"
}

pg_dsn() {
	if [[ $pg_base == *'?'* ]]; then
		printf '%s&search_path=%s' "$pg_base" "$pg_schema"
	else
		printf '%s?search_path=%s' "$pg_base" "$pg_schema"
	fi
}

redis() { redis-cli -h "${REDIS_ADDR%:*}" -p "${REDIS_ADDR##*:}" "$@"; }

# redis_clean deletes this benchmark's keys (and no other).
redis_clean() {
	redis --scan --pattern "${prefix}*" | xargs -r -n 500 redis-cli -h "${REDIS_ADDR%:*}" -p "${REDIS_ADDR##*:}" del >/dev/null
}

# redis_cpu prints Redis's CPU seconds so far (INFO cpu: main process, user
# and system).
redis_cpu() {
	redis info cpu | tr -d '\r' | awk -F: '$1 == "used_cpu_sys" || $1 == "used_cpu_user" {s += $2} END {printf "%.3f", s}'
}

# free_port prints a TCP port that nothing on loopback listens on now.
free_port() {
	/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

write_config() {
	local i=$1 port=$2 dir
	dir=$work/node$i
	cat >"$dir/xmppd.yaml" <<-EOF
		# Written by bench/cluster.sh for node $i; rewritten on every start.
		domain: $bench_domain
		data_dir: $dir/data
		listen:
		  c2s: 127.0.0.1:$port
		  c2s_direct_tls: ""
		  http: ""
		  s2s: ""
		  admin: ""
		tls:
		  cert: $dir/tls/cert.pem
		  key: $dir/tls/key.pem
		# Shared by every node: the accounts in PostgreSQL, the sessions
		# and the bus in Redis.
		storage:
		  backend: postgres
		  postgres_dsn: "$(pg_dsn)"
		presence:
		  backend: redis
		  redis: $REDIS_ADDR
		  redis_prefix: "$prefix"
		  node: bench-node$i
		# As bench/xmppd.sh (bench/lib.sh).
		$(server_yaml)
	EOF
}

# start_node I starts node I pinned to node_cpu, and waits for its port.
start_node() {
	local i=$1 dir port n pid
	dir=$work/node$i
	port=$(free_port)
	install -d -m 0700 "$dir" "$dir/data"
	copy_cert "$dir/tls" root
	write_config "$i" "$port"
	n=$(nofile)
	(
		ulimit -n "$n"
		exec taskset -c "$node_cpu" "$bin/xmppd" -config "$dir/xmppd.yaml" ${PPROF:+-pprof "127.0.0.1:$((6060 + i))"}
	) </dev/null >>"$dir/xmppd.log" 2>&1 &
	pid=$!
	disown
	echo "$pid" >"$dir/pid"
	echo "$port" >"$dir/port"
	wait_port "$port" "$pid" 30 "$dir/xmppd.log"
	check_pinned "$pid" "$node_cpu" || true
}

stop_nodes() {
	local i
	for ((i = 1; i <= max_nodes; i++)); do
		[[ -f $work/node$i/pid ]] && stop_pidfile "$work/node$i/pid" 30
	done
	return 0
}

# provision adds bench1..benchCLIENTS through node 1's configuration (the
# accounts are in the shared database).
provision() {
	local count
	log "importing $CLIENTS accounts (xmppctl user import)"
	for ((i = 1; i <= CLIENTS; i++)); do
		printf 'bench%d@%s %s\n' "$i" "$bench_domain" "$bench_password"
	done | "$bin/xmppctl" -config "$work/node1/xmppd.yaml" user import | tail -n 1 >&2
	count=$("$bin/xmppctl" -config "$work/node1/xmppd.yaml" user list | grep -c "^bench[0-9]*@$bench_domain\$" || true)
	((count >= CLIENTS)) || die "only $count bench accounts after provisioning, want $CLIENTS"
}

# run_case LABEL NODES PAIRS [muc]: start NODES nodes, run chat with -pairs
# PAIRS (or, with muc, the muc scenario: MUC_CLIENTS clients in one room,
# MUC_SENDERS of them sending at MUC_RATES), stop them, record the result.
run_case() {
	if [[ -n ${CASES:-} && ,$CASES, != *",$1,"* ]]; then
		return
	fi
	local label=$1 nodes=$2 pairs=$3 scenario=${4:-chat} i addrs="" pids="" out line before after status=0
	local -a load=(-scenario chat -pairs "$pairs" -clients "$CLIENTS" -rates "$RATES")
	if [[ $scenario == muc ]]; then
		load=(-scenario muc -senders "$MUC_SENDERS" -clients "$MUC_CLIENTS" -rates "$MUC_RATES")
	fi
	for ((i = 1; i <= nodes; i++)); do
		start_node "$i"
		addrs+=${addrs:+,}127.0.0.1:$(cat "$work/node$i/port")
		pids+=${pids:+,}$(cat "$work/node$i/pid")
	done
	log "$label: $nodes node(s) ($addrs), ${load[*]} for $STEP each"
	before=$(redis_cpu)
	out=$(taskset -c "$load_cpu" "$bin/xmppbench" "${load[@]}" -server "xmppd-$label" -addr "$addrs" \
		-domain "$bench_domain" -user 'bench%d' -first 1 -password "$bench_password" \
		-sources 127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4 -concurrency 50 -timeout 2m \
		-step "$STEP" -cpu-pids "$pids" -db-comm redis-server) || status=$?
	after=$(redis_cpu)
	for ((i = 1; i <= nodes; i++)); do
		alive "$(cat "$work/node$i/pid")" || log "warning: node $i is gone after the $label run"
	done
	stop_nodes
	line=$(printf '%s\n' "$out" | grep '^{' | tail -n 1) || true
	[[ -n $line ]] || die "$label: xmppbench exited with status $status and printed no result"
	line="{\"run\":\"$label\",\"nodes\":$nodes,\"redis_info_cpu_seconds\":$(awk -v a="$after" -v b="$before" 'BEGIN {printf "%.2f", a - b}'),${line#\{}"
	printf '%s\n' "$line" | tee -a "$results"
}

cleanup() {
	stop_nodes
	redis_clean || true
	psql_run -c "DROP SCHEMA IF EXISTS $pg_schema CASCADE" || true
}

main() {
	local started=$SECONDS
	command -v psql >/dev/null || die "psql is missing (apt-get install postgresql-client)"
	command -v redis-cli >/dev/null || die "redis-cli is missing (apt-get install redis-tools)"
	[[ $(redis ping) == PONG ]] || die "Redis at $REDIS_ADDR does not answer"
	log "building bin/ (go build ./cmd/...)"
	(cd "$root" && go build -o bin/ ./cmd/...)
	stop_nodes
	rm -rf "$work"
	mkdir -p "$work"
	: >"$results"
	redis_clean
	psql_run <<-EOF || die "could not make the schema $pg_schema in $pg_base"
		DROP SCHEMA IF EXISTS $pg_schema CASCADE;
		CREATE SCHEMA $pg_schema;
	EOF
	# Node 1 once alone: it migrates the schema; then the accounts.
	start_node 1
	provision
	stop_nodes

	log "nodes on CPU $node_cpu, xmppbench on CPU $load_cpu, Redis and PostgreSQL unpinned; $(nproc) CPUs"
	run_case 1-node 1 half
	run_case 2-nodes 2 half
	run_case 3-nodes 3 half
	run_case 2-local 2 local
	run_case 2-cross 2 cross
	run_case muc-1-node 1 - muc
	run_case muc-3-nodes 3 - muc
	log "done in $((SECONDS - started))s; results in $results"
	echo
	/usr/bin/python3 - "$results" <<-'EOF'
		import json, sys
		runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
		print("| run | nodes | pairs | offered/s | delivered/s | loss | p50 ms | p99 ms | nodes CPU s | us/msg | Redis CPU s | Redis us/msg | load CPU s |")
		print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
		cost = {}
		for r in runs:
		    for s in r.get("steps") or []:
		        n = s.get("delivered") or 0
		        red = s.get("db_cpu_seconds")
		        red_us = 1e6 * red / n if n and red is not None else float("nan")
		        print("| %s | %d | %s | %d | %.0f | %.4f | %.2f | %.2f | %.2f | %.1f | %.2f | %.1f | %.2f |" % (
		            r["run"], r["nodes"], r.get("pairs", ""), s["offered_per_s"], s["delivered_per_s"], s["loss"],
		            s["latency_ms"]["p50"], s["latency_ms"]["p99"], s.get("server_cpu_seconds", float("nan")),
		            s.get("server_cpu_us_per_msg", float("nan")), red if red is not None else float("nan"), red_us,
		            s.get("load_cpu_seconds", float("nan"))))
		        cost[(r["run"], s["offered_per_s"])] = (s.get("server_cpu_us_per_msg"), red_us)
		print()
		print("Redis CPU over each whole xmppbench run (INFO cpu, logins included): " +
		      ", ".join("%s %.2f s" % (r["run"], r["redis_info_cpu_seconds"]) for r in runs))
		for (run, rate), (us, red) in sorted(cost.items()):
		    if run != "2-cross" or ("2-local", rate) not in cost:
		        continue
		    lus, lred = cost[("2-local", rate)]
		    if us is None or lus is None:
		        continue
		    print("at %d msgs/s a cross-node message costs %.1f us of node CPU against %.1f local (%.2fx), plus %.1f us of Redis (local: %.1f)" % (
		        rate, us, lus, us / lus if lus else float("nan"), red, lred))
	EOF
}

# Whatever happens, leave no node running and none of our state behind.
trap cleanup EXIT

main
