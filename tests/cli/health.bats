#!/usr/bin/env bats
# health.bats -- pw health with real peers on loopback: tinyproxy (plain,
# and one that reveals the client), microsocks with a password, a refused
# port and a blackhole that never answers. The judge is the local origin.

bats_require_minimum_version 1.5.0

load helper
load ../helpers/peers

setup_file() {
	start_origin
	start_tinyproxy
	export TP1=$TINYPROXY_URL
	start_tinyproxy --xtinyproxy
	export TP2=$TINYPROXY_URL
	start_microsocks --user alice --pass 's3cret pw'
	export SOCKS_PORT=$MICROSOCKS_PORT
	export SOCKS="socks5://alice:s3cret%20pw@127.0.0.1:$MICROSOCKS_PORT"
	start_microsocks
	export SOCKS_OPEN="socks5://127.0.0.1:$MICROSOCKS_PORT"
	start_blackhole
	refused_port >/dev/null
	export HANG="http://127.0.0.1:$BLACKHOLE_PORT"
	export DEAD="http://127.0.0.1:$REFUSED_PORT"
	export JUDGE="$ORIGIN_URL/echo"
	export DEAD_JUDGE="http://127.0.0.1:$REFUSED_PORT/echo"
}

teardown_file() {
	stop_peers
}

setup() {
	setup_pw
	T=$'\t'
}

teardown() {
	stop_peers
}

lines() {
	printf '%s\n' "$@"
}

# jl FIELD...: for each JSON line on stdin, its FIELDs tab-separated
# (strings raw, anything else as JSON).
jl() {
	"$PEERS_PYTHON" -c '
import json, sys
for line in sys.stdin:
    doc = json.loads(line)
    print("\t".join(doc[k] if isinstance(doc[k], str) else
                    json.dumps(doc[k]) for k in sys.argv[1:]))' "$@"
}

# q SQL: one query on the state file.
q() {
	sqlite3 -readonly "$PW_STATE" "$1"
}

# statuses: "id status consec_fail" of every proxy, in id order.
statuses() {
	q "SELECT id || ' ' || status || ' ' || consec_fail FROM proxies ORDER BY id"
}

# four: two live proxies (1 tinyproxy, 2 microsocks with a password) and
# two dead ones (3 refused, 4 hanging).
four() {
	pw -q pool add "$TP1" "$SOCKS" "$DEAD" "$HANG"
}

# ----------------------------------------------------------------- checks

@test "health marks exactly the live ones healthy, the dead ones degraded" {
	four
	run -0 --separate-stderr pw health --url "$JUDGE" --timeout 1
	is "$stderr" ""
	[[ $output == "checked 4 proxies in "*" s: 2 healthy, 2 degraded, 0 unhealthy, 0 evicted; latency p50 "*" ms, p95 "*" ms" ]]
	is "$(statuses)" "$(lines '1 healthy 0' '2 healthy 0' '3 degraded 1' '4 degraded 1')"
	# Latency feeds the EMA of the live ones only; all were checked.
	is "$(q 'SELECT id FROM proxies WHERE latency_ms IS NOT NULL ORDER BY id')" "$(lines 1 2)"
	is "$(q 'SELECT count(*) FROM proxies WHERE last_checked IS NULL')" 0
	# A health check is not a request: the request counters stay.
	is "$(q 'SELECT sum(started + completed + succeeded + failed) FROM proxies')" 0
}

@test "health: no_proxy and NO_PROXY in the environment do not check around the proxy" {
	four
	# A judge reached directly would pass the dead ones.
	run -0 env no_proxy='*' NO_PROXY='*' pw health --url "$JUDGE" --timeout 1
	is "$(statuses)" "$(lines '1 healthy 0' '2 healthy 0' '3 degraded 1' '4 degraded 1')"
}

@test "health --jsonl: one result per proxy, why the dead ones failed, no secret" {
	four
	run -0 --separate-stderr pw health --url "$JUDGE" --timeout 1 --jsonl
	[[ $stderr == "checked 4 proxies in "* ]]
	is "$(echo "$output" | wc -l)" 4
	sorted=$(echo "$output" | sort)
	is "$(echo "$sorted" | sed -n 1p | json_get id url ok status http_status consec_fail evicted judge error)" \
	    "$(lines 1 "$TP1" true healthy 200 0 false "$JUDGE" null)"
	is "$(echo "$sorted" | sed -n 2p | json_get id url ok status)" \
	    "$(lines 2 "socks5://***:***@127.0.0.1:$SOCKS_PORT" true healthy)"
	is "$(echo "$sorted" | sed -n 3p | json_get id ok status latency_ms consec_fail)" \
	    "$(lines 3 false degraded null 1)"
	[[ $(echo "$sorted" | sed -n 3p | json_get error) == *"Couldn't connect"* ]]
	[[ $(echo "$sorted" | sed -n 4p | json_get error) == *"timed out"* ]]
	[[ $output != *s3cret* && $stderr != *s3cret* ]]
	[[ $output != *alice* && $stderr != *alice* ]]
}

