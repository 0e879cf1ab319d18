#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Runs every libFuzzer target of a -Dfuzzers=true build for SECONDS each,
# starting from the seed corpus in tests/fuzz/corpus/NAME (copied, so the
# repository's seeds are never modified).  Prints executions per target and
# fails on any finding.  Usage: tests/fuzz/run.sh BUILDDIR [SECONDS]
set -euo pipefail

build=$1
seconds=${2:-60}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d -t denvrd-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT

found=0
rc=0
for exe in "$build"/tests/fuzz/fuzz-*; do
        [ -f "$exe" ] && [ -x "$exe" ] || continue
        found=1
        name=$(basename "$exe")
        seeds="$here/corpus/${name#fuzz-}"
        mkdir -p "$work/$name"
        dict=()
        [ -f "$here/${name#fuzz-}.dict" ] && dict=(-dict="$here/${name#fuzz-}.dict")
        if "$exe" -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$work/$name-" \
                "${dict[@]}" "$work/$name" "$seeds" >"$work/$name.log" 2>&1; then
                execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/$name.log" | grep -o '[0-9]*$' || echo "?")
                echo "$name: ok, $execs executions in $seconds s"
        else
                echo "$name: FAILED"
                tail -n 40 "$work/$name.log"
                rc=1
        fi
done
if [ "$found" = 0 ]; then
        echo "no fuzz targets in $build/tests/fuzz" >&2
        exit 1
fi
exit "$rc"
