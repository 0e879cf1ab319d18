#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Every test of the project, as CI runs it (README's second command):
#   1. gcc build: C unit tests, the integration suite, the systemd unit checks;
#   2. the same suite against an AddressSanitizer + UBSan build (in parallel:
#      most integration time is spent waiting on timers, not on the CPU);
#   3. clang build with -Werror, and its unit tests;
#   4. an integration subset under valgrind --leak-check=full;
#   5. each libFuzzer target for a short smoke run (the long runs are manual).
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
out=${TEST_OUT:-$src/build-tests}
mkdir -p "$out"
cd "$src"

step() { printf '\n==== %s ====\n' "$*"; }

setup() {   # setup DIR [meson options...]
        local dir=$1; shift
        if [ ! -f "$dir/build.ninja" ]; then
                meson setup "$dir" "$@" >"$dir.setup.log" 2>&1 || { cat "$dir.setup.log"; return 1; }
        fi
        meson compile -C "$dir"
}

step "gcc build"
setup "$out/gcc"
step "ASan + UBSan build"
setup "$out/asan" -Db_sanitize=address,undefined -Db_lundef=false
step "clang build (-Werror)"
CC=clang setup "$out/clang"

step "test suites: gcc and ASan+UBSan builds in parallel"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
meson test -C "$out/asan" --print-errorlogs --num-processes 1 >"$out/asan.log" 2>&1 &
asan_pid=$!
gcc_rc=0
meson test -C "$out/gcc" --print-errorlogs --num-processes 1 || gcc_rc=$?
asan_rc=0
wait "$asan_pid" || asan_rc=$?
echo "---- ASan + UBSan suite ----"
cat "$out/asan.log"

step "systemd units: verify and exposure (also part of the suites above)"
units_rc=0
tests/check-units.sh "$out/gcc" || units_rc=$?

step "clang unit tests"
clang_rc=0
meson test -C "$out/clang" --suite unit --print-errorlogs || clang_rc=$?

step "valgrind: integration subset"
valgrind_rc=0
tests/valgrind-run.sh "$out/gcc" || valgrind_rc=$?

step "fuzzer smoke runs (clang, libFuzzer)"
fuzz_rc=0
CC=clang setup "$out/fuzz" -Dfuzzers=true -Db_lundef=false || fuzz_rc=$?
if [ "$fuzz_rc" = 0 ]; then
        tests/fuzz/run.sh "$out/fuzz" 20 || fuzz_rc=$?
fi

step "summary"
printf 'gcc suite: %s\nASan+UBSan suite: %s\nsystemd units: %s\nclang unit tests: %s\nvalgrind: %s\nfuzzers: %s\n' \
        "$gcc_rc" "$asan_rc" "$units_rc" "$clang_rc" "$valgrind_rc" "$fuzz_rc"
# Individual test counts: meson's own tests, with the integration suite's
# pytest cases counted one by one.
/usr/bin/python3 - "$out/gcc" "$out/asan" "$out/clang" <<'PY' || true
import json, re, sys
passed = failed = 0
for build in sys.argv[1:]:
    try:
        lines = open(build + "/meson-logs/testlog.json").read().splitlines()
    except OSError:
        continue
    for line in lines:
        t = json.loads(line)
        out = t.get("stdout") or ""
        final = [l for l in out.splitlines() if re.search(r"\d+ passed", l)]
        if t["name"] == "integration" and final:
            passed += int(re.search(r"(\d+) passed", final[-1]).group(1))
            failed += sum(int(x) for x in re.findall(r"(\d+) (?:failed|errors?)\b", final[-1]))
        elif t["result"] == "OK":
            passed += 1
        else:
            failed += 1
print("tests: %d passed, %d failed" % (passed, failed))
PY
[ "$gcc_rc$asan_rc$units_rc$clang_rc$valgrind_rc$fuzz_rc" = "000000" ]