@test "health --json: an array; -v -v says no secret either" {
	pw -q pool add "$SOCKS" "socks5://bob:wrong@127.0.0.1:$SOCKS_PORT"
	run -0 --separate-stderr pw -v -v health --url "$JUDGE" --timeout 1 --json
	is "$(json_get 0.id 1.id <<<"$output" | sort)" "$(lines 1 2)"
	is "$(statuses)" "$(lines '1 healthy 0' '2 degraded 1')"
	[[ $output != *s3cret* && $stderr != *s3cret* && $output != *wrong* &&
	    $stderr != *wrong* ]]
}

@test "health: a judge's credentials are never shown either" {
	pw -q pool add "$TP1"
	run -0 --separate-stderr pw health --url "http://judge:s3cret@127.0.0.1:$ORIGIN_PORT/echo" --jsonl
	is "$(jl ok judge <<<"$output")" "true${T}http://***:***@127.0.0.1:$ORIGIN_PORT/echo"
	[[ $output != *s3cret* && $stderr != *s3cret* ]]
}

@test "health: fewer checks at once when open files are short, not false failures" {
	pw -q pool add "$TP1" "$SOCKS"
	run -0 --separate-stderr bash -c 'ulimit -n 100 && exec pw health --url "$JUDGE" -n 1000'
	is "$stderr" "pw: warning: health: 100 open files at most: checking 18 at once, not 1000"
	[[ $output == *": 2 healthy, 0 degraded,"* ]]
}

@test "thresholds: degraded until the 3rd failure in a row, then unhealthy; a pass resets" {
	pw -q pool add "$DEAD" "$TP1"
	for want in '1 degraded 1' '1 degraded 2' '1 unhealthy 3' '1 unhealthy 4'; do
		run -0 pw health --url "$JUDGE" --timeout 1
		is "$(statuses | head -1)" "$want"
	done
	# Unhealthy is not eligible; degraded is (see below).
	run -3 --separate-stderr pw pool next --status unhealthy
	# A failed check of a live proxy, then a pass: healthy, run reset.
	run -0 pw health --url "$JUDGE" --expect-status 201 2
	is "$(statuses | tail -1)" '2 degraded 1'
	run -0 pw health --url "$JUDGE" 2
	is "$(statuses | tail -1)" '2 healthy 0'
	# The threshold is a setting.
	pw -q pool add "$HANG"
	run -0 pw -c health.failure_threshold=1 health --url "$JUDGE" --timeout 1 3
	is "$(statuses | tail -1)" '3 unhealthy 1'
}

@test "health --evict removes the unhealthy ones and counts health evictions" {
	four
	run -0 pw health --url "$JUDGE" --timeout 1 --evict
	is "$(q 'SELECT count(*) FROM proxies')" 4
	run -0 pw -c health.failure_threshold=2 health --url "$JUDGE" --timeout 1 --evict
	[[ $output == *": 2 healthy, 0 degraded, 2 unhealthy, 2 evicted;"* ]]
	is "$(q 'SELECT id FROM proxies ORDER BY id')" "$(lines 1 2)"
	is "$(q "SELECT value FROM stats WHERE name = 'evict.health'")" 2
	pw -q pool add "$DEAD"
	run -0 pw -c health.failure_threshold=1 health --url "$JUDGE" --evict --jsonl
	# Ids are never reused: the re-added proxy is 5, not 3.
	is "$(echo "$output" | grep '"evicted":true' | json_get id status)" "$(lines 5 unhealthy)"
	is "$(q "SELECT value FROM stats WHERE name = 'evict.health'")" 3
}

@test "health records when it last ran, for pw cache stats" {
	pw -q pool add "$TP1" "$DEAD"
	PW_NOW=1700000000 run -0 pw health --url "$JUDGE"
	is "$(q "SELECT key || '=' || value FROM meta WHERE key LIKE 'health.%' OR key = 'last_health' ORDER BY key")" \
	    "$(lines health.last_checked=2 health.last_healthy=1 last_health=1700000000)"
	is "$(q 'SELECT DISTINCT last_checked FROM proxies')" 1700000000
}

