# bench/lib.sh -- shared by the benchmark scripts.
#
# Every figure is printed beside a baseline measured on the same machine in
# the same run, as a ratio. Nothing here asserts: benchmarks inform, tests
# decide.

: "${PW_BUILD:?PW_BUILD must name the build directory}"
PW="$PW_BUILD/pw"
RUNS=${BENCH_RUNS:-3}

BENCH_DIR=$(mktemp -d "${TMPDIR:-/tmp}/pw-bench.XXXXXX")
trap 'rm -rf "$BENCH_DIR"' EXIT INT TERM
export HOME="$BENCH_DIR/home" XDG_CONFIG_HOME="$BENCH_DIR/home/.config"
export PW_SECRET_KEY=$(printf '%064d' 0)
unset PW_STATE NO_COLOR
mkdir -p "$HOME"
# Start from a quiet disk: what an earlier benchmark left to write back
# would otherwise be paid by the first figures of this one.
sync

now_ns() { date +%s%N; }

PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
# port: a free TCP port on 127.0.0.1.
port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# wait_port PORT [ADDR]: until something listens there (at most 10 s).
wait_port() {
	for _ in $(seq 200); do
		(exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null && return 0
		sleep 0.05
	done
	echo "bench: port $1 never opened" >&2
	exit 1
}

# best_ms SETUP CMD: best wall time of $RUNS runs of CMD (a shell string),
# each after running SETUP; prints milliseconds with one decimal.
best_ms() {
	local setup=$1 cmd=$2 best= i t0 t1 d
	for i in $(seq "$RUNS"); do
		eval "$setup"
		t0=$(now_ns)
		eval "$cmd" || { echo "bench: failed: $cmd" >&2; exit 1; }
		t1=$(now_ns)
		d=$(( (t1 - t0) / 1000 ))
		if [ -z "$best" ] || [ "$d" -lt "$best" ]; then best=$d; fi
	done
	awk -v us="$best" 'BEGIN { printf "%.1f", us / 1000 }'
}

# max_rss_kb CMD...: peak resident set of one run, in KiB.
max_rss_kb() {
	/usr/bin/time -f '%M' -o "$BENCH_DIR/rss" "$@" >/dev/null 2>&1
	cat "$BENCH_DIR/rss"
}

# report WHAT PW_MS BASE_MS BASELINE [TARGET_MS]
report() {
	awk -v what="$1" -v pw="$2" -v base="$3" -v bname="$4" \
	    -v target="${5:-}" 'BEGIN {
		r = base > 0 ? pw / base : 0
		line = sprintf("%-34s %9.2f ms   %-26s %9.2f ms   %6.2fx",
		    what, pw, bname, base, r)
		if (target != "")
			line = line sprintf("   (target < %s ms: %s)", target,
			    pw < target ? "met" : "MISSED")
		print line
	}'
}

# report_rss WHAT PW_KB BASE_KB BASELINE
report_rss() {
	awk -v what="$1" -v pw="$2" -v base="$3" -v bname="$4" 'BEGIN {
		printf "%-34s %9.1f MiB  %-26s %9.1f MiB  %6.2fx\n",
		    what, pw / 1024, bname, base / 1024, pw / base
	}'
}
