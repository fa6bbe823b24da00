# shellcheck shell=bash
# Shared by the bench/ scripts (sourced, not run): where state lives, the
# certificate every server uses, the file-descriptor limit, waiting for a port
# and stopping a server by its pid file.
#
# The caller sets `name` (used in log lines) before sourcing.

bench_dir=${BENCH_DIR:-/tmp/xmppd-bench}
tls_dir=$bench_dir/tls
bench_password=benchpass
bench_domain=localhost

# Every server gets this many file descriptors, or the hard limit of this
# shell when that is lower and cannot be raised (a container without
# CAP_SYS_RESOURCE); nofile_note says which.
want_nofile=65536

log() { printf '%s: %s\n' "${name:-bench}" "$*" >&2; }
die() {
	log "$*"
	exit 1
}

# nofile prints the descriptor limit to give a server, raising this shell's
# hard limit first when it can.
nofile() {
	local hard
	hard=$(ulimit -Hn)
	if [[ $hard == unlimited ]] || ((hard >= want_nofile)); then
		printf '%s' "$want_nofile"
	elif (ulimit -Hn "$want_nofile") 2>/dev/null; then
		printf '%s' "$want_nofile"
	else
		printf '%s' "$hard"
	fi
}

# nofile_note N says how N compares with what was wanted, for a log line.
nofile_note() {
	if (($1 < want_nofile)); then
		printf 'nofile %s (the hard limit here; %s wanted)' "$1" "$want_nofile"
	else
		printf 'nofile %s' "$1"
	fi
}

# ensure_cert writes the one self-signed ECDSA P-256 certificate for
# `localhost` that all three servers present, unless it exists.
ensure_cert() {
	[[ -s $tls_dir/cert.pem && -s $tls_dir/key.pem ]] && return
	mkdir -p "$tls_dir"
	log "generating a self-signed P-256 certificate for localhost in $tls_dir"
	openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		-keyout "$tls_dir/key.pem.tmp" -out "$tls_dir/cert.pem.tmp" -days 3650 \
		-subj /CN=localhost -addext subjectAltName=DNS:localhost 2>/dev/null ||
		die "openssl could not generate the certificate"
	chmod 0600 "$tls_dir/key.pem.tmp"
	mv "$tls_dir/key.pem.tmp" "$tls_dir/key.pem"
	mv "$tls_dir/cert.pem.tmp" "$tls_dir/cert.pem"
}

# copy_cert DIR OWNER puts a copy of the certificate and key into DIR,
# readable only by OWNER (the user the server runs as).
copy_cert() {
	local dir=$1 owner=$2
	ensure_cert
	install -d -m 0750 -o "$owner" "$dir"
	install -m 0644 -o "$owner" "$tls_dir/cert.pem" "$dir/cert.pem"
	install -m 0600 -o "$owner" "$tls_dir/key.pem" "$dir/key.pem"
}

# port_open PORT: does 127.0.0.1:PORT accept a TCP connection?
port_open() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# alive PID: is the process there (and not a zombie)?
alive() {
	[[ -n $1 && -e /proc/$1 ]] || return 1
	local state
	state=$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null) || return 1
	[[ $state != Z ]]
}

# wait_port PORT PID SECONDS LOGFILE waits until the port accepts
# connections; fails early when process PID (the server or the command that
# launched it) exits.
wait_port() {
	local port=$1 pid=$2 seconds=$3 logfile=$4 i
	for ((i = 0; i < seconds * 10; i++)); do
		if port_open "$port"; then
			return 0
		fi
		if ! alive "$pid"; then
			tail -n 30 "$logfile" >&2 2>/dev/null || true
			die "the server exited before listening on port $port (log: $logfile)"
		fi
		sleep 0.1
	done
	tail -n 30 "$logfile" >&2 2>/dev/null || true
	die "nothing listens on 127.0.0.1:$port after ${seconds}s (log: $logfile)"
}

# check_pinned PID CPU warns when the process may run elsewhere than CPU.
check_pinned() {
	local list
	list=$(taskset -cp "$1" 2>/dev/null | sed 's/.*: *//')
	if [[ $list != "$2" ]]; then
		log "warning: pid $1 has CPU affinity '$list', want '$2'"
		return 1
	fi
}

