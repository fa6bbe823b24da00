#!/usr/bin/env bash
# Fuzzes every fuzz target of the module, one after the other, for FUZZTIME
# each (default 1h: issue 21 asks for an hour per parser in development).
# A crash stops the run; Go writes the input under the package's
# testdata/fuzz/<Target>/, where `make test` runs it from then on as a
# regression test: commit it with the fix.
#
#	scripts/fuzz.sh                      # every target, 1h each
#	FUZZTIME=2m scripts/fuzz.sh FuzzJID  # only targets whose name matches
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
fuzztime=${FUZZTIME:-1h}
filter=${1:-.}
found=0
while read -r pkg; do
	while read -r target; do
		[[ $target == Fuzz* && $target =~ $filter ]] || continue
		found=$((found + 1))
		echo "== $pkg $target ($fuzztime)"
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"
	done < <(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true)
done < <(go list ./...)
((found > 0)) || { echo "no fuzz target matches $filter" >&2; exit 1; }
echo "fuzzed $found targets for $fuzztime each"
