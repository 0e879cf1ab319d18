#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# What identifying TCP peers costs: one command, not part of the default test run.
#
#   tests/bench/identify.sh [OTHER-DENVRD]
#
# 1. identify.c: CPU time of one NETLINK_SOCK_DIAG query (kept socket and a new
#    one), of a whole peer_identify_tcp() (query and user database), and for
#    contrast of one read of /proc/net/tcp{,6}, as is and with 12,000 more
#    loopback connections open.
# 2. identify.py: denvrd's own CPU time per GET /_denvrd/healthz on a new
#    connection each time and on one keep-alive connection, as is and with
#    12,000 more connections open; OTHER-DENVRD (e.g. a build of an earlier
#    commit) is measured beside it for comparison.
#
# Environment: BENCH_BUILD_DIR (default <repo>/build-bench, as run.sh),
# IDENTIFY_ROUNDS (default 20000), IDENTIFY_REQUESTS (4000), IDENTIFY_EXTRA (12000).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BUILD_DIR=${BENCH_BUILD_DIR:-$REPO/build-bench}
ROUNDS=${IDENTIFY_ROUNDS:-20000}
EXTRA=${IDENTIFY_EXTRA:-12000}

say() { printf '%s\n' "identify: $*" >&2; }
die() { say "error: $*"; exit 1; }

if [[ ! -f $BUILD_DIR/build.ninja ]]; then
        meson setup --buildtype=release -Db_ndebug=true "$BUILD_DIR" "$REPO" >/dev/null ||
                die "meson setup failed"
fi
ninja -C "$BUILD_DIR" daemon/denvrd >/dev/null || die "build failed"
# shellcheck disable=SC2046
cc -O2 -DNDEBUG -D_GNU_SOURCE -std=gnu11 -I"$REPO" \
        -o "$BUILD_DIR/bench-identify" "$HERE/identify.c" "$REPO/common/base/sock_diag.c" \
        "$REPO/daemon/core/peer.c" "$REPO/common/base/log.c" $(pkg-config --cflags --libs libsystemd) ||
        die "cannot build identify.c"

say "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$BUILD_DIR/bench-identify" "$ROUNDS" "$EXTRA"
echo
IDENTIFY_EXTRA=$EXTRA python3 "$HERE/identify.py" "$BUILD_DIR/daemon/denvrd" "$@"
say "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
