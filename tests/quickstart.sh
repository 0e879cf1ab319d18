#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Builds denvrd and runs it in the foreground.  With credentials configured
# (denvr.toml or DENVR_* variables) it uses them; without, it starts the
# bundled mock Denvr upstream (tests/mock_denvr.py) over HTTPS on loopback
# and points denvrd at it, so a newcomer can see it work at once.
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$src/build}
port=${DENVRD_PORT:-3368}

if [ ! -f "$build/build.ninja" ]; then
        meson setup "$build" "$src"
fi
meson compile -C "$build"
denvrd="$build/daemon/denvrd"

if "$denvrd" --check-config >/dev/null 2>&1; then
        echo "denvrd: using your configuration (see: $denvrd --check-config)"
        exec "$denvrd"
fi

work=$(mktemp -d -t denvrd-quickstart.XXXXXX)
mock_pid=""
cleanup() {
        [ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null || true
        rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "denvrd: no Denvr credentials configured; starting the bundled mock upstream"
apikey="demo-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
python3 "$src/tests/mock_denvr.py" --tls --certdir "$work/certs" --port 0 --apikey "$apikey" \
        --quiet >"$work/mock.out" 2>"$work/mock.log" &
mock_pid=$!
for _ in $(seq 100); do
        grep -q '^PORT ' "$work/mock.out" 2>/dev/null && break
        kill -0 "$mock_pid" 2>/dev/null || { cat "$work/mock.log" >&2; exit 1; }
        sleep 0.1
done
mock_port=$(awk '/^PORT /{print $2}' "$work/mock.out")
[ -n "$mock_port" ] || { echo "the mock upstream did not start" >&2; cat "$work/mock.log" >&2; exit 1; }

umask 077
cat >"$work/denvr.toml" <<TOML
# Demo configuration: denvrd against the bundled mock upstream.
[defaults]
server = "https://127.0.0.1:$mock_port"
cluster = "Msc1"
tenant = "demo"

[credentials]
apikey_file = "$work/apikey"

[daemon]
listen = "127.0.0.1:$port"
socket = "$work/denvrd.sock"
ca_file = "$work/certs/ca.pem"
TOML
printf '%s\n' "$apikey" >"$work/apikey"

cat <<MSG

  mock Denvr upstream: https://127.0.0.1:$mock_port   (demo config: $work/denvr.toml)
  denvrd:              http://127.0.0.1:$port  and  $work/denvrd.sock

  Try, in another terminal:
    curl -s http://127.0.0.1:$port/_denvrd/healthz
    curl -s --unix-socket $work/denvrd.sock http://localhost/_denvrd/healthz
    curl -s http://127.0.0.1:$port/api/v1/servers/virtual/GetServers
    curl -s http://127.0.0.1:$port/servers/virtual/GetServers
    curl -s -X POST http://127.0.0.1:$port/api/v1/servers/virtual/StartServer -d '{"id":"vm-1"}'
    curl -s http://127.0.0.1:$port/_denvrd/status

  Ctrl-C stops both.

MSG
"$denvrd" --config "$work/denvr.toml" &
denvrd_pid=$!
trap 'kill -TERM $denvrd_pid 2>/dev/null; wait $denvrd_pid; exit 0' INT TERM
wait $denvrd_pid
