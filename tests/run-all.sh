#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Every test of the project, as CI runs it (README's second command):
#   1. builds: gcc, AddressSanitizer + UBSan, clang (-Werror), libFuzzer (clang);
#   2. in parallel: the full suite (C unit tests, integration suite, systemd
#      unit checks) on the gcc build and on the ASan+UBSan build, an
#      integration subset under valgrind --leak-check=full, and a short run of
#      every fuzz target.  Most integration time is spent waiting on timers,
#      so the suites share the two cores well; valgrind and the fuzzers run
#      niced so the timing-sensitive tests keep their CPU;
#   3. the systemd boot test (tests/systemd-boot.py: the README's systemd steps
#      under a real systemd in a container) once, for the gcc build, on its own
#      so its time bounds do not compete with the parallel suites;
#   4. the clang unit tests, and the systemd exposure figures printed.
# The last line is "tests: N passed, M failed".
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
out=${TEST_OUT:-$src/build-tests}
fuzz_seconds=${FUZZ_SECONDS:-20}
mkdir -p "$out"
cd "$src"

step() { printf '\n==== %s ====\n' "$*"; }

setup() {   # [SETUP_TARGETS="t ..."] setup DIR [meson options...]: builds those targets, or all
        local dir=$1; shift
        if [ ! -f "$dir/build.ninja" ]; then
                meson setup "$dir" "$@" >"$dir.setup.log" 2>&1 || { cat "$dir.setup.log"; return 1; }
        elif [ $# -gt 0 ]; then
                # An older build directory gets today's options (e.g. the gcc prefix).
                meson configure "$dir" "$@" >"$dir.setup.log" 2>&1 || { cat "$dir.setup.log"; return 1; }
        fi
        # shellcheck disable=SC2086 # a list of targets
        meson compile -C "$dir" ${SETUP_TARGETS:-}
}

step "builds: gcc, ASan + UBSan, clang, fuzzers"
# prefix /usr: the systemd boot test installs this build as the README does.
setup "$out/gcc" -Dprefix=/usr
setup "$out/asan" -Db_sanitize=address,undefined -Db_lundef=false
# valgrind's memcheck takes over the C library's malloc() family, not all of
# mimalloc's (its reallocarray(), say): the valgrind subset runs a daemon built
# with the C library's allocator.
SETUP_TARGETS=daemon/denvrd setup "$out/valgrind-build" -Dallocator=system
CC=clang setup "$out/clang"
CC=clang setup "$out/fuzz" -Dfuzzers=true -Db_lundef=false

step "suites (gcc, ASan + UBSan), valgrind subset and fuzzers, in parallel"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
meson test -C "$out/gcc" --no-rebuild --print-errorlogs --num-processes 1 --no-suite systemd-boot \
        >"$out/gcc.log" 2>&1 &
gcc_pid=$!
meson test -C "$out/asan" --no-rebuild --print-errorlogs --num-processes 1 --no-suite systemd-boot \
        >"$out/asan.log" 2>&1 &
asan_pid=$!
nice -n 10 tests/valgrind-run.sh "$out/valgrind-build" >"$out/valgrind.log" 2>&1 &
valgrind_pid=$!
nice -n 15 tests/fuzz/run.sh "$out/fuzz" "$fuzz_seconds" >"$out/fuzz.log" 2>&1 &
fuzz_pid=$!

gcc_rc=0; wait "$gcc_pid" || gcc_rc=$?
asan_rc=0; wait "$asan_pid" || asan_rc=$?
valgrind_rc=0; wait "$valgrind_pid" || valgrind_rc=$?
fuzz_rc=0; wait "$fuzz_pid" || fuzz_rc=$?
for part in gcc asan valgrind fuzz; do
        step "$part"
        cat "$out/$part.log"
done

step "systemd units: verify and exposure"
units_rc=0
tests/check-units.sh "$out/gcc" || units_rc=$?

step "systemd boot test (gcc build)"
boot_rc=0
meson test -C "$out/gcc" --no-rebuild --print-errorlogs --suite systemd-boot --logbase systemd-boot \
        || boot_rc=$?

step "clang unit tests"
clang_rc=0
meson test -C "$out/clang" --no-rebuild --suite unit --print-errorlogs || clang_rc=$?

step "summary"
printf 'gcc suite: %s\nASan+UBSan suite: %s\nvalgrind: %s\nfuzzers: %s\nsystemd units: %s\nsystemd boot: %s\nclang unit tests: %s\n' \
        "$gcc_rc" "$asan_rc" "$valgrind_rc" "$fuzz_rc" "$units_rc" "$boot_rc" "$clang_rc"
# Individual test counts: meson's own tests, with the integration suite's
# pytest cases counted one by one.
/usr/bin/python3 - "$out/gcc/meson-logs/testlog.json" "$out/gcc/meson-logs/systemd-boot.json" \
        "$out/asan/meson-logs/testlog.json" "$out/clang/meson-logs/testlog.json" <<'PY' || true
import json, re, sys
passed = failed = 0
for log in sys.argv[1:]:
    try:
        lines = open(log).read().splitlines()
    except OSError:
        continue
    for line in lines:
        t = json.loads(line)
        out = t.get("stdout") or ""
        final = [l for l in out.splitlines() if re.search(r"\d+ passed", l)]
        if t["name"].endswith("/ integration") and final:
            passed += int(re.search(r"(\d+) passed", final[-1]).group(1))
            failed += sum(int(x) for x in re.findall(r"(\d+) (?:failed|errors?)\b", final[-1]))
        elif t["result"] == "OK":
            passed += 1
        else:
            failed += 1
print("tests: %d passed, %d failed" % (passed, failed))
PY
[ "$gcc_rc$asan_rc$valgrind_rc$fuzz_rc$units_rc$boot_rc$clang_rc" = "0000000" ]
