#!/usr/bin/env bash
# The whole load comparison of Prosody, ejabberd and xmppd on this machine, one
# server after the other: installs what is missing (bench/deps.sh), builds
# bin/ (xmppd, xmppctl, xmppbench), makes the shared certificate, then for each
# server: start, provision, check a login, run every scenario with xmppbench,
# stop. Prints a Markdown table (bench/table.py) at the end.
#
#	bench/run.sh                 # 10-15 minutes
#	QUICK=1 bench/run.sh         # ~1.5 minutes, everything smaller (smoke run)
#	SERVERS=xmppd bench/run.sh   # only some servers
#	WEBSOCKET=1 bench/run.sh     # clients over WebSocket (RFC 7395) instead of TCP
#
# Each server is pinned to CPU 1 ($SERVER_CPU) and xmppbench to CPU 0
# ($LOAD_CPU). The server is restarted before every scenario, so each starts
# from a fresh process (the idle scenario's memory figure needs that).
#
# Sizes (defaults; QUICK=1 lowers each one not set explicitly):
#	LOGIN_CLIENTS=4000 IDLE_SESSIONS=10000 CHAT_CLIENTS=500
#	CHAT_RATES=2000,5000,10000,20000,30000,40000,50000,60000 CHAT_STEP=10s
#	MUC_OCCUPANTS=200 MUC_SENDERS=10 MUC_RATES=25,50,100,150,200,300,400
#	(messages/s to one room; deliveries/s are that times the occupants)
#	CONCURRENCY=50 TIMEOUT=5m (per scenario)
#	SCENARIOS="login idle chat muc": which to run, in this order; add
#	team for the team scenario (SCENARIOS=team runs it alone)
#	TEAM_SIZES="250 500 1000": team members, one team run per size, each
#	from fresh state (accounts bench1..benchN, all in one team: xmppd on
#	PostgreSQL with the groups tables, ejabberd with mod_shared_roster,
#	Prosody with mod_groups; see BENCH_TEAM in bench/<server>.sh)
#	TEAM_RATE: logins started per second (xmppbench -rate); empty: all at
#	once, CONCURRENCY at a time. TEAM_SETTLE_TIMEOUT=60s: how long after
#	the last login to wait until everyone has seen everyone's presence
#	IDLE_CURVES=classic: the key exchange the idle scenario's clients offer
#	(xmppbench -curves), one idle run per word: classic (X25519, P-256, as
#	OpenSSL 3.0) and/or default (Go's default, X25519MLKEM768 first), e.g.
#	IDLE_CURVES="classic default"
#	IDLE_SM=0: whether the idle scenario's clients enable stream management
#	(XEP-0198, xmppbench -sm), one idle run per word: 0 and/or 1
# Other knobs: BENCH_DIR (/tmp/xmppd-bench: state and results), FRESH=1
# (default: delete each server's state first; 0 keeps accounts between runs),
# SOURCES (client addresses, default 127.0.0.1-127.0.0.8).
#
# Results: $BENCH_DIR/results.jsonl, one JSON line per scenario and server
# (the previous run's is kept as results.jsonl.prev).
set -euo pipefail

name=run
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
export BENCH_DIR=$bench_dir

if [[ ${QUICK:-0} == 1 ]]; then
	: "${LOGIN_CLIENTS:=100}" "${IDLE_SESSIONS:=500}" "${CHAT_CLIENTS:=20}"
	: "${CHAT_RATES:=500,2000}" "${CHAT_STEP:=2s}" "${TIMEOUT:=1m}"
	: "${MUC_OCCUPANTS:=20}" "${MUC_SENDERS:=5}" "${MUC_RATES:=20,50}"
	: "${TEAM_SIZES:=50}"
else
	: "${LOGIN_CLIENTS:=4000}" "${IDLE_SESSIONS:=10000}" "${CHAT_CLIENTS:=500}"
	: "${CHAT_RATES:=2000,5000,10000,20000,30000,40000,50000,60000}" "${CHAT_STEP:=10s}" "${TIMEOUT:=5m}"
	# Messages/s sent to one room; each is delivered to every occupant.
	: "${MUC_OCCUPANTS:=200}" "${MUC_SENDERS:=10}" "${MUC_RATES:=25,50,100,150,200,300,400}"
	: "${TEAM_SIZES:=250 500 1000}"
fi
: "${TEAM_RATE:=}" "${TEAM_SETTLE_TIMEOUT:=60s}"
: "${CONCURRENCY:=50}" "${FRESH:=1}" "${SERVERS:=prosody ejabberd xmppd}" "${IDLE_CURVES:=classic}" "${IDLE_SM:=0}"
: "${SCENARIOS:=login idle chat muc}"
: "${SOURCES:=127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8}"
load_cpu=${LOAD_CPU:-0}
export SERVER_CPU=${SERVER_CPU:-1}
scram_iterations=4096 # what every server script configures

