#!/usr/bin/env bash
# Prints `export` lines for XMPPD_TEST_POSTGRES and XMPPD_TEST_REDIS, to be
# eval'd by the caller (see the Makefile's test target):
#
#	eval "$(scripts/test-services.sh)"
#
# An already-running service is used when it answers (the given or default
# address). Otherwise a private one is started on loopback and reused on later
# runs: Postgres on 127.0.0.1:55432 with its data and socket under
# ${XDG_CACHE_HOME:-$HOME/.cache}/xmppd-test/pg, Redis on 127.0.0.1:56379.
#
# Only the export lines go to stdout; everything else goes to stderr.
set -euo pipefail

# fd 3 is the real stdout; every command's chatter goes to stderr. Daemons are
# started with 3>&- so they do not hold the caller's $(...) pipe open forever.
exec 3>&1 1>&2

log() { printf 'test-services: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}

# shq quotes $1 for the shell that evals our output.
shq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }
emit() { printf 'export %s=%s\n' "$1" "$(shq "$2")" >&3; }

cache=${XDG_CACHE_HOME:-$HOME/.cache}/xmppd-test

# --- Postgres ---------------------------------------------------------------

pg_port=55432
pg_dsn_default='postgres://postgres@127.0.0.1:5432/test?sslmode=disable'
pg_dsn_private="postgres://postgres@127.0.0.1:${pg_port}/test?sslmode=disable"

pg_answers() {
	command -v psql >/dev/null 2>&1 || return 1
	PGCONNECT_TIMEOUT=3 psql "$1" -Atqc 'select 1' >/dev/null 2>&1
}

# as_pg runs a command as the cluster owner: postgres refuses to run as root,
# so root hands over to the `postgres` system user of the Debian package.
as_pg() {
	if ((EUID == 0)); then
		(cd / && runuser -u postgres -- "$@" 3>&-)
	else
		"$@" 3>&-
	fi
}

# pg_dir picks the private cluster's directory. Root's $HOME is usually 0700,
# which the postgres user cannot traverse; then fall back to /var/tmp.
pg_dir() {
	local dir=$cache/pg
	if ((EUID == 0)); then
		mkdir -p "$dir"
		chown postgres:postgres "$dir"
		if ! runuser -u postgres -- test -w "$dir" 2>/dev/null; then
			rmdir "$dir" 2>/dev/null || true
			dir=/var/tmp/xmppd-test/pg
			mkdir -p "$dir"
			chown postgres:postgres "$dir"
		fi
		chmod 0700 "$dir"
	else
		mkdir -p "$dir"
	fi
	printf '%s' "$dir"
}

pg_bin() {
	local data=$1 ver
	if [[ -f $data/PG_VERSION ]]; then
		ver=$(<"$data/PG_VERSION")
		if [[ -x /usr/lib/postgresql/$ver/bin/postgres ]]; then
			printf '%s' "/usr/lib/postgresql/$ver/bin"
			return
		fi
	fi
	ver=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -n1)
	[[ -n $ver && -x /usr/lib/postgresql/$ver/bin/initdb ]] ||
		die "no postgres server binaries under /usr/lib/postgresql (run scripts/test-deps.sh)"
	printf '%s' "/usr/lib/postgresql/$ver/bin"
}

start_private_pg() {
	local dir data bin
	if ((EUID == 0)) && ! id postgres >/dev/null 2>&1; then
		die "running as root but there is no postgres user (run scripts/test-deps.sh)"
	fi
	dir=$(pg_dir)
	data=$dir/data
	bin=$(pg_bin "$data")

	if [[ ! -f $data/PG_VERSION ]]; then
		log "initialising private postgres cluster in $data"
		rm -rf "$data"
		as_pg "$bin/initdb" -D "$data" -U postgres --auth=trust \
			--encoding=UTF8 --no-locale >&2
		# Settings live in the cluster so a manual pg_ctl start behaves the same.
		# Durability is worthless for throwaway test data; speed is not.
		cat >>"$data/postgresql.conf" <<-CONF

			# xmppd test cluster (scripts/test-services.sh)
			listen_addresses = '127.0.0.1'
			port = $pg_port
			unix_socket_directories = '$dir'
			fsync = off
			synchronous_commit = off
			full_page_writes = off
		CONF
	fi

	if ! as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
		log "starting private postgres on 127.0.0.1:$pg_port"
		if ! as_pg "$bin/pg_ctl" -D "$data" -l "$dir/postgres.log" -w -t 60 start >&2; then
			tail -n 20 "$dir/postgres.log" >&2 || true
			die "private postgres failed to start (log: $dir/postgres.log)"
		fi
	fi

	local admin="postgres://postgres@127.0.0.1:${pg_port}/postgres?sslmode=disable"
	if [[ -z $(psql "$admin" -Atqc "select 1 from pg_database where datname = 'test'") ]]; then
		psql "$admin" -qc 'create database test' >&2
	fi
}

pg_dsn=${XMPPD_TEST_POSTGRES:-$pg_dsn_default}
if pg_answers "$pg_dsn"; then
	log "postgres: using $pg_dsn"
else
	log "postgres: $pg_dsn does not answer; using a private cluster"
	command -v psql >/dev/null 2>&1 || die "psql not found (run scripts/test-deps.sh)"
	start_private_pg
	pg_dsn=$pg_dsn_private
	pg_answers "$pg_dsn" || die "private postgres does not answer at $pg_dsn"
	log "postgres: using $pg_dsn"
fi
emit XMPPD_TEST_POSTGRES "$pg_dsn"

# --- Redis ------------------------------------------------------------------

redis_port=56379
redis_addr_private=127.0.0.1:$redis_port

redis_answers() {
	local addr=${1#redis://} host port
	addr=${addr%%/*}
	host=${addr%:*}
	port=${addr##*:}
	[[ $host != "$addr" ]] || port=6379
	command -v redis-cli >/dev/null 2>&1 || return 1
	[[ $(timeout 3 redis-cli -h "$host" -p "$port" ping 2>/dev/null) == PONG ]]
}

start_private_redis() {
	local dir=$cache/redis
	command -v redis-server >/dev/null 2>&1 || die "redis-server not found (run scripts/test-deps.sh)"
	mkdir -p "$dir"
	log "starting private redis on $redis_addr_private"
	redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
		--daemonize yes --dir "$dir" --pidfile "$dir/redis.pid" \
		--logfile "$dir/redis.log" 3>&-
	local i
	for ((i = 0; i < 50; i++)); do
		redis_answers "$redis_addr_private" && return
		sleep 0.1
	done
	tail -n 20 "$dir/redis.log" >&2 || true
	die "private redis does not answer at $redis_addr_private (log: $dir/redis.log)"
}

redis_addr=${XMPPD_TEST_REDIS:-127.0.0.1:6379}
if redis_answers "$redis_addr"; then
	log "redis: using $redis_addr"
else
	log "redis: $redis_addr does not answer; using a private server"
	redis_answers "$redis_addr_private" || start_private_redis
	redis_addr=$redis_addr_private
	log "redis: using $redis_addr"
fi
emit XMPPD_TEST_REDIS "$redis_addr"
