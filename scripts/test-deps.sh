#!/usr/bin/env bash
# Installs the Debian packages the test suite needs, and only those that are
# missing: python3-slixmpp (interop client, run with /usr/bin/python3) and
# python3-aiohttp (its XEP-0363 upload plugin),
# go-sendxmpp and sendxmpp (command-line interop clients), postgresql and
# redis-server (storage integration tests), prosody with lua-unbound (the
# federation peer; unbound reads /etc/hosts), sqlite3 (plain SQL on the
# embedded database, as an app would write its teams), docker-compose,
# haproxy and systemd (they check the Compose files, the cluster's haproxy
# configuration and the systemd unit; no Docker engine is needed or
# started, nor haproxy).
#
# Idempotent: with everything present it neither touches apt nor needs root.
set -euo pipefail

packages=(python3-slixmpp python3-aiohttp go-sendxmpp sendxmpp postgresql redis-server prosody lua-unbound sqlite3 docker-compose haproxy systemd)

log() { printf 'test-deps: %s\n' "$*" >&2; }

if ! command -v dpkg >/dev/null 2>&1; then
	log "no dpkg: not a Debian system; install ${packages[*]} yourself"
	exit 0
fi

installed() {
	dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed$'
}

missing=()
for p in "${packages[@]}"; do
	installed "$p" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
	exit 0
fi

sudo=()
if ((EUID != 0)); then
	if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		sudo=(sudo -n)
	else
		log "missing packages: ${missing[*]}"
		log "run as root: apt-get update && apt-get install -y ${missing[*]}"
		exit 1
	fi
fi

log "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	--no-install-recommends \
	-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
	"${missing[@]}" >&2