results=$bench_dir/results.jsonl

# ws_url_of SERVER is the server's WebSocket endpoint (WEBSOCKET=1).
ws_url_of() {
	case $1 in
	prosody) echo ws://127.0.0.1:15281/xmpp-websocket ;;
	ejabberd) echo ws://127.0.0.1:25281/ws ;;
	xmppd) echo ws://127.0.0.1:35281/ws ;;
	esac
}

port_of() {
	case $1 in
	prosody) echo 15222 ;;
	ejabberd) echo 25222 ;;
	xmppd) echo 35222 ;;
	*) die "unknown server '$1' (known: prosody ejabberd xmppd)" ;;
	esac
}

# record SERVER LINE appends one result line, adding "server" if it lacks one.
record() {
	local server=$1 line=$2
	if [[ $line != *'"server":'* ]]; then
		line="{\"server\":\"$server\",${line#\{}"
	fi
	if [[ ${WEBSOCKET:-0} == 1 ]]; then
		line="{\"transport\":\"websocket\",${line#\{}"
	fi
	printf '%s\n' "$line" >>"$results"
}

# record_error SERVER SCENARIO MESSAGE [XMPPBENCH FLAGS...] records a
# scenario that gave no result, with the flags that tell its variants apart
# (-mech, -curves, -sm; the team's -clients and -rate), so that the table
# puts it in the variant's row.
record_error() {
	local server=$1 what=$2 msg=${3//\\/\\\\} extra="" rate=""
	msg=${msg//\"/\\\"}
	shift 3
	while (($#)); do
		case $1 in
		-mech) extra+=",\"mech\":\"$2\"" && shift ;;
		-clients) [[ $what == team ]] && extra+=",\"clients\":$2"; shift ;;
		-rate) extra+=",\"rate_per_s\":$2" rate=$2 && shift ;;
		-curves) extra+=",\"curves\":\"$2\"" && shift ;;
		-sm) extra+=',"stream_management":true' ;;
		esac
		shift
	done
	if [[ $what == team && -z $rate ]]; then
		extra+=",\"concurrency\":$CONCURRENCY"
	fi
	printf '{"scenario":"%s","server":"%s","error":"%s"%s}\n' "$what" "$server" "$msg" "$extra" >>"$results"
}

# scenario SERVER SCENARIO [XMPPBENCH FLAGS...] restarts the server, runs
# one xmppbench scenario against it on the load CPU and records its result.
scenario() {
	local server=$1 what=$2 port pid out status=0 line got=0
	shift 2
	port=$(port_of "$server")
	"$here/$server.sh" stop
	"$here/$server.sh" start
	pid=$(cat "$bench_dir/$server/pid")
	local transport=()
	if [[ ${WEBSOCKET:-0} == 1 ]]; then
		transport=(-url "$(ws_url_of "$server")")
	fi
	log "$server: $what ${transport[*]} $*"
	out=$(taskset -c "$load_cpu" "$root/bin/xmppbench" -scenario "$what" -server "$server" "${transport[@]}" \
		-addr "127.0.0.1:$port" -domain "$bench_domain" -user 'bench%d' -first 1 \
		-password "$bench_password" -sources "$SOURCES" -concurrency "$CONCURRENCY" \
		-pid "$pid" -timeout "$TIMEOUT" "$@") || status=$?
	while IFS= read -r line; do
		[[ $line == '{'* ]] || continue
		record "$server" "$line"
		got=1
		printf '%s\n' "$line" >&2
	done <<<"$out"
	if ((got == 0)); then
		record_error "$server" "$what" "xmppbench exited with status $status and printed no result" "$@"
	fi
	alive "$pid" || log "warning: $server (pid $pid) is gone after the $what scenario"
}