# ------------------------------------------------------------------ lock

# hold_lock: a health run in the background that holds the lock for a
# while (one proxy that never answers, a 4 s timeout); HOLDER is its pid.
hold_lock() {
	pw -q pool add "$HANG"
	pw health --url "$JUDGE" --timeout 4 >"$BATS_TEST_TMPDIR/holder.out" 2>&1 &
	HOLDER=$!
	# The holder writes its pid in the lock file once it holds the lock
	# (probing with flock(1) would take the lock from under it).
	for _ in $(seq 200); do
		[ "$(cat "$PW_STATE.health.lock" 2>/dev/null)" = "$HOLDER" ] &&
		    return 0
		sleep 0.02
	done
	echo "the holder never took the lock:" >&2
	cat "$BATS_TEST_TMPDIR/holder.out" >&2
	return 1
}

@test "lock: a second health run on the same state file exits 75 at once" {
	hold_lock
	t0=$EPOCHSECONDS
	run -75 --separate-stderr pw health --url "$JUDGE" --timeout 1 --json
	is "$output" ""
	is "$stderr" "pw: health: another health check is running on $PW_STATE (pid $HOLDER)"
	# At once: well before the holder's 4 s check ends.
	pid_alive "$HOLDER"
	wait "$HOLDER"
	# Released: the next run goes.
	run -0 pw health --url "$JUDGE" --timeout 1
}

@test "lock: --wait waits for the run that holds it, then runs" {
	hold_lock
	run -0 --separate-stderr pw health --wait --url "$JUDGE" --timeout 1
	[[ $output == "checked 1 proxy in "* ]]
	# The holder had ended by then.
	! pid_alive "$HOLDER"
	wait "$HOLDER"
	is "$(statuses)" '1 degraded 2'
}

@test "lock: a run that waited chooses its proxies once it holds the lock" {
	# Not checked yet when the second run starts; checked by the first
	# by the time the second holds the lock.
	hold_lock
	run -0 --separate-stderr pw health --wait --older-than 10m --url "$JUDGE"
	[[ $output == "checked 0 proxies in "* ]]
	wait "$HOLDER"
	is "$(statuses)" '1 degraded 1'
}

@test "lock: a usage error is exit 2 at once while another run holds it" {
	hold_lock
	run -2 --separate-stderr pw health --url "$JUDGE" --expect-body '(['
	is "$output" ""
	[[ $stderr == "pw: health: expected body '([': "* ]]
	is "$(echo "$stderr" | wc -l)" 1
	run -2 --separate-stderr pw health --url ftp://127.0.0.1/x
	is "$stderr" "pw: health: judge 'ftp://127.0.0.1/x': want an http:// or https:// URL"
	run -2 --separate-stderr pw health
	is "$stderr" "pw: health: no judge URL (set health.url or health.urls, or give --url)"
	# --wait does not wait for the holder to say so.
	run -2 --separate-stderr pw health --wait --url "$JUDGE" --expect-body '(['
	[[ $stderr == "pw: health: expected body '([': "* ]]
	# All at once: well before the holder's 4 s check ends.
	pid_alive "$HOLDER"
	wait "$HOLDER"
	is "$(statuses)" '1 degraded 1'
}

@test "lock: a run killed with SIGKILL leaves no lock behind" {
	hold_lock
	kill -KILL "$HOLDER"
	wait "$HOLDER" || :
	run -0 pw health --url "$JUDGE" --timeout 1
}

# ------------------------------------------------------------------ modes

@test "health --mode connect: only the tunnel or SOCKS handshake" {
	four
	run -0 pw health --url "$JUDGE" --timeout 1 --mode connect
	is "$(statuses)" "$(lines '1 healthy 0' '2 healthy 0' '3 degraded 1' '4 degraded 1')"
	# No request is made: a "judge" that never answers one will do, as
	# long as the proxy can open a connection to it.
	run -0 pw health --url "$HANG/" --timeout 1 --mode connect 1 2
	[[ $output == *": 2 healthy, 0 degraded,"* ]]
	run -0 pw health --url "$HANG/" --timeout 1 1 2
	[[ $output == *": 0 healthy, 2 degraded,"* ]]
	# A proxy that refuses CONNECT to the judge's port fails the tunnel,
	# though it serves a plain GET.
	start_tinyproxy --connect-port 1
	pw -q pool add "$TINYPROXY_URL"
	run -0 --separate-stderr pw health --url "$JUDGE" --timeout 1 --mode connect --jsonl 5
	is "$(json_get ok status <<<"$output")" "$(lines false degraded)"
	run -0 pw health --url "$JUDGE" --timeout 1 5
	is "$(statuses | tail -1)" '5 healthy 0'
}

