#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# denvrd benchmark: one command, not part of the default test run.
#
#   tests/bench/run.sh [--all | --loopback | --wan | --profile | --anchor] [--rounds N]
#
# (default --all; --anchor: the loopback part for direct, nginx-1w, go-1p and
# denvrd-h1 only; --rounds: loopback rounds, default 3, the table gives medians)
#
# Builds an optimised denvrd (build-bench/, release, NDEBUG), starts an nginx
# HTTPS upstream (self-signed CA) serving Denvr-like JSON on two ports, one
# offering HTTP/2 and HTTP/1.1, one HTTP/1.1 only, and measures.
#
# Loopback, with wrk:
#   direct       wrk -> nginx upstream (HTTPS)
#   nginx-1w     wrk -> nginx reverse proxy injecting Authorization (1 worker,
#                upstream keepalive 128) -> upstream; nginx's proxy speaks HTTP/1.1 upstream
#   nginx-auto   the same with worker_processes auto (reference)
#   go-1p        wrk -> Go httputil.ReverseProxy over a pooled http.Transport
#                (goproxy.go, GOMAXPROCS=1, 128 idle connections, HTTP/1.1 upstream),
#                injecting Authorization: kubectl proxy's way of proxying
#   denvrd-h1    wrk -> denvrd (API-key mode, log_level=warning) -> upstream over HTTP/1.1
#   denvrd-h2    the same, upstream over HTTP/2
#   denvrd-info  denvrd-h2 at log_level=info (access log on; reference)
# Workloads: 1 connection (latency), 64 connections (throughput), 20 KB
# answers at 16 connections.  Each round starts every target afresh, then
# measures each workload on one target after the other; the table gives the
# median of the rounds, then the targets (PASS/MISS).  With two CPUs or more the
# server measured has one to itself (BENCH_PIN).
#
# --profile (profile.sh): instructions per request under callgrind instead.
#
# WAN (wan.sh): the same upstream behind a relay that delays every chunk
# (BENCH_WAN_DELAY_MS each way, default 20): fresh-process callers logging in
# as the SDKs do against callers of denvrd, 64 concurrent callers, the cache.
#
# Environment (all optional):
#   BENCH_DURATION=10   seconds per measurement     BENCH_WARMUP=2  seconds of warm-up
#   BENCH_BUILD_DIR     default <repo>/build-bench  BENCH_SKIP_INFO=1  skip denvrd-info
#   BENCH_TARGETS       subset, e.g. "direct denvrd-h2" (default: all)
#   BENCH_ROUNDS=3      loopback rounds (as --rounds)
#   BENCH_KEEP=1        keep the temporary directory (logs, configs) for inspection
#   BENCH_MAX_LOAD=1.5  warn when the 1-minute load average is above this
#   BENCH_WAIT_QUIET=0  seconds to wait (at most) for the load average to drop below it
#   BENCH_MAX_UP        denvrd's max_upstream_connections (default: denvrd's default, 64)
#   BENCH_PIN=1         loopback: the server measured alone on the last CPU, wrk, the upstream
#                       and this script on the others (0: let the scheduler place them)
#   BENCH_WAN_DELAY_MS=20  BENCH_WAN_CALLS=50  BENCH_WAN_CONC=64  (see wan.sh)
set -euo pipefail

