# SPDX-License-Identifier: MIT
#
# The WAN part of the benchmark, sourced by run.sh (which has built denvrd and
# started the nginx upstream).  A relay (relay.py) delays every chunk by
# BENCH_WAN_DELAY_MS in each direction, so each TCP, TLS and HTTP round trip
# costs 2 x that, as it would to a Denvr API tens of milliseconds away.
#   (a) BENCH_WAN_CALLS sequential calls, each from a fresh process: an SDK-like
#       client (TLS handshake, Authenticate, call), the same with an API key
#       (no login), and curl calling denvrd (which holds a login and a warm
#       upstream connection);
#   (b) BENCH_WAN_CONC concurrent callers, each call on a new connection;
#   (c) fresh curl processes repeating a GET that denvrd's cache holds.

WAN_DELAY_MS=${BENCH_WAN_DELAY_MS:-20}
WAN_CALLS=${BENCH_WAN_CALLS:-50}
WAN_CONC=${BENCH_WAN_CONC:-64}
WAN=$TMP/wan.tsv
WAN_NOTES=$TMP/wan-notes.tsv
WAN_USER=bench@example.com
WAN_PASSWORD="bench-password-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
: >"$WAN"
: >"$WAN_NOTES"

wan_note() { printf '%s\t%s\n' "$1" "$2" >>"$WAN_NOTES"; }

RELAY_PORT=$(free_port)
python3 "$HERE/relay.py" "$RELAY_PORT" "127.0.0.1:$UP_PORT" "$WAN_DELAY_MS" >"$TMP/relay.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do grep -q ready "$TMP/relay.log" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$TMP/relay.log" || die "the WAN relay did not start: $(cat "$TMP/relay.log")"
RELAY_URL="https://127.0.0.1:$RELAY_PORT"
say "WAN: relay on $RELAY_PORT -> upstream, ${WAN_DELAY_MS} ms each way (round trip $((2 * WAN_DELAY_MS)) ms)"

start_wan_denvrd() {   # start_wan_denvrd NAME [EXTRA-TOML]: password login through the relay; sets WAN_PORT
        local name=$1 extra=${2:-} dir="$TMP/$1"
        WAN_PORT=$(free_port)
        write_config "$dir" "$RELAY_URL" "$WAN_PORT" warning \
                "$(printf 'username = "%s"\npassword = "%s"' "$WAN_USER" "$WAN_PASSWORD")" "$extra"
        env -i PATH="$PATH" HOME="$dir/home" LANG=C.UTF-8 \
                "$DENVRD" --config "$dir/denvr.toml" >"$dir/denvrd.log" 2>&1 &
        PIDS+=($!)
        LAST_PID=$!
        wait_http "http://127.0.0.1:$WAN_PORT/_denvrd/healthz" || die "$name: denvrd did not start"
        # The first call waits for the login: after it denvrd is warm.
        check_answer "$name" "http://127.0.0.1:$WAN_PORT$SERVERS_PATH"
}

fresh_curl() {   # fresh_curl LABEL URL: WAN_CALLS curl processes, one call each
        local i t
        for i in $(seq "$WAN_CALLS"); do
                t=$(curl -sf -o /dev/null --max-time 30 -w '%{time_total}' "$2") || t=failed
                printf '%s\t%s\n' "$1" "$t" >>"$WAN"
        done
}

fresh_python() {   # fresh_python LABEL ARGS...: WAN_CALLS python processes, one call each
        local label=$1 i t
        shift
        for i in $(seq "$WAN_CALLS"); do
                t=$(python3 "$HERE/wan_client.py" "$@") || t=failed
                printf '%s\t%s\n' "$label" "$t" >>"$WAN"
        done
}

concurrent() {   # concurrent LABEL CALLS ARGS...: WAN_CONC threads in one process
        local label=$1 calls=$2
        shift 2
        python3 "$HERE/wan_client.py" "$@" "$WAN_CONC" "$calls" | sed "s/^/$label\t/" >>"$WAN"
}

python3 "$HERE/wan_client.py" apikey "$RELAY_URL" "$TMP/ca.pem" "$APIKEY" "$SERVERS_PATH" >/dev/null ||
        die "WAN: the upstream does not answer through the relay"

start_wan_denvrd denvrd-wan
WAN_DENVRD_PID=$LAST_PID
WAN_DENVRD_URL="http://127.0.0.1:$WAN_PORT"
start_wan_denvrd denvrd-wan-cache "[cache]
\"$SERVERS_PATH\" = 300"
WAN_CACHE_URL="http://127.0.0.1:$WAN_PORT"

say "WAN: reference, $WAN_CALLS calls on one kept-alive connection"
python3 "$HERE/wan_client.py" warm "$RELAY_URL" "$TMP/ca.pem" "$APIKEY" "$SERVERS_PATH" "$WAN_CALLS" |
        sed "s/^/warm\t/" >>"$WAN"
say "WAN (a): $WAN_CALLS calls, each from a fresh process"
fresh_python sdk-fresh sdk "$RELAY_URL" "$TMP/ca.pem" "$WAN_USER" "$WAN_PASSWORD" "$SERVERS_PATH"
fresh_python apikey-fresh apikey "$RELAY_URL" "$TMP/ca.pem" "$APIKEY" "$SERVERS_PATH"
fresh_curl denvrd-fresh "$WAN_DENVRD_URL$SERVERS_PATH"
say "WAN (b): $WAN_CONC concurrent callers"
concurrent sdk-conc $((WAN_CONC * 5)) sdk "$RELAY_URL" "$TMP/ca.pem" "$WAN_USER" "$WAN_PASSWORD" "$SERVERS_PATH"
concurrent denvrd-conc $((WAN_CONC * 20)) local "$WAN_DENVRD_URL" "$SERVERS_PATH"
say "WAN (c): $WAN_CALLS fresh curl processes, GET held by denvrd's cache"
fresh_curl denvrd-cache-fresh "$WAN_CACHE_URL$SERVERS_PATH"

curl -s --max-time 5 "$WAN_DENVRD_URL/_denvrd/status" >"$TMP/wan-status.json" || true
wan_note denvrd.upstream_conns_opened "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["upstream"]["connections_opened"])' "$TMP/wan-status.json" 2>/dev/null || echo '?')"
wan_note delay_ms "$WAN_DELAY_MS"
wan_note calls "$WAN_CALLS"
wan_note conc "$WAN_CONC"
wan_note load_after "$(cut -d' ' -f1 /proc/loadavg)"
stop_pid "$WAN_DENVRD_PID"

python3 "$HERE/report.py" wan "$WAN" "$WAN_NOTES"
