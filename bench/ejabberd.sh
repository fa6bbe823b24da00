#!/usr/bin/env bash
# Runs a private ejabberd (Debian's 23.01) for the load comparison: domain
# localhost, c2s with required STARTTLS on 127.0.0.1:25222 and no other XMPP,
# HTTP or MQTT listener, state under ${BENCH_DIR:-/tmp/xmppd-bench}/ejabberd,
# pinned to CPU 1 ($SERVER_CPU), as the system user `ejabberd`.
#
#	bench/ejabberd.sh start | stop | provision N | team N
#
# It is its own Erlang node (xmppdbench@localhost) with its own config, Mnesia
# spool, logs and cookie; the system node, /etc/ejabberd and /var/lib/ejabberd
# are not used. Its Erlang distribution port, which ejabberdctl needs, is
# fixed ($EJABBERD_DIST_PORT, on 127.0.0.1): ejabberdctl then reaches the node
# without asking epmd, and never starts or stops one. The node still registers
# its name with the epmd that runs (RabbitMQ's), which is harmless.
#
# The settings that must match prosody.sh and xmppd.sh are marked "same:".
set -euo pipefail

name=ejabberd
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

port=25222
ws_port=25281
dist_port=${EJABBERD_DIST_PORT:-25270}
cpu=${SERVER_CPU:-1}
work=${EJABBERD_DIR:-$bench_dir/ejabberd}
user=ejabberd
etc=$work/etc
spool=$work/spool
logs=$work/log
run=$work/run
home=$work/home
pidfile=$work/pid

# With WEBSOCKET=1, also XMPP over WebSocket on 127.0.0.1:$ws_port/ws
# (ejabberd_http_ws, with the c2s settings above where they apply).
web_listener() {
	[[ ${WEBSOCKET:-0} == 1 ]] || return 0
	cat <<-EOF
		  -
		    port: $ws_port
		    ip: "127.0.0.1"
		    module: ejabberd_http
		    request_handlers:
		      /ws: ejabberd_http_ws
		    backlog: 1024
	EOF
}

write_config() {
	local n=$1
	install -d -m 0755 "$etc"
	# ejabberdctl sources this file after reading its flags, so everything
	# that locates the node is set here.
	cat >"$etc/ejabberdctl.cfg" <<-EOF
		# Written by bench/ejabberd.sh; rewritten on every start.
		ERLANG_NODE=xmppdbench@localhost
		EJABBERD_CONFIG_PATH=$etc/ejabberd.yml
		SPOOL_DIR=$spool
		LOGS_DIR=$logs
		EJABBERD_PID_PATH=$run/ejabberd.pid
		INET_DIST_INTERFACE=127.0.0.1
		ERL_DIST_PORT=$dist_port
		ERL_MAX_PORTS=$n
		ERL_PROCESSES=1000000
		# One scheduler (and one dirty CPU scheduler) for the one CPU it is
		# pinned to; no crash dump.
		ERL_OPTIONS="+S 1:1 +SDcpu 1:1 -env ERL_CRASH_DUMP_BYTES 0"
		EJABBERD_BYPASS_WARNINGS=true
	EOF
	cat >"$etc/inetrc" <<-'EOF'
		{lookup, ["file", "native"]}.
		{host, {127,0,0,1}, ["localhost"]}.
	EOF
	cat >"$etc/ejabberd.yml" <<-EOF
		# Written by bench/ejabberd.sh; rewritten on every start.
		hosts:
		  - $bench_domain

		# same: warnings and errors only, to a file (LOGS_DIR/ejabberd.log).
		loglevel: warning
		log_rotate_count: 0

		# same: the shared certificate; TLS 1.2 and later.
		certfiles:
		  - "$work/tls/cert.pem"
		  - "$work/tls/key.pem"
		acme:
		  auto: false
		c2s_protocol_options:
		  - no_sslv3
		  - no_tlsv1
		  - no_tlsv1_1
		  - no_compression

		# Only c2s, on loopback: no s2s, HTTP, MQTT, STUN or admin listener.
		listen:
		  -
		    port: $port
		    ip: "127.0.0.1"
		    module: ejabberd_c2s
		    # same: STARTTLS required.
		    starttls_required: true
		    access: c2s
		    # No read rate cap (the packaged config shapes c2s to 1000 B/s).
		    shaper: none
		    # same: 256 KiB stanzas.
		    max_stanza_size: 262144
		    # Stanzas queued for one session before it is closed: ejabberd's
		    # default, well above what one benchmark client is sent at once.
		    max_fsm_queue: 10000
		    # same: listen backlog 1024 (ejabberd's default of 5 makes
		    # concurrent logins time out).
		    backlog: 1024
		$(web_listener)

		# same: SCRAM-SHA-1 and PLAIN (PLAIN only over TLS; STARTTLS is
		# required anyway); passwords stored as SCRAM-SHA-1 with ejabberd's fixed
		# 4096 iterations (23.01 has no option for the count).
		auth_method: internal
		auth_password_format: scram
		auth_scram_hash: sha
		disable_sasl_mechanisms:
		  - digest-md5
		  - x-oauth2
		default_db: mnesia
		# ejabberd caches accounts and rosters in front of Mnesia; its default of
		# 1000 entries is below the benchmark's accounts, and it logs "Shrinking
		# cache ... you should increase maximum cache size".
		cache_size: 100000
		s2s_access: none

		acl:
		  local:
		    user_regexp: ""
		access_rules:
		  c2s:
		    allow: all
		  local:
		    allow: local
		shaper_rules:
		  # same: no cap on stored offline messages (Prosody has none).
		  max_user_offline_messages: infinity
		  max_user_sessions: infinity
		api_permissions:
		  "console commands":
		    from:
		      - ejabberd_ctl
		    who: all
		    what: "*"

		# roster, offline storage, MUC and stream management (XEP-0198, for
		# the idle scenario with -sm; clients that do not enable it pay
		# nothing); no register, carbons, vCard, PEP or HTTP modules.
		modules:
		  mod_stream_mgmt: {}
		  mod_disco: {}
		  mod_ping: {}
		  mod_roster: {}
		  mod_offline:
		    access_max_user_messages: max_user_offline_messages
		  # same: multi-user chat on conference.DOMAIN, anyone may create a
		  # room, 20 messages of history, no limit on occupants or on how
		  # often they speak (ejabberd's default room limit is 200).
		  mod_muc:
		    host: "conference.@HOST@"
		    access: all
		    access_create: all
		    access_persistent: all
		    history_size: 20
		    max_users: 10000
		    max_users_admin_threshold: 10000
		    min_message_interval: 0
		    min_presence_interval: 0
		$(team_modules)
	EOF
}

