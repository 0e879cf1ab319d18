# SPDX-License-Identifier: MIT
#
# `run.sh --profile`, sourced by run.sh once the upstream runs: denvrd's
# instructions per request under callgrind (counts repeat on a busy machine,
# unlike times), for each upstream protocol and workload.  Counters are zeroed
# after a warm-up and dumped after a fixed number of requests (load.py).
# Note: valgrind counts every iteration of `rep stosb` as an instruction, so
# memset() of large blocks (libmicrohttpd zeroes its 32 KiB connection pool
# per request) weighs far more here than in time.

command -v valgrind >/dev/null && command -v callgrind_control >/dev/null ||
        die "the profile needs valgrind (apt-get install valgrind)"

PROFILE=$TMP/profile.tsv
: >"$PROFILE"

profile_one() {   # profile_one NAME UPSTREAM-URL WORKLOAD CALLS CONCURRENCY PATH
        local name=$1 server=$2 workload=$3 calls=$4 conc=$5 path=$6 dir="$TMP/prof-$1-$3" port pid out ir
        port=$(free_port)
        write_config "$dir" "$server" "$port" warning "apikey = \"$APIKEY\"" \
                "max_upstream_connections = $MAX_UP_CONNS"
        out=$dir/callgrind.out
        env -i PATH="$PATH" HOME="$dir/home" LANG=C.UTF-8 \
                valgrind --tool=callgrind --callgrind-out-file="$out" \
                "$DENVRD" --config "$dir/denvr.toml" >"$dir/denvrd.log" 2>&1 &
        pid=$!
        PIDS+=("$pid")
        for _ in $(seq 300); do curl -s -o /dev/null "http://127.0.0.1:$port/_denvrd/healthz" && break; sleep 0.1; done
        python3 "$HERE/load.py" $((conc * 20)) "$conc" "$port" "$path" || die "$name/$workload: warm-up failed"
        callgrind_control -z "$pid" >/dev/null 2>&1
        python3 "$HERE/load.py" "$calls" "$conc" "$port" "$path" || die "$name/$workload: load failed"
        callgrind_control -d "$pid" >/dev/null 2>&1
        stop_pid "$pid"
        [[ -n ${BENCH_PROFILE_KEEP:-} ]] && mkdir -p "$BENCH_PROFILE_KEEP" &&
                cp "$out.1" "$BENCH_PROFILE_KEEP/callgrind.$name-$workload"
        ir=$(callgrind_annotate "$out.1" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
        printf '%s\t%s\t%s\n' "$name" "$workload" "$((ir / calls))" >>"$PROFILE"
        say "profile $name $workload: $((ir / calls)) instructions per request"
}

# BENCH_PROFILE_ONLY="denvrd-h1:c1 ...": a subset; BENCH_PROFILE_KEEP=DIR keeps the
# callgrind files there (callgrind_annotate, or --diff against another run's).
wanted() { [[ -z ${BENCH_PROFILE_ONLY:-} || " $BENCH_PROFILE_ONLY " == *" $1:$2 "* ]]; }
for t in denvrd-h1 denvrd-h2; do
        url=$UP_URL
        [[ $t == denvrd-h1 ]] && url=$UP1_URL
        wanted "$t" c1 && profile_one "$t" "$url" c1 2000 1 "$SERVERS_PATH"
        wanted "$t" c64 && profile_one "$t" "$url" c64 3200 64 "$SERVERS_PATH"
        wanted "$t" big16 && profile_one "$t" "$url" big16 1600 16 "$BIG_PATH"
done
echo "denvrd instructions per request (callgrind Ir: user space, libraries included, the kernel not; max_upstream_connections $MAX_UP_CONNS):"
awk -F'\t' '{ printf "  %-10s %-6s %8d\n", $1, $2, $3 }' "$PROFILE"
