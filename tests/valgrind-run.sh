#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# valgrind-run.sh BUILDDIR [PYTEST ARGS...]
#
# Runs a subset of the integration tests (the forwarding core and the smoke tests; not the
# load tests) with every denvrd under valgrind memcheck, then fails if any valgrind log
# reports an error or definitely lost bytes.  The harness already fails a test whose daemon
# exits non-zero on SIGTERM, which --error-exitcode=99 turns every valgrind error (definite
# leaks included) into; this script checks the logs as well, and that there are logs.
#
# Logs: BUILDDIR/valgrind-run/logs/vg.PID.log, pytest's under BUILDDIR/valgrind-run/pytest-tmp.
set -euo pipefail

if [ $# -lt 1 ]; then
        echo "usage: $0 BUILDDIR [PYTEST ARGS...]" >&2
        exit 2
fi
builddir=$(cd "$1" && pwd)
shift
here=$(cd "$(dirname "$0")" && pwd)
bin=$builddir/daemon/denvrd
if [ ! -x "$bin" ]; then
        echo "$bin not found: build first (meson compile -C $builddir)" >&2
        exit 2
fi
if ldd "$bin" | grep -q libmimalloc; then
        echo "$bin runs on mimalloc, whose allocation functions memcheck does not all follow:" \
                "build it with -Dallocator=system (as tests/run-all.sh does)" >&2
        exit 2
fi
if ! command -v valgrind >/dev/null; then
        echo "valgrind is not installed" >&2
        exit 2
fi
python=
for py in ${PYTHON:-} python3 /usr/bin/python3; do
        if "$py" -c 'import pytest' 2>/dev/null; then
                python=$py
                break
        fi
done
if [ -z "$python" ]; then
        echo "no python3 with pytest found (set PYTHON)" >&2
        exit 2
fi

out=$builddir/valgrind-run
rm -rf "$out"
mkdir -p "$out/logs"

export DENVRD_BIN=$bin
export DENVRD_TEST_TIMEOUT_SCALE=${DENVRD_TEST_TIMEOUT_SCALE:-10}
export DENVRD_WRAPPER="valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99 --log-file=$out/logs/vg.%p.log"
export PYTHONDONTWRITEBYTECODE=1

tests=(
        "$here/integration/test_smoke.py"
        "$here/integration/test_forwarding.py"
        "$here/integration/test_paths.py"
        # leases: the keeper's file, timer and engine calls, and the header's observer
        "$here/integration/test_leases.py::test_put_list_delete"
        "$here/integration/test_leases.py::test_header_on_create_sets_a_lease"
        "$here/integration/test_leases.py::test_never_acted_on_twice_across_restarts"
        "$here/integration/test_leases.py::test_machine_that_does_not_exist"
        "$here/integration/test_cost.py::test_cost_is_the_mocks_prices_and_read_once_per_interval"
        "$here/integration/test_cost.py::test_denvrd_stops_with_cost_reads_under_way"
)

set +e
"$python" -m pytest -q -ra -p no:cacheprovider --basetemp="$out/pytest-tmp" "${tests[@]}" "$@"
rc=$?
set -e

shopt -s nullglob
logs=("$out"/logs/vg.*.log)
fail=0
if [ ${#logs[@]} -eq 0 ]; then
        echo "valgrind-run: no valgrind logs in $out/logs: did denvrd run under valgrind?" >&2
        fail=1
fi
lost_total=0
for f in "${logs[@]}"; do
        if ! grep -q "ERROR SUMMARY:" "$f"; then
                echo "valgrind-run: $f has no ERROR SUMMARY (process killed?)" >&2
                fail=1
        fi
        if grep -Eq "ERROR SUMMARY: [1-9]" "$f"; then
                echo "valgrind-run: errors in $f:" >&2
                grep -E "ERROR SUMMARY|definitely lost|Invalid|uninitialised" "$f" | head -20 >&2
                fail=1
        fi
        lost=$(sed -nE 's/.*definitely lost: ([0-9,]+) bytes.*/\1/p' "$f" | tr -d , | head -1)
        if [ -n "$lost" ] && [ "$lost" -gt 0 ]; then
                echo "valgrind-run: $f: definitely lost $lost bytes" >&2
                lost_total=$((lost_total + lost))
                fail=1
        fi
done
echo "valgrind-run: ${#logs[@]} denvrd runs under valgrind; definitely lost: $lost_total bytes;" \
     "pytest exit $rc"
if [ $rc -ne 0 ] || [ $fail -ne 0 ]; then
        exit 1
fi
exit 0
