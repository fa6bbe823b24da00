#!/usr/bin/env bash
# Installs what the load comparison needs from Debian, only what is missing:
# prosody (0.12) with lua-unbound (the DNS library it recommends; without it
# Prosody falls back to a slower resolver and says so at start), ejabberd
# (23.01), openssl (the shared certificate), python3 (bench/table.py,
# bench/probe.py) and, for xmppd's team scenario, postgresql-client (psql).
#
# The packages' system services must not run: bench/*.sh start private
# instances. While apt runs, a temporary /usr/sbin/policy-rc.d forbids
# starting services (Debian's invoke-rc.d and deb-systemd-invoke ask it); the
# previous one, if any, is put back afterwards. System instances found running
# (started before, or by hand) are stopped.
#
# Idempotent: with everything installed and nothing running it changes nothing.
# Only the servers named in $SERVERS (default: all three) are installed.
set -euo pipefail

name=deps
packages=(openssl python3)
for server in ${SERVERS:-prosody ejabberd xmppd}; do
	case $server in
	prosody) packages+=(prosody lua-unbound) ;;
	ejabberd) packages+=(ejabberd) ;;
	xmppd)
		# The team scenario writes xmppd's team into PostgreSQL with psql.
		scenarios=" ${SCENARIOS:-} "
		if [[ ${scenarios//,/ } == *" team "* ]]; then
			packages+=(postgresql-client)
		fi
		;;
	esac
done

log() { printf '%s: %s\n' "$name" "$*" >&2; }
die() {
	log "$*"
	exit 1
}

((EUID == 0)) || die "run as root (apt-get, and stopping system services)"
command -v dpkg >/dev/null 2>&1 || die "no dpkg: not a Debian system"

installed() {
	dpkg-query -W -f '${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

policy=/usr/sbin/policy-rc.d
saved_policy=

restore_policy() {
	if [[ -n $saved_policy ]]; then
		mv -f "$saved_policy" "$policy"
	else
		rm -f "$policy"
	fi
}

install_missing() {
	local missing=() p
	for p in "${packages[@]}"; do
		installed "$p" || missing+=("$p")
	done
	((${#missing[@]} > 0)) || return 0

	if [[ -e $policy ]]; then
		saved_policy=$(mktemp /usr/sbin/policy-rc.d.saved.XXXXXX)
		cp -p "$policy" "$saved_policy"
	fi
	trap restore_policy EXIT
	# 101: "action forbidden by policy" (invoke-rc.d(8)).
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 0755 "$policy"

	log "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >&2
	apt-get install -y -q --no-install-recommends \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
		"${missing[@]}" >&2

	restore_policy
	trap - EXIT
}

# stop_system NAME PIDFILE PATTERN stops the system-wide instance of a
# service: through systemd when systemd runs it, else by the PID in its pid
# file, when that process's command line matches PATTERN.
stop_system() {
	local svc=$1 pidfile=$2 pattern=$3 pid i
	if [[ -d /run/systemd/system ]] && systemctl is-active --quiet "$svc" 2>/dev/null; then
		log "stopping the system $svc service (systemctl)"
		systemctl stop "$svc"
		return
	fi
	pid=$(cat "$pidfile" 2>/dev/null || true)
	[[ $pid =~ ^[0-9]+$ && -e /proc/$pid ]] || return 0
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$pattern" || return 0
	log "stopping the system $svc (pid $pid)"
	kill -TERM "$pid"
	for ((i = 0; i < 300; i++)); do
		[[ -e /proc/$pid ]] || return 0
		sleep 0.1
	done
	die "the system $svc (pid $pid) did not stop; stop it and run again"
}

install_missing
stop_system prosody /run/prosody/prosody.pid /etc/prosody
stop_system ejabberd /run/ejabberd/ejabberd.pid ejabberd@
