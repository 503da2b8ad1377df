#!/usr/bin/env bash
# Runs each fuzz target briefly: scripts/fuzz.sh pkg:Target:executions...
# FUZZTIME (a duration such as 30s, or a count such as 100000x), when set,
# is the budget of every target instead.
#
# The budgets are execution counts, not durations: with a duration, Go 1.26's
# fuzzing coordinator sometimes fails a target with "context deadline
# exceeded" as the time runs out, without any finding (golang/go#75804, fixed
# in Go 1.27; it failed CI here). A count has no deadline to race.
#
# A finding fails the run: the fuzzer writes the input to
# testdata/fuzz/<Target>/ and running that input on its own fails too. The
# engine can still fail without a finding (golang/go#56238: "fuzzing process
# hung or terminated unexpectedly" with an input that passes when run again;
# #75804 with a FUZZTIME duration). Those are printed and the target is run
# once more; a second failure fails the run.
set -uo pipefail

GO=${GO:-go}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# run pkg target budget: 0 passed, 1 finding (reproduced), 2 engine failure.
run() {
	local pkg=$1 target=$2 budget=$3 dir input
	dir=$pkg/testdata/fuzz/$target
	if "$GO" test -run='^$' -fuzz="^$target\$" -fuzztime="$budget" "$pkg" >"$log" 2>&1; then
		return 0
	fi
	grep -v '^fuzz: elapsed' "$log" | tail -n 40 >&2
	input=$(sed -n 's/.*Failing input written to \(testdata\/fuzz\/[^ ]*\).*/\1/p' "$log" | tail -n 1)
	if [ -n "$input" ]; then
		if ! "$GO" test -count=1 -run="^$target/$(basename "$input")\$" "$pkg" >&2; then
			echo "fuzz: $pkg $target: finding reproduced; the input is in $pkg/$input" >&2
			return 1
		fi
		echo "fuzz: $pkg $target: $input passes when run again: an engine failure, not a finding" >&2
		rm -f "$pkg/$input"
		rmdir "$dir" "$pkg/testdata/fuzz" "$pkg/testdata" 2>/dev/null
	fi
	return 2
}

for f in "$@"; do
	IFS=: read -r pkg target count <<<"$f"
	budget=${FUZZTIME:-${count:-10000}x}
	echo "fuzz $pkg $target ($budget)"
	run "$pkg" "$target" "$budget"
	rc=$?
	if [ $rc -eq 2 ]; then
		echo "fuzz: $pkg $target: the fuzzing engine failed without a finding; running it once more" >&2
		run "$pkg" "$target" "$budget"
		rc=$?
	fi
	if [ $rc -ne 0 ]; then
		echo "fuzz: $pkg $target failed" >&2
		exit 1
	fi
done