@test "health --expect-status and --expect-body decide what passes" {
	pw -q pool add "$TP1" "$SOCKS"
	# By default any 2xx passes.
	run -0 --separate-stderr pw health --url "$ORIGIN_URL/status/204" --jsonl
	is "$(echo "$output" | jl ok http_status | sort -u)" "true${T}204"
	run -0 --separate-stderr pw health --url "$ORIGIN_URL/status/204" --expect-status 200 --jsonl
	is "$(echo "$output" | head -1 | json_get ok status error)" \
	    "$(lines false degraded 'HTTP 204, want 200')"
	run -0 --separate-stderr pw health --url "$ORIGIN_URL/status/404" --jsonl
	is "$(echo "$output" | head -1 | json_get error)" 'HTTP 404, want 2xx'
	run -0 --separate-stderr pw health --url "$ORIGIN_URL/status/404" --expect-status 404
	[[ $output == *": 2 healthy, 0 degraded,"* ]]
	# The echo holds our user agent.
	run -0 pw health --url "$JUDGE" --expect-body '"User-Agent": "pw/[0-9.]+"'
	[[ $output == *": 2 healthy, 0 degraded,"* ]]
	run -0 --separate-stderr pw health --url "$JUDGE" --expect-body '^nothing like it$' --jsonl
	is "$(echo "$output" | jl error | sort -u)" 'body does not match the expected pattern'
	is "$(statuses)" "$(lines '1 degraded 1' '2 degraded 1')"
}

@test "health --anonymity: transparent, anonymous and elite, stored and filtered on" {
	pw -q pool add "$TP1" "$TP2" "$SOCKS" "$SOCKS_OPEN"
	run -0 --separate-stderr pw health --url "$JUDGE" --anonymity --jsonl
	is "$(echo "$output" | jl id anonymity | sort -n)" \
	    "$(lines "1${T}anonymous" "2${T}transparent" "3${T}elite" "4${T}elite")"
	is "$(q 'SELECT id || anonymity FROM proxies ORDER BY id')" \
	    "$(lines 1anonymous 2transparent 3elite 4elite)"
	run -0 --separate-stderr pw pool ls --anonymity elite --plain
	is "$(echo "$output" | cut -f1)" "$(lines 3 4)"
	run -0 --separate-stderr pw pool ls --anonymity transparent --plain
	is "$(echo "$output" | cut -f1)" 2
	run -0 --separate-stderr pw pool next --anonymity anonymous
	is "$output" "$TP1"
	# Without --anonymity the grade stays as it was.
	run -0 pw health --url "$JUDGE"
	is "$(q 'SELECT id || anonymity FROM proxies ORDER BY id')" \
	    "$(lines 1anonymous 2transparent 3elite 4elite)"
}

@test "health --anonymity with a judge that does not echo: a warning, no grade" {
	pw -q pool add "$TP1"
	run -0 --separate-stderr pw health --url "$ORIGIN_URL/status/200" --anonymity
	is "$stderr" "pw: warning: health: $ORIGIN_URL/status/200 does not echo the request headers as JSON: anonymity not graded"
	is "$(q 'SELECT quote(anonymity) FROM proxies')" NULL
	is "$(statuses)" '1 healthy 0'
}

@test "several judges: checks spread across them; a dead one condemns no proxy" {
	pw -q pool add "$TP1" "$TP2" "$SOCKS" "$SOCKS_OPEN"
	run -0 --separate-stderr pw health --url "$JUDGE" --url "$ORIGIN_URL/echo?second" --jsonl
	is "$(echo "$output" | jl judge | sort | uniq -c | awk '{ print $1 }')" "$(lines 2 2)"
	# One dead judge of two: every proxy still passes, with the live one.
	run -0 --separate-stderr pw health --url "$DEAD_JUDGE" --url "$JUDGE" --jsonl
	is "$(echo "$output" | jl ok judge | sort -u)" "true${T}$JUDGE"
	is "$(statuses)" "$(lines '1 healthy 0' '2 healthy 0' '3 healthy 0' '4 healthy 0')"
	# The dead judge alone condemns them all: it was the judge.
	run -0 pw health --url "$DEAD_JUDGE"
	[[ $output == *": 0 healthy, 4 degraded,"* ]]
	# Judges from the settings: health.urls, space-separated.
	pw config set health.urls "$DEAD_JUDGE $JUDGE"
	run -0 pw health
	[[ $output == *": 4 healthy, 0 degraded,"* ]]
	pw config unset health.urls
	pw config set health.url "$JUDGE"
	run -0 pw health
	[[ $output == *": 4 healthy, 0 degraded,"* ]]
}