# With BENCH_TEAM=1 (the team scenario), shared roster groups
# (mod_shared_roster), and the srg_* commands that fill them
# (mod_admin_extra). Not loaded otherwise: every roster get would go
# through the shared roster's hooks.
team_modules() {
	[[ ${BENCH_TEAM:-0} == 1 ]] || return 0
	cat <<-EOF
		  mod_shared_roster: {}
		  mod_admin_extra: {}
	EOF
}

# ctl runs ejabberdctl for the private node, as ejabberd's user with the
# node's own HOME (the Erlang cookie lives there).
ctl() {
	(cd "$spool" && runuser -u "$user" -- env HOME="$home" \
		ejabberdctl --config-dir "$etc" --ctl-config "$etc/ejabberdctl.cfg" "$@")
}

start() {
	if [[ -s $pidfile ]] && alive "$(cat "$pidfile")"; then
		die "already running (pid $(cat "$pidfile"))"
	fi
	port_open "$port" && die "127.0.0.1:$port is already in use"
	port_open "$dist_port" && die "127.0.0.1:$dist_port (Erlang distribution) is already in use"
	local n
	n=$(nofile)
	mkdir -p "$work"
	install -d -m 0700 -o "$user" -g "$user" "$spool" "$home"
	install -d -m 0750 -o "$user" -g "$user" "$logs" "$run"
	copy_cert "$work/tls" "$user"
	write_config "$n"
	rm -f "$pidfile" "$run/ejabberd.pid"

	# `foreground` keeps ejabberdctl's shell as the parent of beam.smp; both
	# inherit the CPU affinity and the descriptor limit set here. ejabberd
	# itself writes beam.smp's PID to EJABBERD_PID_PATH.
	# shellcheck disable=SC2016 # expanded by the inner sh
	(cd "$spool" && exec taskset -c "$cpu" runuser -u "$user" -- env HOME="$home" sh -c '
		ulimit -n "$1"
		shift
		exec "$@"
	' ejabberd "$n" ejabberdctl --config-dir "$etc" --ctl-config "$etc/ejabberdctl.cfg" \
		foreground) </dev/null >>"$logs/console.log" 2>&1 &
	local launcher=$!
	disown
	wait_port "$port" "$launcher" 120 "$logs/console.log"
	local i
	for ((i = 0; i < 100; i++)); do
		[[ -s $run/ejabberd.pid ]] && break
		sleep 0.1
	done
	[[ -s $run/ejabberd.pid ]] || die "ejabberd wrote no $run/ejabberd.pid"
	cp "$run/ejabberd.pid" "$pidfile"
	local pid
	pid=$(cat "$pidfile")
	check_pinned "$pid" "$cpu" || true
	log "running: pid $pid ($(cat "/proc/$pid/comm")), 127.0.0.1:$port, $(nofile_note "$n")"
}

stop() {
	local pid
	pid=$(cat "$pidfile" 2>/dev/null || true)
	if [[ -n $pid ]] && alive "$pid"; then
		# A clean stop lets Mnesia close its files; SIGTERM (stop_pidfile)
		# is the fallback.
		ctl stop >/dev/null 2>&1 || log "ejabberdctl stop failed; sending SIGTERM"
		wait_gone "$pid" 60 || true
	fi
	stop_pidfile "$pidfile" 30
	log "stopped"
}

# scram_credentials prints a XEP-0227 <scram-credentials/> element for
# bench_password: SCRAM-SHA-1 (RFC 5802) with 4096 iterations, as ejabberd
# would store it.
scram_credentials() {
	/usr/bin/python3 - "$bench_password" <<-'PY'
		import base64, hashlib, hmac, os, sys
		salt = os.urandom(16)
		salted = hashlib.pbkdf2_hmac("sha1", sys.argv[1].encode(), salt, 4096)
		client_key = hmac.new(salted, b"Client Key", hashlib.sha1).digest()
		server_key = hmac.new(salted, b"Server Key", hashlib.sha1).digest()
		# ejabberd keeps salt and keys as base64 text, and its XEP-0227 import
		# base64-decodes the element contents into that text: hence twice.
		b64 = lambda b: base64.b64encode(base64.b64encode(b)).decode()
		print("<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'>"
		      "<iter-count>4096</iter-count><salt>%s</salt><server-key>%s</server-key>"
		      "<stored-key>%s</stored-key></scram-credentials>"
		      % (b64(salt), b64(server_key), b64(hashlib.sha1(client_key).digest())))
	PY
}

# provision N imports the accounts that are missing from a XEP-0227 file.
# Each carries ready SCRAM-SHA-1 credentials (computed once, so all share
# one salt, which changes nothing in the cost of a login): letting ejabberd
# hash 10000 plain passwords on its one scheduler takes minutes. Afterwards
# an export checks that every account is stored as SCRAM with 4096
# iterations.
provision() {
	local n=$1 file=$run/import.xml i missing=0 creds
	if ! [[ -s $pidfile ]] || ! alive "$(cat "$pidfile")"; then
		die "not running: run '$0 start' first"
	fi
	declare -A have=()
	while read -r u; do
		[[ -n $u ]] && have[$u]=1
	done < <(ctl registered_users "$bench_domain")
	creds=$(scram_credentials)
	{
		printf "<?xml version='1.0' encoding='UTF-8'?>\n"
		printf "<server-data xmlns='urn:xmpp:pie:0'>\n<host jid='%s'>\n" "$bench_domain"
		for ((i = 1; i <= n; i++)); do
			[[ -n ${have[bench$i]:-} ]] && continue
			printf "<user name='bench%d'>%s</user>\n" "$i" "$creds"
			missing=$((missing + 1))
		done
		printf "</host>\n</server-data>\n"
	} >"$file"
	chown "$user" "$file"
	chmod 0600 "$file"
	if ((missing > 0)); then
		log "importing $missing accounts"
		ctl --no-timeout import_piefxis "$file" >&2
	fi
	rm -f "$file"

	local export=$run/export scram
	rm -rf "$export"
	install -d -m 0700 -o "$user" "$export"
	ctl --no-timeout export_piefxis_host "$export" "$bench_domain" >&2
	scram=$(cat "$export"/*_"$bench_domain".xml |
		grep -o "<user name='bench[0-9]*'><scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'><iter-count>4096<" |
		wc -l)
	rm -rf "$export"
	((scram >= n)) || die "only $scram bench accounts are stored as SCRAM-SHA-1 with 4096 iterations, want $n"
	log "provisioned bench1..bench$n ($scram stored as SCRAM-SHA-1, 4096 iterations)"
}

# team N makes bench1..benchN the members of one shared roster group,
# "team", displayed to its own members: each has the others in its roster
# with subscription both (mod_shared_roster; BENCH_TEAM=1). The group is
# made with ejabberdctl srg_create; the members are added with the
# function behind ejabberdctl srg_user_add, called for all of them at once
# through erl_call, since each ejabberdctl call starts an Erlang node (half
# a second, 8 minutes for 1,000 members).
team() {
	local n=$1 out count
	[[ ${BENCH_TEAM:-0} == 1 ]] || die "team needs BENCH_TEAM=1 (mod_shared_roster)"
	if ! [[ -s $pidfile ]] || ! alive "$(cat "$pidfile")"; then
		die "not running: run '$0 start' first"
	fi
	ctl srg_delete team "$bench_domain" >/dev/null 2>&1 || true
	ctl srg_create team "$bench_domain" Team Team team >&2
	out=$(printf '%s\n' "lists:usort([mod_admin_extra:srg_user_add(<<\"bench\", (integer_to_binary(I))/binary>>, <<\"$bench_domain\">>, <<\"team\">>, <<\"$bench_domain\">>) || I <- lists:seq(1, $n)])." |
		runuser -u "$user" -- env HOME="$home" erl_call -address "127.0.0.1:$dist_port" -e) ||
		die "erl_call failed: $out"
	[[ $out == '{ok, [ok]}' ]] || die "adding the members said: $out"
	count=$(ctl srg_get_members team "$bench_domain" | grep -c "^bench[0-9]*@$bench_domain\$" || true)
	((count == n)) || die "the shared roster group has $count members, want $n"
	log "bench1..bench$n are the shared roster group team"
}

server_main "$@"
