#!/usr/bin/env bash
# Runs a private Prosody (Debian's 0.12) for the load comparison: domain
# localhost, c2s with required STARTTLS on 127.0.0.1:15222 and no other
# listener, state under ${BENCH_DIR:-/tmp/xmppd-bench}/prosody, pinned to CPU 1
# ($SERVER_CPU), as the system user `prosody`. The system-wide service and
# /var/lib/prosody are not touched.
#
#	bench/prosody.sh start | stop | provision N | team N
#
# The settings that must match ejabberd.sh and xmppd.sh are marked "same:".
set -euo pipefail

name=prosody
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

port=15222
# With WEBSOCKET=1, also XMPP over WebSocket on 127.0.0.1:$ws_port/xmpp-websocket.
ws_port=15281
cpu=${SERVER_CPU:-1}
work=${PROSODY_DIR:-$bench_dir/prosody}
user=prosody
config=$work/prosody.cfg.lua
data=$work/data
logs=$work/log
pidfile=$work/pid
# With BENCH_TEAM=1, mod_groups reads the team from this file.
groups_file=$work/groups.txt

write_config() {
	local web_modules="" web_settings="http_ports = { }" team_modules="" team_settings=""
	if [[ ${WEBSOCKET:-0} == 1 ]]; then
		web_modules='"websocket",'
		# Plain HTTP on loopback counts as secure, as for xmppd's
		# secure_networks; the c2s port still requires STARTTLS.
		web_settings="http_ports = { $ws_port }
		http_interfaces = { \"127.0.0.1\" }
		consider_websocket_secure = true"
	fi
	if [[ ${BENCH_TEAM:-0} == 1 ]]; then
		# The team scenario: shared roster groups from a file (team N).
		team_modules='"groups",'
		team_settings="groups_file = \"$groups_file\""
	fi
	cat >"$config" <<-EOF
		-- Written by bench/prosody.sh; rewritten on every start.
		data_path = "$data"
		-- No mod_posix (autoloaded on Linux): no daemonizing, no pid file, no
		-- signal handlers; the script backgrounds Prosody and stops it with
		-- SIGTERM, whose default action ends the process.
		daemonize = false
		-- same: warnings and errors only, to a file.
		log = { warn = "$logs/prosody.log" }

		-- same: a listen backlog of 1024 (the kernel default would drop
		-- connections under a burst of logins).
		network_settings = { tcp_backlog = 1024 }

		-- Only c2s on loopback (and HTTP for WebSocket with WEBSOCKET=1); s2s is
		-- not loaded, direct TLS has no port.
		interfaces = { "127.0.0.1" }
		local_interfaces = { "127.0.0.1" }
		c2s_ports = { $port }
		c2s_interfaces = { "127.0.0.1" }
		c2s_direct_tls_ports = { }
		s2s_ports = { }
		$web_settings
		https_ports = { }

		-- roster and offline storage (offline is autoloaded), stream
		-- management (XEP-0198, for the idle scenario with -sm; clients
		-- that do not enable it pay nothing); no limits (no read rate cap),
		-- no register, no s2s, no HTTP. MUC is the component below.
		modules_enabled = { $web_modules $team_modules "roster", "saslauth", "tls", "disco", "ping", "smacks" }
		modules_disabled = { "posix", "s2s", "s2s_auth_certs" }

		-- same: STARTTLS required, TLS 1.2 and later, the shared certificate.
		c2s_require_encryption = true
		tls_profile = "intermediate"
		ssl = { certificate = "$work/tls/cert.pem", key = "$work/tls/key.pem" }
		certificates = "$work/tls"

		-- same: SCRAM-SHA-1 and PLAIN (PLAIN only over TLS), hashed
		-- passwords with 4096 PBKDF2 iterations (Prosody's default is 10000).
		authentication = "internal_hashed"
		default_iteration_count = 4096
		allow_unencrypted_plain_auth = false
		storage = "internal"
		$team_settings

		-- same: 256 KiB stanzas.
		c2s_stanza_size_limit = 262144

		VirtualHost "$bench_domain"
		ssl = { certificate = "$work/tls/cert.pem", key = "$work/tls/key.pem" }

		-- same: multi-user chat on conference.DOMAIN, anyone may create a
		-- room, 20 messages of history, no occupant limit beyond the load.
		Component "conference.$bench_domain" "muc"
		restrict_room_creation = false
		muc_room_default_history_length = 20
		muc_room_default_public = true
	EOF
}

start() {
	if [[ -s $pidfile ]] && alive "$(cat "$pidfile")"; then
		die "already running (pid $(cat "$pidfile"))"
	fi
	port_open "$port" && die "127.0.0.1:$port is already in use"
	mkdir -p "$work"
	install -d -m 0750 -o "$user" -g "$user" "$data" "$logs"
	copy_cert "$work/tls" "$user"
	if [[ ${BENCH_TEAM:-0} == 1 && ! -f $groups_file ]]; then
		install -m 0644 -o "$user" /dev/null "$groups_file"
	fi
	write_config

	local n
	n=$(nofile)
	rm -f "$pidfile"
	# runuser's PAM session resets the soft limit, hence the ulimit inside.
	# The inner shell writes its PID (which exec keeps for the lua process)
	# to fd 3, opened here by root.
	# shellcheck disable=SC2016 # expanded by the inner sh
	taskset -c "$cpu" runuser -u "$user" -- sh -c '
		echo $$ >&3
		exec 3>&-
		ulimit -n "$1"
		exec prosody --config "$2"
	' prosody "$n" "$config" 3>"$pidfile" </dev/null >>"$logs/console.log" 2>&1 &
	local launcher=$!
	disown
	wait_port "$port" "$launcher" 30 "$logs/console.log"
	local pid
	pid=$(cat "$pidfile")
	check_pinned "$pid" "$cpu" || true
	log "running: pid $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline")), 127.0.0.1:$port, $(nofile_note "$n")"
}

