#!/usr/bin/env bash
# Runs a private xmppd (this repository's bin/xmppd) for the load comparison:
# domain localhost, c2s with required STARTTLS on 127.0.0.1:35222 and no
# other listener, state under ${BENCH_DIR:-/tmp/xmppd-bench}/xmppd, pinned to
# CPU 1 ($SERVER_CPU). Go sizes GOMAXPROCS from the affinity, so it runs on
# one P, as ejabberd runs one scheduler.
#
#	bench/xmppd.sh start | stop | provision N | team N
#
# With BENCH_TEAM=1 (the team scenario) it stores everything in PostgreSQL,
# as a deployment with teams does: the database `test` on 127.0.0.1:5432
# (user postgres, trust authentication; $XMPPD_TEST_POSTGRES may name another
# server as a postgres:// URL), in a schema of its own, bench_team, which is
# made afresh whenever the state directory is. `team N` writes the team with
# plain SQL through psql, as docs/teams.md shows an app doing.
#
# Builds bin/ first when bin/xmppd or bin/xmppctl is missing. The settings that
# must match prosody.sh and ejabberd.sh are marked "same:".
set -euo pipefail

name=xmppd
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

port=35222
# With WEBSOCKET=1, also XMPP over WebSocket on 127.0.0.1:$ws_port/ws.
ws_port=35281
cpu=${SERVER_CPU:-1}
work=${XMPPD_DIR:-$bench_dir/xmppd}
bin=${XMPPD_BIN_DIR:-$root/bin}
config=$work/xmppd.yaml
logs=$work/log
pidfile=$work/pid
pg_base=${XMPPD_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
pg_schema=bench_team
# The marker says that the schema was made for this state directory.
pg_marker=$work/postgres-schema

write_config() {
	cat >"$config" <<-EOF
		# Written by bench/xmppd.sh; rewritten on every start.
		domain: $bench_domain
		data_dir: $work/data

		# Only c2s with STARTTLS, on loopback; no direct-TLS or s2s listener,
		# and HTTP (WebSocket) only with WEBSOCKET=1.
		listen:
		  c2s: 127.0.0.1:$port
		  c2s_direct_tls: ""
		  http: "$( [[ ${WEBSOCKET:-0} == 1 ]] && echo "127.0.0.1:$ws_port")"
		  s2s: ""
		  admin: ""

		# same: the shared certificate (xmppd accepts TLS 1.2 and later).
		tls:
		  cert: $work/tls/cert.pem
		  key: $work/tls/key.pem

		$(storage_config)

		$(server_yaml)
	EOF
}

storage_config() {
	if [[ ${BENCH_TEAM:-0} == 1 ]]; then
		cat <<-EOF
			# The team scenario: PostgreSQL, where an app writes its teams.
			storage:
			  backend: postgres
			  postgres_dsn: "$(pg_dsn)"
		EOF
	else
		cat <<-EOF
			# Embedded storage, as Prosody's files and ejabberd's Mnesia.
			storage:
			  backend: sqlite
		EOF
	fi
}

# pg_dsn is pg_base with xmppd's schema as its search_path.
pg_dsn() {
	if [[ $pg_base == *'?'* ]]; then
		printf '%s&search_path=%s' "$pg_base" "$pg_schema"
	else
		printf '%s?search_path=%s' "$pg_base" "$pg_schema"
	fi
}

# psql_run runs SQL from stdin against pg_base; psql ignores the URL's
# search_path, so the SQL names the schema.
psql_run() {
	PGOPTIONS="-c client_min_messages=warning" psql "$pg_base" -X -q -v ON_ERROR_STOP=1 "$@"
}

# fresh_schema drops and makes the schema, unless this state directory has
# it already.
fresh_schema() {
	[[ -f $pg_marker ]] && return
	command -v psql >/dev/null || die "psql is missing (apt-get install postgresql-client)"
	log "making the schema $pg_schema afresh in $pg_base"
	psql_run <<-EOF || die "could not make the schema $pg_schema in $pg_base"
		DROP SCHEMA IF EXISTS $pg_schema CASCADE;
		CREATE SCHEMA $pg_schema;
	EOF
	touch "$pg_marker"
}

ensure_built() {
	[[ -x $bin/xmppd && -x $bin/xmppctl ]] && return
	log "building $bin (go build ./cmd/...)"
	(cd "$root" && go build -o "$bin/" ./cmd/...)
}

start() {
	if [[ -s $pidfile ]] && alive "$(cat "$pidfile")"; then
		die "already running (pid $(cat "$pidfile"))"
	fi
	port_open "$port" && die "127.0.0.1:$port is already in use"
	ensure_built
	install -d -m 0700 "$work" "$work/data" "$logs"
	copy_cert "$work/tls" root
	[[ ${BENCH_TEAM:-0} == 1 ]] && fresh_schema
	write_config

	local n
	n=$(nofile)
	# taskset execs xmppd, so $! is xmppd's PID.
	(
		ulimit -n "$n"
		# XMPPD_ARGS: more flags, e.g. "-pprof 127.0.0.1:6060" to profile a run.
		# shellcheck disable=SC2086
		exec taskset -c "$cpu" "$bin/xmppd" -config "$config" ${XMPPD_ARGS:-}
	) </dev/null >>"$logs/xmppd.log" 2>&1 &
	local pid=$!
	disown
	echo "$pid" >"$pidfile"
	wait_port "$port" "$pid" 30 "$logs/xmppd.log"
	check_pinned "$pid" "$cpu" || true
	log "running: pid $pid ($(cat "/proc/$pid/comm")), 127.0.0.1:$port, $(nofile_note "$n")"
}

stop() {
	stop_pidfile "$pidfile" 30
	log "stopped"
}

# provision N adds the missing accounts among bench1..benchN with
# `xmppctl user import` (one process, keys derived on every core).
provision() {
	local n=$1 i
	[[ -f $config ]] || die "no $config: run '$0 start' first"
	ensure_built
	declare -A have=()
	while read -r u; do
		[[ -n $u ]] && have[$u]=1
	done < <("$bin/xmppctl" -config "$config" user list)
	local missing=()
	for ((i = 1; i <= n; i++)); do
		[[ -n ${have[bench$i@$bench_domain]:-} ]] || missing+=("bench$i@$bench_domain")
	done
	if ((${#missing[@]} == 0)); then
		log "bench1..bench$n exist"
		return
	fi
	log "importing ${#missing[@]} accounts (xmppctl user import)"
	printf "%s $bench_password\n" "${missing[@]}" |
		"$bin/xmppctl" -config "$config" user import | tail -n 3 >&2
	local count
	count=$("$bin/xmppctl" -config "$config" user list | grep -c "^bench[0-9]*@$bench_domain\$" || true)
	((count >= n)) || die "only $count bench accounts after provisioning, want $n"
	log "provisioned bench1..bench$n"
}

# team N makes bench1..benchN the members of one team, the only group,
# with plain SQL as an app would write it (docs/teams.md). xmppd must have
# run once on the schema (start), which creates the tables.
team() {
	local n=$1 count
	[[ ${BENCH_TEAM:-0} == 1 ]] || die "team needs BENCH_TEAM=1 (PostgreSQL)"
	psql_run <<-EOF || die "could not write the team"
		BEGIN;
		DELETE FROM $pg_schema.groups;
		INSERT INTO $pg_schema.groups (id, kind, name) VALUES ('team-bench', 'team', 'Team');
		INSERT INTO $pg_schema.group_members (group_id, jid)
		  SELECT 'team-bench', 'bench' || i || '@$bench_domain' FROM generate_series(1, $n) AS i;
		COMMIT;
	EOF
	count=$(psql_run -A -t -c "SELECT count(*) FROM $pg_schema.group_members WHERE group_id = 'team-bench'")
	((count == n)) || die "the team has $count members, want $n"
	log "bench1..bench$n are the team team-bench"
}

server_main "$@"