@test "health --fail-under: exit 1 when fewer than PCT% are healthy" {
	four
	run -0 pw health --url "$JUDGE" --timeout 1 --fail-under 50
	run -1 --separate-stderr pw health --url "$JUDGE" --timeout 1 --fail-under 50.5
	is "$stderr" "pw: health: 50.0% healthy (2 of 4), under 50.5%"
	[[ $output == "checked 4 proxies"* ]]
	# The run completed and was recorded all the same.
	is "$(q 'SELECT DISTINCT consec_fail FROM proxies WHERE id > 2')" 2
}

@test "health filters: --status, --source, --country, --older-than, and named proxies" {
	pw -q pool add --source a --country DE "$TP1" "$DEAD"
	pw -q pool add --source b --country FR "$SOCKS" "$HANG"
	run -0 pw health --url "$JUDGE" --timeout 1 --source a
	is "$(q 'SELECT id FROM proxies WHERE last_checked IS NOT NULL ORDER BY id')" "$(lines 1 2)"
	run -0 pw health --url "$JUDGE" --timeout 1 --country fr
	is "$(statuses)" "$(lines '1 healthy 0' '2 degraded 1' '3 healthy 0' '4 degraded 1')"
	run -0 pw health --url "$JUDGE" --timeout 1 --status degraded
	[[ $output == "checked 2 proxies"* ]]
	is "$(statuses)" "$(lines '1 healthy 0' '2 degraded 2' '3 healthy 0' '4 degraded 2')"
	# Everything was checked just now: nothing is older than 10 minutes.
	run -0 pw health --url "$JUDGE" --older-than 10m
	[[ $output == "checked 0 proxies"* ]]
	PW_NOW=$((EPOCHSECONDS + 3600)) run -0 pw health --url "$JUDGE" --timeout 1 --older-than 10m --source b
	[[ $output == "checked 2 proxies"* ]]
	# Named by id and by URL (credentials and all), each once.
	run -0 pw health --url "$JUDGE" 1 "$SOCKS" 1
	[[ $output == "checked 2 proxies"* ]]
	is "$(q 'SELECT consec_fail FROM proxies WHERE id = 2')" 2
}

@test "health on an empty pool checks nothing and says so" {
	run -0 --separate-stderr pw health --url "$JUDGE"
	[[ $output == "checked 0 proxies in "*"s: 0 healthy, 0 degraded, 0 unhealthy, 0 evicted; latency p50 -, p95 -" ]]
}

