#!/usr/bin/env bash
# Runs each fuzz target briefly: scripts/fuzz.sh FUZZTIME pkg:Target...
#
# A finding fails the run: the fuzzer writes the input to
# testdata/fuzz/<Target>/ and running that input on its own fails too. The
# Go fuzzing engine also fails now and then without a finding (golang/go#51484:
# "context deadline exceeded" when -fuzztime ends mid-exec; golang/go#56238:
# "fuzzing process hung or terminated unexpectedly" with an input that passes
# when run again). Those are printed and the target is run once more; a second
# failure fails the run.
set -uo pipefail

GO=${GO:-go}
fuzztime=$1
shift
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# run pkg target: 0 passed, 1 finding (reproduced), 2 engine failure.
run() {
	local pkg=$1 target=$2 dir input
	dir=$pkg/testdata/fuzz/$target
	if "$GO" test -run='^$' -fuzz="^$target\$" -fuzztime="$fuzztime" "$pkg" >"$log" 2>&1; then
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
	pkg=${f%%:*}
	target=${f##*:}
	echo "fuzz $pkg $target ($fuzztime)"
	run "$pkg" "$target"
	rc=$?
	if [ $rc -eq 2 ]; then
		echo "fuzz: $pkg $target: the fuzzing engine failed without a finding; running it once more" >&2
		run "$pkg" "$target"
		rc=$?
	fi
	if [ $rc -ne 0 ]; then
		echo "fuzz: $pkg $target failed" >&2
		exit 1
	fi
done
