#!/bin/sh
# SPDX-License-Identifier: MIT
#
# get-promtool.sh DESTDIR: print the path of a promtool binary, fetching it once.
#
# promtool ships in Debian's `prometheus` package, but installing that package also
# starts a Prometheus server.  So the .deb is only downloaded (apt-get download) and
# unpacked (dpkg -x) into DESTDIR; nothing is installed.  A second run finds
# DESTDIR/usr/bin/promtool and does nothing else.  Exits non-zero (with the reason on
# stderr) when promtool cannot be obtained.
set -eu

if [ $# -ne 1 ] || [ -z "$1" ]; then
        echo "usage: $0 DESTDIR" >&2
        exit 2
fi
dest=$1
tool=$dest/usr/bin/promtool

if [ -x "$tool" ] && "$tool" --version >/dev/null 2>&1; then
        echo "$tool"
        exit 0
fi

for cmd in apt-get dpkg; do
        if ! command -v "$cmd" >/dev/null 2>&1; then
                echo "$0: $cmd not found: promtool is taken from Debian's prometheus package" >&2
                exit 1
        fi
done

mkdir -p "$dest"
dl=$(mktemp -d "$dest/download.XXXXXX")
trap 'rm -rf "$dl"' EXIT INT TERM

# apt-get download writes into the current directory and needs no root.
if ! (cd "$dl" && apt-get download -q prometheus >&2); then
        echo "$0: 'apt-get download prometheus' failed (no apt lists? run apt-get update)" >&2
        exit 1
fi
deb=
for f in "$dl"/prometheus_*.deb; do
        [ -f "$f" ] && deb=$f
done
if [ -z "$deb" ]; then
        echo "$0: apt-get download left no prometheus_*.deb" >&2
        exit 1
fi
dpkg -x "$deb" "$dl/root"
if [ ! -x "$dl/root/usr/bin/promtool" ]; then
        echo "$0: $deb has no usr/bin/promtool" >&2
        exit 1
fi
mkdir -p "$dest/usr/bin"
# Rename into place so a concurrent run never sees a half-written binary.
cp "$dl/root/usr/bin/promtool" "$dest/usr/bin/.promtool.tmp.$$"
mv -f "$dest/usr/bin/.promtool.tmp.$$" "$tool"
"$tool" --version >/dev/null
echo "$tool"