usage() { echo "usage: $0 [--all | --loopback | --wan | --profile | --anchor] [--rounds N]" >&2; exit 2; }
MODE=all
ANCHOR=0
ROUNDS=${BENCH_ROUNDS:-3}
while (($#)); do
        case $1 in
        --all)      MODE=all ;;
        --loopback) MODE=loopback ;;
        --wan)      MODE=wan ;;
        --profile)  MODE=profile ;;
        --anchor)   MODE=loopback; ANCHOR=1 ;;
        --rounds)   (($# > 1)) || usage; ROUNDS=$2; shift ;;
        --rounds=*) ROUNDS=${1#--rounds=} ;;
        *) usage ;;
        esac
        shift
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || usage

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
BUILD_DIR=${BENCH_BUILD_DIR:-$REPO/build-bench}
TARGETS=${BENCH_TARGETS:-"direct nginx-1w nginx-auto go-1p denvrd-h1 denvrd-h2 denvrd-info"}
# The anchors side by side: one HTTP/1.1 upstream, one core each.
[[ $ANCHOR == 1 ]] && TARGETS="direct nginx-1w go-1p denvrd-h1"
[[ ${BENCH_SKIP_INFO:-0} == 1 ]] && TARGETS=${TARGETS//denvrd-info/}
MAX_LOAD=${BENCH_MAX_LOAD:-1.5}
MAX_UP_CONNS=${BENCH_MAX_UP:-64}   # denvrd's [daemon] max_upstream_connections (64 is the default)
APIKEY="bench-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"

say() { printf '%s\n' "bench: $*" >&2; }
die() { say "error: $*"; exit 1; }

# --- tools -------------------------------------------------------------------

need_pkg() {   # need_pkg COMMAND DEBIAN-PACKAGE
        command -v "$1" >/dev/null 2>&1 && return 0
        if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
                die "$1 is missing: install the Debian package $2 (apt-get install $2)"
        fi
        say "$1 is missing: installing the Debian package $2 (apt-get install -y $2)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y "$2" >/dev/null ||
                { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y "$2" >/dev/null; } ||
                die "could not install $2"
}
if [[ -x /usr/sbin/nginx ]]; then NGINX=/usr/sbin/nginx; else need_pkg nginx nginx-light; NGINX=$(command -v nginx); fi
need_pkg wrk wrk
need_pkg openssl openssl
need_pkg curl curl
need_pkg python3 python3
need_pkg meson meson
need_pkg ninja ninja-build
"$NGINX" -V 2>&1 | grep -q http_stub_status_module || die "$NGINX lacks stub_status (need nginx-light or nginx)"
"$NGINX" -V 2>&1 | grep -q http_v2_module || die "$NGINX lacks HTTP/2"

# --- temporary area, cleanup -------------------------------------------------

TMP=$(mktemp -d "${TMPDIR:-/tmp}/denvrd-bench.XXXXXX")
PIDS=()
cleanup() {
        local p
        for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
        for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
        if [[ ${BENCH_KEEP:-0} == 1 ]]; then say "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_http() {   # wait_http URL [curl args...]: until it answers anything
        local url=$1; shift
        for _ in $(seq 100); do
                curl -s -o /dev/null --max-time 1 "$@" "$url" && return 0
                sleep 0.1
        done
        return 1
}

# --- CPU placement -----------------------------------------------------------

# On a virtual machine a wake-up costs very different amounts depending on
# whether the sleeper shares the waker's CPU: left to the scheduler, the same
# target's CPU per request moved by a third from one round to the next.  So the
# loopback part gives the server measured (each target alike) a CPU of its own
# and keeps wrk, the upstream and this script on the others.
SUT_CPU=
LOAD_CPUS=
ALL_CPUS=$(python3 -c 'import os; print(",".join(map(str, sorted(os.sched_getaffinity(0)))))')
# (With one CPU there is nothing to separate.)
if [[ ${BENCH_PIN:-1} != 0 && $MODE != wan && $MODE != profile && $ALL_CPUS == *,* ]] &&
        command -v taskset >/dev/null; then
        SUT_CPU=${ALL_CPUS##*,}
        LOAD_CPUS=${ALL_CPUS%,*}
fi
# Prefixes that place a command (taskset execs it: $! stays the server's pid).
ON_SUT=()
ON_ALL=()
if [[ -n $SUT_CPU ]]; then
        taskset -pc "$LOAD_CPUS" $$ >/dev/null || die "taskset failed"
        ON_SUT=(taskset -c "$SUT_CPU")
        ON_ALL=(taskset -c "$ALL_CPUS")
fi

# --- build -------------------------------------------------------------------

say "building an optimised denvrd in $BUILD_DIR"
if [[ ! -f $BUILD_DIR/build.ninja ]]; then
        meson setup --buildtype=release -Db_ndebug=true "$BUILD_DIR" "$REPO" >"$TMP/meson.log" 2>&1 ||
                { cat "$TMP/meson.log" >&2; die "meson setup failed"; }
else
        meson configure "$BUILD_DIR" -Dbuildtype=release -Db_ndebug=true >"$TMP/meson.log" 2>&1 ||
                { cat "$TMP/meson.log" >&2; die "meson configure failed"; }
fi
ninja -C "$BUILD_DIR" daemon/denvrd >"$TMP/ninja.log" 2>&1 || { tail -30 "$TMP/ninja.log" >&2; die "build failed"; }
DENVRD=$BUILD_DIR/daemon/denvrd
say "denvrd's allocator: $(ldd "$DENVRD" | grep -q libmimalloc && echo mimalloc || echo "the C library's")"
FLOOR=$BUILD_DIR/bench-floor
# shellcheck disable=SC2046
cc -O2 -o "$FLOOR" "$HERE/floor.c" $(pkg-config --cflags --libs libcurl libmicrohttpd libsystemd jansson) ||
        die "cannot build the library-floor program"

# The Go anchor, built with Debian's golang-go (standard library only) into the
# temporary directory, its build cache and GOPATH there too.  Not installed
# here: the benchmark then runs without it.
GOPROXY_BIN=
if [[ $MODE == all || $MODE == loopback ]] && [[ " $TARGETS " == *" go-1p "* ]]; then
        if ! command -v go >/dev/null 2>&1; then
                say "skipping go-1p (the Go anchor): go is missing; install Debian's golang-go (apt-get install golang-go)"
                TARGETS=" $TARGETS "
                TARGETS=${TARGETS// go-1p / }
        else
                say "building the Go anchor ($(go version | cut -d' ' -f3))"
                mkdir -p "$TMP/go"
                GOPROXY_BIN=$TMP/go/goproxy
                env GOCACHE="$TMP/go/cache" GOPATH="$TMP/go/path" GOENV=off GOFLAGS= GO111MODULE=off CGO_ENABLED=0 \
                        go build -trimpath -o "$GOPROXY_BIN" "$HERE/goproxy.go" >"$TMP/go/build.log" 2>&1 ||
                        { cat "$TMP/go/build.log" >&2; die "go build of goproxy.go failed"; }
        fi
fi

# --- certificates and content ------------------------------------------------

say "making a test CA and server certificate"
(
        cd "$TMP"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
                -subj "/CN=denvrd bench CA" -keyout ca.key -out ca.pem 2>/dev/null
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
                -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >ext.cnf
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
                -extfile ext.cnf -out server.pem 2>/dev/null
) || die "openssl failed"

mkdir -p "$TMP/www"
python3 "$HERE/content.py" "$TMP/www"
# nginx started as root serves files as an unprivileged user: let it reach www/
# (the directory stays unlistable; keys and the denvrd config are mode 0600).
chmod 711 "$TMP"
chmod 755 "$TMP/www"
chmod 644 "$TMP/www"/*

# --- nginx upstream ----------------------------------------------------------

UP_PORT=$(free_port)            # HTTP/2 and HTTP/1.1 (ALPN)
UP1_PORT=$(free_port)           # HTTP/1.1 only
UP_STATUS_PORT=$(free_port)
mkdir -p "$TMP/up/logs"
cat >"$TMP/up/nginx.conf" <<EOF
worker_processes 1;
error_log $TMP/up/logs/error.log warn;
pid $TMP/up/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/up/tmp; proxy_temp_path $TMP/up/tmp;
    fastcgi_temp_path $TMP/up/tmp; uwsgi_temp_path $TMP/up/tmp; scgi_temp_path $TMP/up/tmp;
    # A proxy should be able to keep its connections for the whole run.
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    map \$http_authorization \$auth_ok { "ApiKey $APIKEY" 1; "~^Bearer " 1; default 0; }
    server {
        listen 127.0.0.1:$UP_PORT ssl http2;
        listen 127.0.0.1:$UP1_PORT ssl;
        ssl_certificate $TMP/server.pem;
        ssl_certificate_key $TMP/server.key;
        ssl_session_cache shared:SSL:1m;
        # nginx 1.22 would offer TLS 1.2 at most; Denvr's API, like any
        # current HTTPS server, does 1.3 (one round trip less to connect).
        ssl_protocols TLSv1.2 TLSv1.3;
        default_type application/json;
        root $TMP/www;
        location = /api/TokenAuth/Authenticate {
            return 200 '{"result":{"accessToken":"bench-access-token","encryptedAccessToken":"x","expireInSeconds":86400,"refreshToken":"bench-refresh-token","refreshTokenExpireInSeconds":604800,"userId":1,"requiresTwoFactorVerification":false,"shouldResetPassword":false},"targetUrl":null,"success":true,"error":null,"unAuthorizedRequest":false,"__abp":true}';
        }
        location = /api/v1/servers/virtual/GetServers {
            if (\$auth_ok = 0) { return 401 '{"result":null,"success":false,"error":{"code":0,"message":"Unauthorized"},"unAuthorizedRequest":true,"__abp":true}'; }
            try_files /servers.json =404;
        }
        location = /api/v1/bench/Big {
            if (\$auth_ok = 0) { return 401 '{"result":null,"success":false,"error":{"code":0,"message":"Unauthorized"},"unAuthorizedRequest":true,"__abp":true}'; }
            try_files /big.json =404;
        }
    }
    server {
        listen 127.0.0.1:$UP_STATUS_PORT;
        location = /status { stub_status; }
    }
}
EOF

start_nginx() {   # start_nginx DIR [PREFIX...]: runs nginx in the foreground (daemon off), records its pid
        local dir=$1
        shift
        "$@" "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log" -g 'daemon off;' >>"$dir/logs/stdout.log" 2>&1 &
        PIDS+=($!)
        LAST_PID=$!
}
stop_pid() {
        kill "$1" 2>/dev/null || true
        wait "$1" 2>/dev/null || true
}

"$NGINX" -t -p "$TMP/up" -c "$TMP/up/nginx.conf" -e "$TMP/up/logs/error.log" >"$TMP/up/logs/test.log" 2>&1 ||
        { cat "$TMP/up/logs/test.log" >&2; die "upstream nginx config rejected"; }
start_nginx "$TMP/up"
UP_PID=$LAST_PID
UP_URL="https://127.0.0.1:$UP_PORT"
UP1_URL="https://127.0.0.1:$UP1_PORT"
wait_http "$UP_URL/" --cacert "$TMP/ca.pem" || die "upstream nginx did not start (see $TMP/up/logs)"

[[ $(curl -s -o /dev/null -w '%{http_code}' --cacert "$TMP/ca.pem" "$UP_URL/api/v1/servers/virtual/GetServers") == 401 ]] ||
        die "the upstream does not insist on Authorization"

# Accepted connections at the upstream (stub_status), this reading included.
upstream_accepts() {
        curl -s --max-time 2 "http://127.0.0.1:$UP_STATUS_PORT/status" | awk 'NR==3 {print $1}'
}

# --- measurement -------------------------------------------------------------

RESULTS=$TMP/results.tsv
ROUND=1
: >"$RESULTS"
SERVERS_PATH=/api/v1/servers/virtual/GetServers
BIG_PATH=/api/v1/bench/Big

check_answer() {   # check_answer NAME URL [CURL-ARGS]: must authorise and answer 200 with the body
        local name=$1 url=$2 code
        shift 2
        code=$(curl -s -o "$TMP/check.out" -w '%{http_code}' --cacert "$TMP/ca.pem" --max-time 5 "$@" "$url") || true
        [[ $code == 200 ]] && grep -q '"__abp":true' "$TMP/check.out" ||
                die "$name: $url answered $code: $(head -c 300 "$TMP/check.out")"
}

# CPU time (user + system, clock ticks) used so far by the server process(es) in
# CPU_PIDS and their children (nginx's workers): the table's CPU per request.
CPU_PIDS=
cpu_ticks() {
        local p sum=0 t
        for p in $CPU_PIDS $(for p in $CPU_PIDS; do pgrep -P "$p"; done); do
                t=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null) || t=0
                sum=$((sum + ${t:-0}))
        done
        echo "$sum"
}

# Per target, for the round being measured: its base URL, the pid whose CPU (with
# its children's) it is charged, the header wrk sends (direct only), the RSS
# sampler (denvrd only), and the upstream connections
# it opened, in all and during the measured runs only (after each warm-up): a
# proxy that keeps its connections opens none during them.
declare -A T_URL T_PID T_HEADER T_SAMPLER T_CONNS T_CONNS_MEASURED

# A count between two upstream_accepts readings subtracts one (the later reading).
run_wrk() {   # run_wrk TARGET WORKLOAD CONNS THREADS PATH
        local target=$1 workload=$2 conns=$3 threads=$4 url=${T_URL[$1]}$5 hdr=${T_HEADER[$1]:-} out c0 c1 a a0 a1
        out="$TMP/wrk-$target-$workload-r$ROUND.txt"
        CPU_PIDS=${T_PID[$target]}
        a=$(upstream_accepts)
        wrk ${hdr:+-H "$hdr"} -t"$threads" -c"$conns" -d"${WARMUP}s" "$url" >/dev/null 2>&1 || true
        a0=$(upstream_accepts)
        c0=$(cpu_ticks)
        wrk ${hdr:+-H "$hdr"} -t"$threads" -c"$conns" -d"${DURATION}s" --timeout 10s --latency "$url" >"$out" 2>&1 ||
                say "wrk failed for $target/$workload (see $out)"
        c1=$(cpu_ticks)
        a1=$(upstream_accepts)
        T_CONNS_MEASURED[$target]=$(( ${T_CONNS_MEASURED[$target]:-0} + a1 - a0 - 1 ))
        T_CONNS[$target]=$(( ${T_CONNS[$target]:-0} + a1 - a - 2 ))
        python3 "$HERE/report.py" parse "$target" "$workload" "$out" "$((c1 - c0))" "$ROUND" >>"$RESULTS"
}

# The workloads: NAME CONNS WRK-THREADS PATH.
WORKLOADS=("c1 1 1 $SERVERS_PATH" "c64 64 2 $SERVERS_PATH" "big16 16 2 $BIG_PATH")

target_started() {   # target_started NAME URL PID A0: record a started target (A0: accepts before it started)
        T_URL[$1]=$2
        T_PID[$1]=$3
        T_CONNS_MEASURED[$1]=0
        T_CONNS[$1]=$(( $(upstream_accepts) - $4 - 1 ))
}

target_conns_note() {   # target_conns_note NAME
        note "$1.upstream_conns" "${T_CONNS[$1]}"
        note "$1.upstream_conns_measured" "${T_CONNS_MEASURED[$1]}"
}

note() { printf '%s\t%s\n' "$1" "$2" >>"$TMP/notes.tsv"; }
: >"$TMP/notes.tsv"

start_nginx_proxy() {   # start_nginx_proxy NAME WORKERS
        local name=$1 workers=$2 dir="$TMP/$1" port a0
        port=$(free_port)
        mkdir -p "$dir/logs"
        cat >"$dir/nginx.conf" <<EOF
worker_processes $workers;
error_log $dir/logs/error.log warn;
pid $dir/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/tmp; proxy_temp_path $dir/tmp;
    fastcgi_temp_path $dir/tmp; uwsgi_temp_path $dir/tmp; scgi_temp_path $dir/tmp;
    keepalive_requests 10000000;
    upstream denvr {
        server 127.0.0.1:$UP1_PORT;
        # At least the benchmark's concurrency, so no request waits for a
        # handshake: nginx then keeps every connection it opened.
        keepalive 128;
        keepalive_requests 10000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:$port;
        location / {
            proxy_pass https://denvr;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host localhost;
            proxy_set_header Authorization "ApiKey $APIKEY";
            proxy_ssl_server_name on;
            proxy_ssl_name localhost;
            proxy_ssl_trusted_certificate $TMP/ca.pem;
            proxy_ssl_verify on;
            proxy_ssl_session_reuse on;
        }
    }
}
EOF
        "$NGINX" -t -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log" >"$dir/logs/test.log" 2>&1 ||
                { cat "$dir/logs/test.log" >&2; die "$name: nginx config rejected"; }
        say "target $name: wrk -> nginx proxy (worker_processes $workers, upstream keepalive 128, HTTP/1.1) -> upstream"
        a0=$(upstream_accepts)
        if [[ $workers == 1 ]]; then start_nginx "$dir" "${ON_SUT[@]}"; else start_nginx "$dir" "${ON_ALL[@]}"; fi
        local pid=$LAST_PID
        wait_http "http://127.0.0.1:$port/" || die "$name: nginx did not start"
        check_answer "$name" "http://127.0.0.1:$port$SERVERS_PATH"
        check_answer "$name" "http://127.0.0.1:$port$BIG_PATH"
        target_started "$name" "http://127.0.0.1:$port" "$pid" "$a0"
}
finish_nginx() {   # finish_nginx NAME
        target_conns_note "$1"
        stop_pid "${T_PID[$1]}"
}

start_go() {   # start_go NAME: the Go anchor (goproxy.go), one core
        local name=$1 dir="$TMP/$1" port a0 pid
        port=$(free_port)
        mkdir -p "$dir"
        say "target $name: wrk -> Go httputil.ReverseProxy (GOMAXPROCS=1, 128 idle upstream connections, HTTP/1.1) -> upstream"
        a0=$(upstream_accepts)
        "${ON_SUT[@]}" env -i PATH="$PATH" GOMAXPROCS=1 BENCH_PROXY_AUTH="ApiKey $APIKEY" \
                "$GOPROXY_BIN" -listen "127.0.0.1:$port" -upstream "$UP1_URL" -ca "$TMP/ca.pem" -conns 128 \
                >>"$dir/goproxy.log" 2>&1 &
        pid=$!
        PIDS+=("$pid")
        wait_http "http://127.0.0.1:$port/" || die "$name: the Go proxy did not start ($(tail -5 "$dir/goproxy.log"))"
        check_answer "$name" "http://127.0.0.1:$port$SERVERS_PATH"
        check_answer "$name" "http://127.0.0.1:$port$BIG_PATH"
        target_started "$name" "http://127.0.0.1:$port" "$pid" "$a0"
}
finish_go() {   # finish_go NAME
        note_rss "$1" after "${T_PID[$1]}"
        target_conns_note "$1"
        stop_pid "${T_PID[$1]}"
}

rss_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
pss_kib() { awk '$1 == "Pss:" {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
note_rss() {   # note_rss NAME WHEN PID: total, private (anonymous) and proportional RSS
        note "$1.rss_${2}_kib" "$(rss_kib "$3" VmRSS)"
        note "$1.rss_${2}_anon_kib" "$(rss_kib "$3" RssAnon)"
        note "$1.rss_${2}_pss_kib" "$(pss_kib "$3")"
}

# rss_sampler PID DIR: the peaks of VmRSS and RssAnon, every 0.1 s, into DIR/rss_peak and
# DIR/anon_peak.  Shell builtins only (a FIFO nobody writes to is the timer): it runs through
# every target's measurements, on the CPUs of wrk and the upstream, and must take nothing from them.
rss_sampler() {
        local pid=$1 dir=$2 peak=0 apeak=0 v tick line lines
        rm -f "$dir/tick"
        mkfifo "$dir/tick" && exec {tick}<>"$dir/tick" || return
        while kill -0 "$pid" 2>/dev/null; do
                mapfile -t lines <"/proc/$pid/status" 2>/dev/null || break
                for line in "${lines[@]}"; do   # "VmRSS:   1776 kB"
                        case $line in
                        VmRSS:*)   v=${line//[!0-9]/}; (( v > peak )) && peak=$v && echo "$peak" >"$dir/rss_peak" ;;
                        RssAnon:*) v=${line//[!0-9]/}; (( v > apeak )) && apeak=$v && echo "$apeak" >"$dir/anon_peak" ;;
                        esac
                done
                read -rt 0.1 -u "$tick" _ || true
        done
}

measure_floor() {   # the idle RSS of a program that only loads and initialises denvrd's libraries
        local pid
        "$FLOOR" >"$TMP/floor.out" &
        pid=$!
        PIDS+=("$pid")
        for _ in $(seq 50); do grep -q ready "$TMP/floor.out" 2>/dev/null && break; sleep 0.1; done
        sleep 0.5
        note_rss floor start "$pid"
        stop_pid "$pid"
}

# write_config DIR SERVER PORT LOG-LEVEL CREDENTIALS-LINES [DAEMON-LINES]: DIR/denvr.toml
# (mode 600) for a denvrd on 127.0.0.1:PORT against SERVER, trusting the test CA.
write_config() {
        local dir=$1 server=$2 port=$3 level=$4 creds=$5 extra=${6:-}
        mkdir -p "$dir/home"
        cat >"$dir/denvr.toml" <<EOF
[defaults]
server = "$server"
cluster = "Msc1"

[credentials]
$creds

[daemon]
listen = "127.0.0.1:$port"
socket = ""
ca_file = "$TMP/ca.pem"
log_level = "$level"
$extra
EOF
        chmod 600 "$dir/denvr.toml"
}

start_denvrd() {   # start_denvrd NAME LOG-LEVEL UPSTREAM-URL
        local name=$1 level=$2 server=$3 dir="$TMP/$1" port a0 pid
        port=$(free_port)
        write_config "$dir" "$server" "$port" "$level" "apikey = \"$APIKEY\"" \
                "max_upstream_connections = $MAX_UP_CONNS"
        say "target $name: wrk -> denvrd (API key, log_level=$level) -> $server"
        a0=$(upstream_accepts)
        "${ON_SUT[@]}" env -i PATH="$PATH" HOME="$dir/home" LANG=C.UTF-8 \
                "$DENVRD" --config "$dir/denvr.toml" >"$dir/denvrd.log" 2>&1 &
        pid=$!
        PIDS+=("$pid")
        wait_http "http://127.0.0.1:$port/_denvrd/healthz" || die "$name: denvrd did not start (log: $(tail -5 "$dir/denvrd.log"))"
        sleep 0.5
        note_rss "$name" start "$pid"
        check_answer "$name" "http://127.0.0.1:$port$SERVERS_PATH"
        check_answer "$name" "http://127.0.0.1:$port$BIG_PATH"

        # Sample RSS and its private part while under load (VmHWM gives the
        # true peak of RSS at the end; nothing does for RssAnon).
        rm -f "$dir/rss_peak" "$dir/anon_peak"
        rss_sampler "$pid" "$dir" &
        T_SAMPLER[$name]=$!
        PIDS+=("$!")
        target_started "$name" "http://127.0.0.1:$port" "$pid" "$a0"
}
finish_denvrd() {   # finish_denvrd NAME
        local name=$1 dir="$TMP/$1" pid=${T_PID[$1]} port=${T_URL[$1]##*:}
        sleep 3   # denvrd trims its heap after 2 s without requests
        note_rss "$name" after "$pid"
        note "$name.rss_hwm_kib" "$(rss_kib "$pid" VmHWM)"
        note "$name.rss_sampled_peak_kib" "$(cat "$dir/rss_peak" 2>/dev/null || echo 0)"
        note "$name.anon_sampled_peak_kib" "$(cat "$dir/anon_peak" 2>/dev/null || echo 0)"
        curl -s --max-time 5 "http://127.0.0.1:$port/_denvrd/status" >"$dir/status.json" || true
        note "$name.status_conns_opened" "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["upstream"]["connections_opened"])' "$dir/status.json" 2>/dev/null || echo '?')"
        stop_pid "${T_SAMPLER[$name]}"
        stop_pid "$pid"
        target_conns_note "$name"
        note "$name.log_lines" "$(wc -l <"$dir/denvrd.log")"
}

load_high() { awk -v l="$(cut -d' ' -f1 /proc/loadavg)" -v m="$MAX_LOAD" 'BEGIN { exit !(l > m) }'; }
waited=0
while load_high && (( waited < ${BENCH_WAIT_QUIET:-0} )); do
        (( waited % 60 == 0 )) && say "load average $(cut -d' ' -f1 /proc/loadavg) > $MAX_LOAD: waiting for a quieter machine"
        sleep 10
        waited=$((waited + 10))
done
load=$(cut -d' ' -f1 /proc/loadavg)
note machine.load_before "$load"
note machine.cpus "$(tr ',' '\n' <<<"$ALL_CPUS" | wc -l)"
note machine.clk_tck "$(getconf CLK_TCK)"
if awk -v l="$load" -v m="$MAX_LOAD" 'BEGIN { exit !(l > m) }'; then
        say "warning: load average $load > $MAX_LOAD: the machine is busy, numbers will be noisy"
fi
note run.duration "$DURATION"
note run.warmup "$WARMUP"
note run.max_upstream_connections "$MAX_UP_CONNS"
note run.rounds "$ROUNDS"
note run.pinning "${SUT_CPU:+server on CPU $SUT_CPU, wrk and the upstream on CPU $LOAD_CPUS}"

if [[ $MODE == profile ]]; then
        # shellcheck source=profile.sh
        . "$HERE/profile.sh"
        exit 0
fi

if [[ $MODE != wan ]]; then
measure_floor
# Rounds outside; in each, every target is started afresh, then each workload is
# measured on one target after the other, so that two targets' figures for a
# workload are taken seconds apart, not minutes: the machine's speed drifts
# over minutes (other guests of its host) and weighs on them alike.  The table
# takes medians of the rounds.
start_target() {   # start_target NAME
        case $1 in
        direct)
                say "target direct: wrk -> nginx upstream over HTTPS (wrk sends the Authorization)"
                T_HEADER[direct]="Authorization: ApiKey $APIKEY"
                check_answer direct "$UP_URL$SERVERS_PATH" -H "${T_HEADER[direct]}"
                check_answer direct "$UP_URL$BIG_PATH" -H "${T_HEADER[direct]}"
                T_URL[direct]=$UP_URL
                T_PID[direct]=$UP_PID ;;   # the upstream's CPU; finish_target leaves it running
        nginx-1w)    start_nginx_proxy nginx-1w 1 ;;
        nginx-auto)  start_nginx_proxy nginx-auto auto ;;
        go-1p)       start_go go-1p ;;
        denvrd-h1)   start_denvrd denvrd-h1 warning "$UP1_URL" ;;
        denvrd-h2)   start_denvrd denvrd-h2 warning "$UP_URL" ;;
        denvrd-info) start_denvrd denvrd-info info "$UP_URL" ;;
        *)           die "unknown target $1" ;;
        esac
}
finish_target() {   # finish_target NAME
        case $1 in
        direct) ;;
        nginx-*)  finish_nginx "$1" ;;
        go-*)     finish_go "$1" ;;
        denvrd-*) finish_denvrd "$1" ;;
        esac
}
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
(( ROUNDS > 1 )) && say "round $ROUND of $ROUNDS"
for t in $TARGETS; do start_target "$t"; done
for w in "${WORKLOADS[@]}"; do
        read -r wname wconns wthreads wpath <<<"$w"
        for t in $TARGETS; do run_wrk "$t" "$wname" "$wconns" "$wthreads" "$wpath"; done
done
for t in $TARGETS; do finish_target "$t"; done
done
note machine.load_after "$(cut -d' ' -f1 /proc/loadavg)"

python3 "$HERE/report.py" table "$RESULTS" "$TMP/notes.tsv"
fi

if [[ $MODE != loopback ]]; then
        # The WAN part measures callers, not one server: every CPU for everyone again.
        if [[ -n $SUT_CPU ]]; then
                taskset -pc "$ALL_CPUS" $$ >/dev/null
                for p in $UP_PID $(pgrep -P "$UP_PID"); do taskset -pc "$ALL_CPUS" "$p" >/dev/null; done
        fi
        # shellcheck source=wan.sh
        . "$HERE/wan.sh"
fi