stop() {
	stop_pidfile "$pidfile" 30
	log "stopped"
}

# provision N creates bench1..benchN. prosodyctl hashes the password once
# (4096 iterations, from the config); the other accounts are copies of that
# account file, named as Prosody's datamanager names them (user names of
# letters and digits need no %-escaping). All accounts then share one salt,
# which changes nothing in the cost of a login.
provision() {
	local n=$1 dir=$data/$bench_domain/accounts template i
	[[ -f $config ]] || die "no $config: run '$0 start' first"
	runuser -u "$user" -- prosodyctl --config "$config" \
		register bench1 "$bench_domain" "$bench_password" >/dev/null
	template=$(<"$dir/bench1.dat")
	grep -q '\["iteration_count"\] = 4096;' <<<"$template" ||
		die "bench1's account file does not say 4096 iterations:"$'\n'"$template"
	for ((i = 2; i <= n; i++)); do
		printf '%s\n' "$template" >"$dir/bench$i.dat"
	done
	chown "$user:$user" "$dir"/bench*.dat
	log "provisioned bench1..bench$n"
}

# team N makes bench1..benchN the members of one group of mod_groups
# (BENCH_TEAM=1), in its groups file: each has the others in its roster with
# subscription both. Prosody reads the file when it starts.
team() {
	local n=$1 i
	[[ ${BENCH_TEAM:-0} == 1 ]] || die "team needs BENCH_TEAM=1 (mod_groups)"
	{
		echo "[Team]"
		for ((i = 1; i <= n; i++)); do
			echo "bench$i@$bench_domain"
		done
	} >"$groups_file.tmp"
	chown "$user" "$groups_file.tmp"
	mv "$groups_file.tmp" "$groups_file"
	log "bench1..bench$n are the group Team in $groups_file"
}

server_main "$@"
