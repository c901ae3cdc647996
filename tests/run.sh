#!/bin/bash
# SPDX-License-Identifier: MIT
# The test runner of `make check`: every Check unit test program, then every
# integration test that really mounts (tests/it-*.sh, tests/remote-*.sh).
# A test exiting 77 is skipped (it says why).  The last line is the summary
# "N passed, N failed, N skipped".  --unit runs only the unit tests;
# --valgrind runs them under valgrind.
set -u
SRCDIR=$(cd "$(dirname "$0")/.." && pwd)
B=${B:-.}
B=$(cd "$B" && pwd)
export SRCDIR BUILDDIR=$B EPOCHFS=$B/epochfs TOOLS=$B
LOGS=$B/test-logs
mkdir -p "$LOGS"
unit_only=0
valgrind=0
for a in "$@"; do
	case $a in
	--unit) unit_only=1 ;;
	--valgrind) valgrind=1 ;;
	*) echo "usage: $0 [--unit] [--valgrind]" >&2; exit 2 ;;
	esac
done
pass=0 fail=0 skipped=0 failed_names=""
# The tests' own mounts live under their mktemp dirs; a mount of anyone
# else's (a user's dataset, a stale mount left on a shared machine) is not
# theirs to judge, so only new ones under those dirs count as left behind.
test_mounts() {
	awk '$3 == "fuse.epochfs" && $2 ~ "^/tmp/epochfs-(it|remote)\\." { print $2 }' /proc/mounts | sort
}
mounts_before=$(test_mounts)

run() { # NAME TIMEOUT CMD...
	local name=$1 to=$2 rc t0 t1
	shift 2
	t0=$(date +%s.%N)
	timeout -k 10 "$to" "$@" >"$LOGS/$name.log" 2>&1 </dev/null
	rc=$?
	t1=$(date +%s.%N)
	local secs
	secs=$(awk "BEGIN{printf \"%.1f\", $t1-$t0}")
	case $rc in
	0) pass=$((pass + 1)); echo "PASS: $name (${secs}s)" ;;
	77) skipped=$((skipped + 1)); echo "SKIP: $name: $(grep -m1 SKIP "$LOGS/$name.log" | cut -c1-200)" ;;
	*) fail=$((fail + 1)); failed_names="$failed_names $name"
	   echo "FAIL: $name (exit $rc, ${secs}s); last lines of $LOGS/$name.log:"
	   tail -25 "$LOGS/$name.log" | sed 's/^/    /' ;;
	esac
}

# Golden shuffle orders come from the real torch and numpy (Debian's).
if [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import torch, numpy' 2>/dev/null; then
	if /usr/bin/python3 "$SRCDIR/tests/golden_orders.py" >"$LOGS/golden.txt" 2>"$LOGS/golden.err"; then
		export GOLDEN_ORDERS=$LOGS/golden.txt
	else
		echo "FAIL: golden order generation"; cat "$LOGS/golden.err"; fail=$((fail + 1))
	fi
else
	# check_order then runs only its own cases: the golden comparison is skipped.
	skipped=$((skipped + 1))
	echo "SKIP: golden orders: /usr/bin/python3 cannot import torch and numpy (make check installs python3-torch, python3-numpy)"
fi

for t in "$B"/tests/check_*; do
	[ -x "$t" ] || continue
	case $t in *.c|*.o|*.d) continue ;; esac
	name=$(basename "$t")
	if [ $valgrind = 1 ] && [ "$name" = check_posix ]; then
		# valgrind 3.19 does not model io_uring: the ring never completes.
		skipped=$((skipped + 1)); echo "SKIP: $name: valgrind cannot run io_uring programs"
		continue
	fi
	if [ $valgrind = 1 ]; then
		run "$name" 1800 env CK_FORK=no CK_DEFAULT_TIMEOUT=600 valgrind -q --leak-check=full \
			--errors-for-leak-kinds=definite --error-exitcode=1 "$t"
	else
		run "$name" 600 "$t"
	fi
done

if [ $unit_only = 0 ]; then
	for t in "$SRCDIR"/tests/it-*.sh "$SRCDIR"/tests/remote-*.sh; do
		[ -f "$t" ] || continue
		case $t in *-lib.sh) continue ;; esac
		run "$(basename "$t" .sh)" 900 bash "$t"
	done
fi

# Nothing may be left mounted by a test.
# (plain sh: make runs this with sh, so no process substitution)
left=$(test_mounts | while read -r m; do
	case "
$mounts_before
" in *"
$m
"*) ;; *) echo "$m" ;; esac
done)
if [ -n "$left" ]; then
	echo "FAIL: epochfs mounts left behind by the tests:"; echo "$left"
	for m in $left; do fusermount3 -uz "$m" 2>/dev/null; done
	fail=$((fail + 1))
fi
[ -n "$failed_names" ] && echo "failed:$failed_names"
echo "$pass passed, $fail failed, $skipped skipped"
[ $fail -eq 0 ]