@test "health: bad input is one line, its exit code, and no change" {
	four
	run -0 pw health --url "$JUDGE" --timeout 1
	before=$(state_sum)
	while IFS='|' read -r code args msg; do
		eval "set -- $args"
		run "-$code" --separate-stderr pw health "$@"
		is "$output" ""
		is "$stderr" "pw: health: $msg"
		is "$(state_sum)" "$before"
	done <<-EOF
	2|--url $JUDGE --concurrency 0|--concurrency: '0': want an integer from 1 to 10000
	2|--url $JUDGE --concurrency many|--concurrency: 'many': want an integer from 1 to 10000
	2|--url $JUDGE --concurrency 10001|--concurrency: '10001': want an integer from 1 to 10000
	2|--url $JUDGE --timeout 0|--timeout: '0': want seconds from 0.001 to 3600
	2|--url $JUDGE --timeout soon|--timeout: 'soon': want seconds from 0.001 to 3600
	2|--url $JUDGE --timeout 2h|--timeout: '2h': want seconds from 0.001 to 3600
	2|--url $JUDGE --expect-status 99|--expect-status: '99': want an integer from 100 to 599
	2|--url $JUDGE --mode ping|--mode: 'ping': want get or connect
	2|--url $JUDGE --mode connect --expect-body ok|--mode connect makes no request: --expect-status, --expect-body and --anonymity need --mode get
	2|--url $JUDGE --fail-under 101|--fail-under: '101': want a percentage from 0 to 100
	2|--url $JUDGE --older-than 0|--older-than: '0': want a duration such as 90s, 10m, 2h or 7d
	2|--url $JUDGE --older-than later|--older-than: 'later': want a duration such as 90s, 10m, 2h or 7d
	2|--url $JUDGE --status sick|--status: 'sick': want unknown, healthy, degraded, unhealthy or pending
	2|--url $JUDGE --country XX|--country: 'XX': not an ISO 3166-1 alpha-2 country code
	2|--url $JUDGE --source a 1|name proxies or select them with --status, --source, --country or --older-than, not both
	2||no judge URL (set health.url or health.urls, or give --url)
	2|--url ftp://127.0.0.1/x|judge 'ftp://127.0.0.1/x': want an http:// or https:// URL
	2|--url $JUDGE --url nope|judge 'nope': want an http:// or https:// URL
	1|--url $JUDGE 99|99: no such proxy
	1|--url $JUDGE http://127.0.0.1:1|http://127.0.0.1:1: no such proxy
	EOF
	# A bad regular expression: the reason is the C library's.
	run -2 --separate-stderr pw health --url "$JUDGE" --expect-body '(unclosed' --json
	is "$output" ""
	[[ $stderr == "pw: health: expected body '(unclosed': "* ]]
	is "$(echo "$stderr" | wc -l)" 1
	is "$(state_sum)" "$before"
	# A bad setting is refused where it is set.
	run -2 pw config set health.timeout 0
	run -2 pw config set health.concurrency 0
	run -2 --separate-stderr pw config set health.urls "$JUDGE ftp://x/"
	is "$stderr" "pw: config set: health.urls: '$JUDGE ftp://x/': want http:// or https:// URLs, separated by spaces"
	run -2 --separate-stderr pw config set health.url judge.example
	is "$(state_sum)" "$before"
}

# ------------------------------------------------------------- selection

@test "degraded proxies are still eligible but chosen after the others" {
	pw -q pool add "$DEAD" "$TP1" "$HANG"
	run -0 pw health --url "$JUDGE" --timeout 1 1 2
	is "$(statuses)" "$(lines '1 degraded 1' '2 healthy 0' '3 unknown 0')"
	for s in round-robin random least-used weighted; do
		for _ in 1 2 3 4; do
			run -0 pw pool next --strategy "$s"
			[[ $output == "$TP1" || $output == "$HANG" ]]
		done
	done
	pw -q pool rm 2 3
	run -0 pw pool next
	is "$output" "$DEAD"
	# Asked for by status, degraded ones are what is wanted.
	pw -q pool add "$TP1"
	run -0 pw pool next --status degraded
	is "$output" "$DEAD"
}

@test "a concurrent pool next loop during a big health run never waits on a lock error" {
	# 3,000 proxies whose checks fail fast (nothing listens at those
	# loopback addresses) and one live one.
	for i in $(seq 0 2999); do
		echo "http://127.6.$((i / 250)).$((i % 250 + 1)):$REFUSED_PORT"
	done | pw -q pool add -
	pw -q pool add "$TP1"
	pw health --url "$JUDGE" --concurrency 300 --timeout 2 >"$BATS_TEST_TMPDIR/h.out" 2>&1 &
	hp=$!
	n=0 fails=0
	while pid_alive "$hp" || [ "$n" -lt 20 ]; do
		pw pool next >/dev/null 2>>"$BATS_TEST_TMPDIR/next.err" || fails=$((fails + 1))
		n=$((n + 1))
	done
	wait "$hp"
	is "$fails" 0
	is "$(cat "$BATS_TEST_TMPDIR/next.err")" ""
	[[ $(cat "$BATS_TEST_TMPDIR/h.out") == "checked 3001 proxies in "*": 1 healthy, 3000 degraded,"* ]]
}

# ------------------------------------------------------------- terminal

@test "health: a progress bar on a terminal's stderr, nothing when not a terminal" {
	four
	run -0 --separate-stderr pw health --url "$JUDGE" --timeout 1
	is "$stderr" ""
	# script(1) gives the command a terminal.
	run -0 script -qefc "pw health --url '$JUDGE' --timeout 1 2>&1 >/dev/null" /dev/null
	[[ $output == *"] 4/4  2 healthy  "*"/s"* ]]
	[[ $output == *$'\r\033[K'* ]]
}
