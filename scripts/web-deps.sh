#!/usr/bin/env bash
# Installs what the web chat and its browser tests need, and only what is
# missing: Debian's chromium (the headless browser of web/test/converse.mjs)
# and the npm packages of web/package-lock.json in web/node_modules
# (converse.js, which xmppd serves at /chat/, and the test tools: strophe.js,
# ws, @xmldom/xmldom, playwright-core).
#
#	scripts/web-deps.sh                 everything
#	scripts/web-deps.sh --client-only   converse.js alone (npm ci --omit=dev),
#	                                    no chromium: enough for `make run`
#	WEB_DEPS_CLIENT_ONLY=1 scripts/web-deps.sh   the same
#
# Idempotent: with everything present it neither touches apt nor npm nor
# needs root. web/node_modules/.xmppd-web-deps records the sha256 of the
# lock file that was installed and whether it was the full or the client-only
# set; npm ci runs again when the lock file changed (keeping a full set
# full), when node_modules is missing, or when a full install is wanted
# after a client-only one.
set -euo pipefail

log() { printf 'web-deps: %s\n' "$*" >&2; }

mode=full
case ${1-} in
'') ;;
--client-only) mode=client ;;
-h | --help)
	sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
*)
	log "unknown argument: $1 (usage: $0 [--client-only])"
	exit 2
	;;
esac
if [[ ${WEB_DEPS_CLIENT_ONLY:-} == 1 ]]; then
	mode=client
fi

root=$(cd "$(dirname "$0")/.." && pwd)
web=$root/web
lock=$web/package-lock.json
stamp=$web/node_modules/.xmppd-web-deps

# --- Debian packages --------------------------------------------------------

if [[ $mode == full ]]; then
	packages=(chromium)
	if ! command -v dpkg >/dev/null 2>&1; then
		if ! command -v chromium >/dev/null 2>&1; then
			log "no dpkg: not a Debian system; install ${packages[*]} yourself"
			log "(web/test/converse.mjs looks for /usr/bin/chromium, or \$CHROMIUM)"
		fi
	else
		installed() {
			dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed$'
		}
		missing=()
		for p in "${packages[@]}"; do
			installed "$p" || missing+=("$p")
		done
		if ((${#missing[@]} > 0)); then
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
			"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
			"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
				--no-install-recommends \
				-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
				"${missing[@]}" >&2
		fi
	fi
fi

# --- npm packages -----------------------------------------------------------

[[ -f $lock ]] || {
	log "no $lock"
	exit 1
}
read -r want_sum _ < <(sha256sum "$lock")
have_sum='' have_mode=''
if [[ -f $stamp ]]; then
	read -r have_sum have_mode _ <"$stamp" || true
fi
if [[ $have_sum == "$want_sum" && ($have_mode == full || $have_mode == "$mode") ]]; then
	exit 0
fi

if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
	log "npm and Node.js 20 or later are needed to install web/node_modules"
	exit 1
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if ((node_major < 20)); then
	log "Node.js $(node --version) is too old: web/ needs Node.js 20 or later"
	exit 1
fi

# A client-only run after a full install (of an older lock file) installs
# the full set again rather than dropping the test tools.
if [[ $have_mode == full ]]; then
	mode=full
fi
npm_args=(ci --no-audit --no-fund --ignore-scripts --loglevel=warn)
if [[ $mode == client ]]; then
	npm_args+=(--omit=dev)
fi
log "npm ${npm_args[*]} in web/ ($mode)"
# npm ci starts by removing node_modules, stamp included: an interrupted run
# leaves no stamp and the next one installs again.
(cd "$web" && npm "${npm_args[@]}") >&2
# A go.mod makes node_modules a module of its own, which `go ... ./...` in
# the repository skips, whatever an npm package ships.
printf 'module ignored\n' >"$web/node_modules/go.mod"
printf '%s %s\n' "$want_sum" "$mode" >"$stamp.tmp"
mv "$stamp.tmp" "$stamp"
