#!/usr/bin/env bash
# Fuzzes every fuzz target of the module for FUZZTIME each (default 1h:
# issue 21 asks for an hour per parser in development). A crash fails the
# run; Go writes the input under the package's testdata/fuzz/<Target>/,
# where `make test` runs it from then on as a regression test: commit it
# with the fix.
#
#	scripts/fuzz.sh                      # every target, 1h each, one after the other
#	FUZZTIME=2m scripts/fuzz.sh FuzzJID  # only targets whose name matches
#	JOBS=12 NICE=19 scripts/fuzz.sh      # 12 targets at once (one worker each), at low priority
#
# Each target's output goes to $FUZZLOG/<package>.<Target>.log (default a
# new directory under bench/results); the last line of each, with the
# executions and the corpus size, is printed at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
fuzztime=${FUZZTIME:-1h}
filter=${1:-.}
jobs=${JOBS:-1}
nice=${NICE:-0}
logdir=${FUZZLOG:-bench/results/$(date -u +%Y-%m-%d-%H%M)-fuzz}
mkdir -p "$logdir"

targets=()
while read -r pkg; do
	while read -r target; do
		[[ $target == Fuzz* && $target =~ $filter ]] && targets+=("$pkg $target")
	done < <(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true)
done < <(go list ./...)
((${#targets[@]} > 0)) || { echo "no fuzz target matches $filter" >&2; exit 1; }

# With several targets at once each gets one worker, so that they share
# the cores instead of each starting one worker per core.
parallel=()
((jobs > 1)) && parallel=(-parallel 1)

fuzz_one() {
	local pkg=$1 target=$2 log
	log=$logdir/${pkg##*/}.$target.log
	echo "== $pkg $target ($fuzztime) > $log"
	if ! nice -n "$nice" go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "${parallel[@]}" "$pkg" >"$log" 2>&1; then
		echo "!! $pkg $target FAILED; see $log" >&2
		return 1
	fi
}

status=0
running=0
for t in "${targets[@]}"; do
	fuzz_one $t &
	running=$((running + 1))
	if ((running >= jobs)); then
		wait -n || status=1
		running=$((running - 1))
	fi
done
while ((running > 0)); do
	wait -n || status=1
	running=$((running - 1))
done

echo "fuzzed ${#targets[@]} targets for $fuzztime each; last progress line of each:"
for f in "$logdir"/*.log; do
	printf '%s: %s\n' "$(basename "$f" .log)" "$(grep -E '^fuzz: elapsed' "$f" | tail -1)"
done
exit $status