run_server() {
	local server=$1 port accounts what others=()
	for what in ${SCENARIOS//,/ }; do
		[[ $what == team ]] || others+=("$what")
	done
	((${#others[@]} > 0)) || return 0
	port=$(port_of "$server")
	accounts=$LOGIN_CLIENTS
	((IDLE_SESSIONS > accounts)) && accounts=$IDLE_SESSIONS
	((CHAT_CLIENTS > accounts)) && accounts=$CHAT_CLIENTS

	"$here/$server.sh" stop
	if [[ $FRESH == 1 ]]; then
		rm -rf "${bench_dir:?}/$server"
	fi
	"$here/$server.sh" start
	"$here/$server.sh" provision "$accounts"
	if ! /usr/bin/python3 "$here/probe.py" -port "$port" -user bench1 >&2 ||
		! /usr/bin/python3 "$here/probe.py" -port "$port" -user "bench$accounts" >&2; then
		local what
		for what in login idle chat muc; do
			record_error "$server" "$what" "the probe login with bench1/bench$accounts failed; not measured"
		done
		"$here/$server.sh" stop
		return
	fi

	local curves sm
	for what in "${others[@]}"; do
		case $what in
		login)
			scenario "$server" login -mech SCRAM-SHA-1 -clients "$LOGIN_CLIENTS"
			scenario "$server" login -mech PLAIN -clients "$LOGIN_CLIENTS"
			;;
		idle)
			for curves in ${IDLE_CURVES//,/ }; do
				for sm in ${IDLE_SM//,/ }; do
					if [[ $sm == 1 ]]; then
						scenario "$server" idle -clients "$IDLE_SESSIONS" -curves "$curves" -sm
					else
						scenario "$server" idle -clients "$IDLE_SESSIONS" -curves "$curves"
					fi
				done
			done
			;;
		chat) scenario "$server" chat -clients "$CHAT_CLIENTS" -rates "$CHAT_RATES" -step "$CHAT_STEP" ;;
		muc) scenario "$server" muc -clients "$MUC_OCCUPANTS" -senders "$MUC_SENDERS" -rates "$MUC_RATES" -step "$CHAT_STEP" ;;
		*) die "unknown scenario '$what' in SCENARIOS (known: login idle chat muc team)" ;;
		esac
	done
	"$here/$server.sh" stop
}

# run_team SERVER runs the team scenario once per TEAM_SIZES, each time
# from fresh state: accounts bench1..benchN and one team of all of them,
# set up the way the server's own users would (BENCH_TEAM=1 in the server
# scripts), then a fresh process for the run.
run_team() {
	local server=$1 port n pace=() db=()
	port=$(port_of "$server")
	if [[ -n $TEAM_RATE ]]; then
		pace=(-rate "$TEAM_RATE")
	fi
	# xmppd's team lives in PostgreSQL, another process: its CPU is
	# reported beside the server's (Prosody and ejabberd keep theirs in
	# their own process).
	[[ $server == xmppd ]] && db=(-db-comm postgres)
	export BENCH_TEAM=1
	for n in $TEAM_SIZES; do
		"$here/$server.sh" stop
		rm -rf "${bench_dir:?}/$server"
		"$here/$server.sh" start
		"$here/$server.sh" provision "$n"
		"$here/$server.sh" team "$n"
		if ! /usr/bin/python3 "$here/probe.py" -port "$port" -user bench1 >&2 ||
			! /usr/bin/python3 "$here/probe.py" -port "$port" -user "bench$n" >&2; then
			record_error "$server" team "the probe login with bench1/bench$n failed; not measured" -clients "$n" "${pace[@]}"
			continue
		fi
		scenario "$server" team -clients "$n" -settle-timeout "$TEAM_SETTLE_TIMEOUT" "${pace[@]}" "${db[@]}"
	done
	"$here/$server.sh" stop
	unset BENCH_TEAM
}

main() {
	local started=$SECONDS server
	"$here/deps.sh"
	log "building bin/ (xmppd, xmppctl, xmppbench)"
	(cd "$root" && go build -o bin/ ./cmd/...)
	[[ -x $root/bin/xmppbench ]] || die "bin/xmppbench was not built (cmd/xmppbench missing?)"
	ensure_cert

	mkdir -p "$bench_dir"
	[[ -f $results ]] && mv -f "$results" "$results.prev"
	: >"$results"
	log "servers: $SERVERS; scenarios: $SCENARIOS; login $LOGIN_CLIENTS, idle $IDLE_SESSIONS, chat $CHAT_CLIENTS clients at $CHAT_RATES/s for $CHAT_STEP each; team sizes $TEAM_SIZES${TEAM_RATE:+ at $TEAM_RATE logins/s}"

	for server in $SERVERS; do
		port_of "$server" >/dev/null
	done
	for server in $SERVERS; do
		log "=== $server"
		run_server "$server"
		if [[ " ${SCENARIOS//,/ } " == *" team "* ]]; then
			run_team "$server"
		fi
	done

	log "done in $((SECONDS - started))s; results in $results"
	echo
	/usr/bin/python3 "$here/table.py" -scram-iterations "$scram_iterations" "$results"
}

# Whatever happens, leave no server running.
cleanup() {
	local server
	for server in $SERVERS; do
		"$here/$server.sh" stop >/dev/null 2>&1 || true
	done
}
trap cleanup EXIT

main