# stop_pidfile PIDFILE SECONDS sends SIGTERM to the process in PIDFILE,
# waits up to SECONDS for it to go, then sends SIGKILL. Removes the file.
stop_pidfile() {
	local pidfile=$1 seconds=$2 pid i
	pid=$(cat "$pidfile" 2>/dev/null || true)
	if [[ -z $pid ]]; then
		return 0
	fi
	if alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null || true
		wait_gone "$pid" "$seconds" || {
			log "pid $pid still there after ${seconds}s; killing it"
			kill -KILL "$pid" 2>/dev/null || true
			wait_gone "$pid" 10 || die "pid $pid survives SIGKILL"
		}
	fi
	rm -f "$pidfile"
}

# wait_gone PID SECONDS: succeeds once the process has exited.
wait_gone() {
	local pid=$1 seconds=$2 i
	for ((i = 0; i < seconds * 10; i++)); do
		alive "$pid" || return 0
		sleep 0.1
	done
	return 1
}

# usage_server prints the common usage of the three server scripts.
usage_server() {
	cat >&2 <<-EOF
		usage: $0 start|stop|provision N|team N

		  start        start a private ${name} on 127.0.0.1:$1 (state in $2)
		  stop         stop it and wait until it has exited
		  provision N  create bench1..benchN@$bench_domain, password $bench_password
		               (the server must be running)
		  team N       make bench1..benchN the members of one team, each seeing
		               the others (with BENCH_TEAM=1, as the server was started;
		               takes effect at the next start)
	EOF
	exit 2
}

# server_main runs a server script's command line: start, stop,
# provision N or team N, with the script's own start, stop, provision and
# team functions and its $port and $work.
# shellcheck disable=SC2154 # port and work are the sourcing script's
server_main() {
	case ${1:-} in
	start) start ;;
	stop) stop ;;
	provision)
		[[ ${2:-} =~ ^[1-9][0-9]*$ ]] || usage_server "$port" "$work"
		provision "$2"
		;;
	team)
		[[ ${2:-} =~ ^[1-9][0-9]*$ ]] || usage_server "$port" "$work"
		team "$2"
		;;
	*) usage_server "$port" "$work" ;;
	esac
}

# server_yaml prints the part of xmppd's configuration that every bench
# script shares (bench/xmppd.sh, bench/cluster.sh): what is marked "same:"
# matches prosody.sh and ejabberd.sh.
server_yaml() {
	cat <<'YAML'
# same: TLS required before authentication; SCRAM-SHA-1 (and -256) and
# PLAIN, PLAIN only over TLS; credentials hashed with 4096 iterations.
# Failed logins from one address never block it (Prosody and
# ejabberd, without mod_limits/mod_fail2ban, do not either).
auth:
  allow_plaintext: false
  scram_iterations: 4096
  max_failures: -1

limits:
  # same: 256 KiB stanzas.
  max_stanza_size: 262144
  # The load comes from 127.0.0.1-127.0.0.8: no cap or rate per
  # address, nor on sessions per account (none in the other two
  # either).
  max_unauthenticated_per_ip: -1
  connection_rate_per_ip: -1
  max_sessions_per_account: -1
  # same: no read rate cap (Prosody without mod_limits, ejabberd with
  # shaper: none).
  read_rate: 0
  # Neither Prosody nor ejabberd (mod_ping send_pings: false) pings idle
  # clients; xmppd would after 2 minutes.
  ping_interval: -1s
  # queue_size: the default, 5000 stanzas per session (ejabberd's
  # queue is 10000); like ejabberd's, it costs nothing until used.
  # same: no cap on stored offline messages.
  max_offline_messages: -1

# same: no message archive (XEP-0313), as Prosody and ejabberd here run
# without mod_mam. The archive's own cost is measured apart
# (docs/BENCHMARKS.md, "Message archive").
archive:
  enabled: false

# same: warnings and errors only, to a file (stderr, redirected).
log:
  level: warn
YAML
}
