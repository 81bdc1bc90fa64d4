#!/usr/bin/env bats
# delegate.bats -- delegating selection to remote pw serve instances: two
# real services on loopback, each with its own state file, and a client
# state file. Delegation and feedback, failover to the second endpoint,
# local fallback within a second, the circuit breaker's whole cycle, the
# outbox, the response cache, refused credentials, and every bad input.

bats_require_minimum_version 1.5.0

load helper
load ../helpers/peers

setup_file() {
	start_origin
	start_tinyproxy
	export TP=$TINYPROXY_URL
	start_blackhole
	export BLACKHOLE_PORT
	refused_port >/dev/null
	export REFUSED_PORT
}

teardown_file() {
	stop_peers
}

setup() {
	setup_pw
	export PW_SECRET_KEY=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
	S1_STATE=$BATS_TEST_TMPDIR/s1.db
	S2_STATE=$BATS_TEST_TMPDIR/s2.db
}

teardown() {
	stop_peers
}

# _svc_launch PORT: pw serve on PORT over $_SVC_STATE.
_svc_launch() {
	_PEER_LOG=$BATS_TEST_TMPDIR/serve.$1.log
	_peers_spawn serve "$_PEER_LOG" env PW_STATE="$_SVC_STATE" \
	    pw ${SVC_VERBOSE:-} serve --listen "127.0.0.1:$1"
}

# start_svc N: service N (1 or 2) on a free port, over its own state file;
# S<N>_URL, S<N>_PORT, S<N>_REC.
start_svc() {
	_SVC_STATE=$BATS_TEST_TMPDIR/s$1.db
	_peers_retry serve _svc_launch || return
	eval "S$1_PORT=$_PEER_PORT S$1_REC=$_PEER_REC"
	eval "S$1_URL=http://127.0.0.1:$_PEER_PORT"
}

# restart_svc N: service N again, on the port it had.
restart_svc() {
	local port
	eval "port=\$S$1_PORT"
	_SVC_STATE=$BATS_TEST_TMPDIR/s$1.db
	_svc_launch "$port"
	_peers_wait serve "$_PEER_LOG" _peers_connects 127.0.0.1 "$port"
	eval "S$1_REC=$_PEER_REC"
}

# stop_svc N: end service N (and wait until it is gone).
stop_svc() {
	local rec
	eval "rec=\$S$1_REC"
	_peers_stop "$rec"
}

# svc N ARGS...: pw on service N's state file.
svc() {
	local n=$1
	shift
	PW_STATE=$BATS_TEST_TMPDIR/s$n.db pw "$@"
}

# svc_is N FILTER WANT: jq FILTER of the service's proxy 1 is WANT. pw serve
# writes outcomes in batches: use it with eventually.
svc_is() {
	[ "$(svc "$1" pool show 1 --json | jq -r "$2")" = "$3" ]
}

# stat NAME: a counter of the client's state file.
stat() {
	sqlite3 -readonly "$PW_STATE" "SELECT coalesce((SELECT value FROM stats WHERE name = '$1'), 0)"
}

# quick CMD...: run CMD (as bats' run, stderr apart) until one run ends
# within a second, for at most 30 s. A loaded machine may hold a process
# up that long once; a selection that waits for a service instead of
# falling back never ends in time, however often it is tried. $status,
# $output and $stderr are the quick run's.
quick() {
	local t0 t1 end=$((SECONDS + 30))
	while :; do
		t0=${EPOCHREALTIME/[.,]/}
		run --separate-stderr "$@"
		t1=${EPOCHREALTIME/[.,]/}
		[ $((t1 - t0)) -lt 1000000 ] && return 0
		[ "$SECONDS" -lt "$end" ] || break
	done
	echo "no run of '$*' ended within a second in 30 s (the last: $(((t1 - t0) / 1000)) ms)"
	return 1
}

# Read-only, as state_sum: a reader that can write would take a live
# pw serve's WAL away when it closes (see the note in the report).
outbox() {
	sqlite3 -readonly "$PW_STATE" "SELECT count(*) FROM feedback_outbox"
}

# ---------------------------------------------------------- delegation

@test "pool next is answered by the service; a reported outcome reaches it" {
	svc 1 -q pool add http://u:p@10.0.0.1:3128
	start_svc 1
	pw -q pool add http://10.9.9.9:1
	export PW_SERVICE__ENDPOINTS=$S1_URL
	run -0 --separate-stderr pw -v pool next --format json
	is "$(jq -r .url <<<"$output")" http://u:p@10.0.0.1:3128
	is "$(jq -r .path <<<"$output")" service
	is "$(jq -r .endpoint <<<"$output")" "$S1_URL"
	is "$(jq -r .id <<<"$output")" 1
	is "$(jq -r .service_strategy <<<"$output")" round-robin
	like "$stderr" "*service $S1_URL: proxy 1 (round-robin)*"
	# The service counted it; the client's own pool was not touched.
	eventually svc_is 1 .started 1
	is "$(pw pool show 1 --json | jq -r .started)" 0
	# No password in the client's file in clear.
	! sqlite3 -readonly "$PW_STATE" .dump | grep -q 'u:p@'
	# The outcome waits in the outbox, then reaches the service.
	run -0 pw pool report http://u:p@10.0.0.1:3128 ok --latency 42
	is "$(outbox)" 1
	run -0 --separate-stderr pw pool flush
	is "$stderr" "pw: pool flush: sent 1, 0 left"
	is "$(outbox)" 0
	eventually svc_is 1 '.succeeded, .latency_ms' "$(lines 1 42)"
	is "$(stat service.outbox.sent)" 1
}

@test "an id both the service and the local pool have is ambiguous: exit 2, and the URL names it" {
	svc 1 -q pool add http://10.0.0.1:3128 http://10.0.0.2:3128
	start_svc 1
	pw -q pool add http://10.9.9.1:1 http://10.9.9.2:1
	export PW_SERVICE__ENDPOINTS=$S1_URL PW_SERVICE__RETRIES=0
	run -0 --separate-stderr pw pool next --format json
	is "$(jq -r '.id, .url, .path' <<<"$output")" "$(lines 1 http://10.0.0.1:3128 service)"
	sum=$(state_sum)
	run -2 --separate-stderr pw pool report 1 fail
	is "$stderr" "pw: pool report: 1: ambiguous: the service's proxy 1 (http://10.0.0.1:3128) or the local proxy 1 (http://10.9.9.1:1); name it by its URL"
	is "$output" ""
	is "$(state_sum)" "$sum"
	# Uncached (cache_ttl 0), the service's proxy is still known as its.
	PW_SERVICE__CACHE_TTL=0 run -0 pw pool next --format json
	is "$(jq -r '.id, .url, .path' <<<"$output")" "$(lines 2 http://10.0.0.2:3128 service)"
	sum=$(state_sum)
	run -2 --separate-stderr pw pool report 2 ok
	like "$stderr" "pw: pool report: 2: ambiguous: *"
	is "$(state_sum)" "$sum"
	# The URL says which: the service's proxies, queued for it.
	run -0 pw pool report http://10.0.0.2:3128 ok
	run -0 pw pool report http://10.0.0.1:3128 fail
	is "$(outbox)" 2
	is "$(pw pool ls --json | jq -c '[.[] | .completed]')" '[0,0]'
	# The service away: a local proxy, reported as local.
	stop_svc 1
	run -0 pw pool next --format json
	is "$(jq -r '.url, .path' <<<"$output")" "$(lines http://10.9.9.1:1 fallback)"
	run -0 pw pool report http://10.9.9.1:1 fail
	is "$(pw pool show 1 --json | jq -r .failed)" 1
	is "$(outbox)" 2
}

@test "an IPv6 endpoint: its Host is the bracketed address, which a service without keys serves" {
	svc 1 -q pool add http://10.0.0.1:3128
	local port
	port=$(free_port)
	_peers_spawn serve "$BATS_TEST_TMPDIR/serve6.log" env PW_STATE="$S1_STATE" \
	    pw serve --listen "[::1]:$port"
	wait_port "$port" 10 ::1
	pw -q pool add http://10.9.9.9:1
	PW_SERVICE__ENDPOINTS="http://[::1]:$port" run -0 --separate-stderr \
	    pw pool next --format json
	is "$(jq -r .path <<<"$output")" service
	is "$(jq -r .url <<<"$output")" http://10.0.0.1:3128
	is "$stderr" ""
}

@test "pw fetch goes through the service's proxy, and its outcome is sent at once" {
	svc 1 -q pool add "$TP"
	start_svc 1
	export PW_SERVICE__ENDPOINTS=$S1_URL
	run -0 --separate-stderr pw fetch --json "$ORIGIN_URL/ip"
	is "$(jq -r .status <<<"$output")" 200
	is "$(jq -r .path <<<"$output")" service
	is "$(jq -r '.attempts[0].path' <<<"$output")" service
	is "$(jq -r .fallback_reason <<<"$output")" null
	# Flushed opportunistically after the fetch.
	is "$(outbox)" 0
	eventually svc_is 1 '.succeeded, .failed' "$(lines 1 0)"
	is "$(svc 1 cache stats --json | jq -r '.service.delegated_requests, .service.delegated_feedback')" "$(lines 1 1)"
}

@test "a service proxy that fails: the fetch goes on, locally when the service offers it again" {
	svc 1 -q pool add "http://127.0.0.1:$REFUSED_PORT"
	start_svc 1
	pw -q pool add "$TP"
	export PW_SERVICE__ENDPOINTS=$S1_URL PW_SERVICE__BREAKER_THRESHOLD=1
	run -0 --separate-stderr pw fetch --json "$ORIGIN_URL/ip"
	is "$(jq -r '.status, .path, .attempts[0].path, .attempts[0].failure' <<<"$output")" \
	    "$(lines 200 fallback service proxy)"
	like "$(jq -r .fallback_reason <<<"$output")" "$S1_URL: offered proxy 1 again"
	# The endpoint answered well: no failure for its breaker.
	is "$(stat service.breaker.opened)" 0
	# The failure reached the service.
	eventually svc_is 1 .failed 1
	is "$(pw pool show 1 --json | jq -r .succeeded)" 1
}

@test "the first endpoint down: the second answers" {
	svc 1 -q pool add http://10.0.0.1:3128
	svc 2 -q pool add http://10.0.0.2:3128
	start_svc 1
	start_svc 2
	export PW_SERVICE__ENDPOINTS="$S1_URL $S2_URL" PW_SERVICE__CACHE_TTL=0
	run -0 pw pool next
	is "$output" http://10.0.0.1:3128
	stop_svc 1
	run -0 --separate-stderr pw pool next --format json
	is "$(jq -r '.url, .path, .endpoint' <<<"$output")" \
	    "$(lines http://10.0.0.2:3128 service "$S2_URL")"
}

@test "both endpoints down: the local pool within a second, no fetch fails" {
	svc 1 -q pool add http://10.0.0.1:3128
	start_svc 1
	start_svc 2
	pw -q pool add "$TP"
	stop_svc 1
	stop_svc 2
	export PW_SERVICE__ENDPOINTS="$S1_URL $S2_URL"
	# Breakers that never open: each run tries both endpoints.
	quick env PW_SERVICE__BREAKER_THRESHOLD=1000 pw -v pool next \
	    --format json
	is "$status" 0
	is "$(jq -r '.url, .path' <<<"$output")" "$(lines "$TP" fallback)"
	like "$(jq -r .fallback_reason <<<"$output")" "$S2_URL: *"
	[[ $(jq -r .fallback_reason <<<"$output") != *"breaker open"* ]]
	like "$stderr" "*service unavailable (*): using the local pool*"
	for i in 1 2 3; do
		run -0 pw fetch -s -o /dev/null -w '%{http_code}' "$ORIGIN_URL/ip"
		is "$output" 200
	done
	is "$(pw pool show 1 --json | jq -r .succeeded)" 3
	[ "$(stat service.fallbacks)" -ge 4 ]
}

@test "an endpoint that does not answer in time: the local pool within a second" {
	pw -q pool add http://10.9.9.9:1
	# A call would wait 2 s and be retried; the breaker never opens, so
	# each run waits for the endpoint until the budget is spent.
	export PW_SERVICE__ENDPOINTS=http://127.0.0.1:$BLACKHOLE_PORT \
	    PW_SERVICE__TIMEOUT=2s PW_SERVICE__BREAKER_THRESHOLD=1000
	quick pw pool next --format json
	is "$status" 0
	is "$(jq -r '.url, .path' <<<"$output")" "$(lines http://10.9.9.9:1 fallback)"
	like "$(jq -r .fallback_reason <<<"$output")" "*timed out*"
}

# ------------------------------------------------------------- breaker

@test "the breaker opens after N failures, half-opens after the timeout, closes on success" {
	svc 1 -q pool add http://10.0.0.1:3128
	start_svc 1
	pw -q pool add http://10.9.9.9:1
	export PW_SERVICE__ENDPOINTS=$S1_URL PW_SERVICE__CACHE_TTL=0 \
	    PW_SERVICE__BREAKER_THRESHOLD=2 PW_SERVICE__BREAKER_TIMEOUT=1 \
	    PW_SERVICE__RETRIES=0
	stop_svc 1
	breaker() { sqlite3 -readonly "$PW_STATE" "SELECT state, failures FROM breakers"; }
	run -0 pw pool next
	is "$output" http://10.9.9.9:1
	is "$(breaker)" "0|1"
	run -0 pw pool next
	is "$(breaker)" "1|2"
	is "$(stat service.breaker.opened)" 1
	# Open: not even tried.
	calls=$(stat service.calls)
	run -0 --separate-stderr pw -v pool next --format json
	is "$(stat service.calls)" "$calls"
	is "$(jq -r .fallback_reason <<<"$output")" "$S1_URL: breaker open"
	# The service is back; after the timeout one trial call closes it.
	restart_svc 1
	sleep 1.1
	run -0 --separate-stderr pw -v pool next --format json
	is "$(jq -r '.url, .path' <<<"$output")" "$(lines http://10.0.0.1:3128 service)"
	like "$stderr" "*breaker half-open: one trial call*breaker closed*"
	is "$(breaker)" "0|0"
	is "$(stat service.breaker.half_opened) $(stat service.breaker.closed)" "1 1"
}

@test "a failed trial call opens the breaker again" {
	start_svc 1
	pw -q pool add http://10.9.9.9:1
	export PW_SERVICE__ENDPOINTS=$S1_URL PW_SERVICE__BREAKER_THRESHOLD=1 \
	    PW_SERVICE__BREAKER_TIMEOUT=1
	stop_svc 1
	run -0 pw pool next
	is "$(sqlite3 -readonly "$PW_STATE" 'SELECT state FROM breakers')" 1
	sleep 1.1
	calls=$(stat service.calls)
	run -0 pw pool next
	# One trial, no retries, and open again.
	is "$(stat service.calls)" $((calls + 1))
	is "$(sqlite3 -readonly "$PW_STATE" 'SELECT state FROM breakers')" 1
	is "$(stat service.breaker.opened)" 2
}

# -------------------------------------------------------------- outbox

@test "the outbox keeps outcomes while the service is away, and drains when it returns" {
	svc 1 -q pool add http://10.0.0.1:3128
	start_svc 1
	export PW_SERVICE__ENDPOINTS=$S1_URL PW_SERVICE__RETRIES=0
	run -0 pw pool next
	stop_svc 1
	run -0 pw pool report http://10.0.0.1:3128 fail
	run -0 pw pool report 1 --fail
	is "$(outbox)" 2
	run -1 --separate-stderr pw pool flush
	like "$stderr" "pw: pool flush: sent 0, 2 left
pw: pool flush: cannot send feedback: $S1_URL: *"
	is "$(outbox)" 2
	restart_svc 1
	run -0 pw -q pool flush
	is "$(outbox)" 0
	eventually svc_is 1 '.failed, .consec_fail' "$(lines 2 2)"
}

@test "pw serve's background flush sends a client state file's outbox" {
	svc 1 -q pool add http://10.0.0.1:3128
	start_svc 1
	export PW_SERVICE__ENDPOINTS=$S1_URL
	run -0 pw pool next
	run -0 pw pool report 1 ok
	is "$(outbox)" 1
	# A pw serve on the client's own state file flushes it (every 5 s).
	_SVC_STATE=$PW_STATE
	_peers_retry serve _svc_launch
	for i in $(seq 100); do
		[ "$(outbox)" = 0 ] && break
		sleep 0.1
	done
	is "$(outbox)" 0
	eventually svc_is 1 .succeeded 1
}

@test "the outbox is bounded, and keeps every outcome, however many in one millisecond" {
	svc 1 -q pool add http://10.0.0.1:3128
	start_svc 1
	export PW_SERVICE__ENDPOINTS=$S1_URL
	run -0 pw pool next
	stop_svc 1
	# Two outcomes of one millisecond are two, not one.
	for i in $(seq 40); do
		PW_NOW=1800000000 pw pool report 1 ok --latency-ms "$i" &
	done
	wait
	is "$(outbox)" 40
	is "$(sqlite3 -readonly "$PW_STATE" 'SELECT count(DISTINCT latency_ms) FROM feedback_outbox')" 40
	sqlite3 "$PW_STATE" 'DELETE FROM feedback_outbox'
	export PW_SERVICE__OUTBOX_MAX=2
	PW_NOW=1800000000 pw pool report 1 ok
	PW_NOW=1800000001 pw pool report 1 ok
	run -0 --separate-stderr env PW_NOW=1800000002 pw pool report 1 fail
	is "$stderr" "pw: warning: service outbox full: dropped the 1 oldest outcome"
	is "$(outbox)" 2
	is "$(sqlite3 -readonly "$PW_STATE" 'SELECT ts_ms, success FROM feedback_outbox ORDER BY id')" \
	    "$(lines '1800000001000|1' '1800000002000|0')"
	is "$(stat service.outbox.dropped)" 1
}

@test "flushes at once never send an outcome twice" {
	svc 1 -q pool add http://10.0.0.1:3128
	start_svc 1
	export PW_SERVICE__ENDPOINTS=$S1_URL
	run -0 pw pool next
	stop_svc 1
	for i in $(seq 40); do
		PW_NOW=$((1800000000 + i)) pw pool report 1 fail
	done
	is "$(outbox)" 40
	restart_svc 1
	pids=()
	for i in 1 2 3 4; do
		pw -q pool flush &
		pids+=($!)
	done
	wait "${pids[@]}"
	is "$(outbox)" 0
	eventually svc_is 1 .failed 40
}

# --------------------------------------------------------------- cache

@test "a cached answer is reused within its TTL, not after, nor once the proxy failed" {
	svc 1 -q pool add http://10.0.0.1:3128 http://10.0.0.2:3128
	start_svc 1
	export PW_SERVICE__ENDPOINTS=$S1_URL PW_SERVICE__CACHE_TTL=30
	T=1800000000
	run -0 env PW_NOW=$T pw pool next --target https://a.example/x
	is "$output" http://10.0.0.1:3128
	run -0 env PW_NOW=$((T + 29)) pw pool next --format json --target https://a.example/other
	is "$(jq -r '.url, .path, .ttl_seconds' <<<"$output")" "$(lines http://10.0.0.1:3128 cache 1)"
	is "$(stat service.calls) $(stat service.cache_hits)" "1 1"
	# Another origin, another connection type or region: not the same.
	run -0 env PW_NOW=$((T + 29)) pw pool next --target http://a.example/x
	is "$output" http://10.0.0.2:3128
	is "$(stat service.calls)" 2
	# Past the TTL: the service again.
	run -0 env PW_NOW=$((T + 30)) pw pool next --format json --target https://a.example/
	is "$(jq -r .path <<<"$output")" service
	is "$(stat service.calls)" 3
	# A failure of that proxy drops it from the cache.
	url=$(jq -r .url <<<"$output")
	run -0 env PW_NOW=$((T + 31)) pw pool report "$url" fail
	run -0 env PW_NOW=$((T + 31)) pw pool next --format json --target https://a.example/
	is "$(jq -r .path <<<"$output")" service
	is "$(stat service.calls)" 4
}

# ---------------------------------------------------------------- auth

# start_401: a loopback server that refuses every request with 401 and
# records the credentials it was shown; DENY_URL, DENY_LOG.
start_401() {
	DENY_LOG=$BATS_TEST_TMPDIR/deny.log
	cat >"$BATS_TEST_TMPDIR/deny.py" <<'EOF'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        self.rfile.read(n)
        with open(sys.argv[2], "a") as f:
            f.write("%s %s|%s\n" % (self.path, self.headers.get("X-API-Key"),
                self.headers.get("Authorization")))
        b = b'{"status":"error","data":null,"error":{"code":"UNAUTHORIZED","message":"invalid API key","details":{}}}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1], "w").write(str(s.server_address[1]))
s.serve_forever()
EOF
	_peers_spawn deny "$BATS_TEST_TMPDIR/deny.out" /usr/bin/python3 \
	    "$BATS_TEST_TMPDIR/deny.py" "$BATS_TEST_TMPDIR/deny.port" "$DENY_LOG"
	_peers_wait deny "$BATS_TEST_TMPDIR/deny.out" test -s "$BATS_TEST_TMPDIR/deny.port"
	DENY_URL=http://127.0.0.1:$(cat "$BATS_TEST_TMPDIR/deny.port")
}

@test "a refused API key: the local pool, with a clear warning" {
	start_401
	pw -q pool add http://10.9.9.9:1
	export PW_SERVICE__ENDPOINTS=$DENY_URL PW_SERVICE__AUTH=api-key \
	    PW_SERVICE__KEY=wrong-key
	run -0 --separate-stderr pw pool next --format json
	is "$(jq -r '.url, .path' <<<"$output")" "$(lines http://10.9.9.9:1 fallback)"
	is "$stderr" "pw: warning: service $DENY_URL: credentials refused (HTTP 401: invalid API key): using the local pool"
	# Not retried: a wrong key stays wrong.
	is "$(cat "$DENY_LOG")" "/api/v1/proxy/request wrong-key|None"
	export PW_SERVICE__AUTH=bearer PW_SERVICE__KEY=tok
	run -0 --separate-stderr pw pool next
	is "$(tail -n 1 "$DENY_LOG")" "/api/v1/proxy/request None|Bearer tok"
}

@test "a real pw serve with API keys: the right key is served, a wrong one falls back with a warning" {
	key=$(svc 1 -q serve keys add fleet)
	svc 1 -q pool add http://10.0.0.1:3128
	start_svc 1
	pw -q pool add http://10.9.9.9:1
	export PW_SERVICE__ENDPOINTS=$S1_URL PW_SERVICE__AUTH=api-key
	# Each asks for another target: no answer is reused from the cache.
	PW_SERVICE__KEY=$key run -0 --separate-stderr pw pool next \
	    --target http://a.example/ --format json
	is "$(jq -r '.url, .path' <<<"$output")" "$(lines http://10.0.0.1:3128 service)"
	is "$stderr" ""
	PW_SERVICE__KEY=pw_0123456789abcdef0123456789abcdef0123456789abcdef \
	    run -0 --separate-stderr pw pool next --target http://b.example/ \
	    --format json
	is "$(jq -r '.url, .path' <<<"$output")" "$(lines http://10.9.9.9:1 fallback)"
	like "$stderr" "pw: warning: service $S1_URL: credentials refused (HTTP 401: *): using the local pool"
	PW_SERVICE__AUTH=bearer PW_SERVICE__KEY=$key run -0 pw pool next \
	    --target http://c.example/ --format json
	is "$(jq -r .path <<<"$output")" service
}

# start_tls_svc: an https service on loopback that wants a client
# certificate signed by the test CA and hands out one fixed proxy,
# recording each request; TLS_URL, TLS_LOG, and a client certificate in
# CLIENT_PEM and CLIENT_KEY.
start_tls_svc() {
	local d=$BATS_TEST_TMPDIR
	_peers_ca
	TLS_LOG=$d/tls.log
	openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
	    -keyout "$d/client.key" -out "$d/client.csr" -subj /CN=pw-client \
	    2>/dev/null
	openssl x509 -req -days 1 -in "$d/client.csr" -CA "$_PEERS_CA/ca.pem" \
	    -CAkey "$_PEERS_CA/ca.key" -set_serial 7 -out "$d/client.pem" \
	    2>/dev/null
	CLIENT_PEM=$d/client.pem CLIENT_KEY=$d/client.key
	cat >"$d/tls.py" <<'EOF'
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(sys.argv[3], "a") as f:
            f.write("%s %s\n" % (self.path, self.headers.get("X-API-Key")))
        b = b'{"status":"success","data":{"proxy_url":"http://10.7.7.7:3128","proxy_id":77,"strategy":"random","ttl_seconds":5,"fallback_policy":"local"},"error":null}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def log_message(self, *a):
        pass
ca = sys.argv[2]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(ca + "/server.pem", ca + "/server.key")
ctx.load_verify_locations(ca + "/ca.pem")
ctx.verify_mode = ssl.CERT_REQUIRED
s = http.server.HTTPServer(("127.0.0.1", 0), H)
s.socket = ctx.wrap_socket(s.socket, server_side=True)
open(sys.argv[1], "w").write(str(s.server_address[1]))
s.serve_forever()
EOF
	_peers_spawn tls "$d/tls.out" /usr/bin/python3 "$d/tls.py" \
	    "$d/tls.port" "$_PEERS_CA" "$TLS_LOG"
	_peers_wait tls "$d/tls.out" test -s "$d/tls.port"
	TLS_URL=https://127.0.0.1:$(cat "$d/tls.port")
}

@test "https and mtls endpoints: the client certificate and the CA are used" {
	start_tls_svc
	pw -q pool add http://10.9.9.9:1
	export PW_SERVICE__ENDPOINTS=$TLS_URL PW_SERVICE__CA=$_PEERS_CA/ca.pem \
	    PW_SERVICE__AUTH=mtls PW_SERVICE__CERT=$CLIENT_PEM \
	    PW_SERVICE__CERT_KEY=$CLIENT_KEY PW_SERVICE__CACHE_TTL=0 \
	    PW_SERVICE__RETRIES=0
	run -0 --separate-stderr pw pool next --format json
	is "$(jq -r '.url, .id, .path, .service_strategy' <<<"$output")" \
	    "$(lines http://10.7.7.7:3128 77 service random)"
	# Without the certificate the handshake fails: the local pool.
	PW_SERVICE__CERT= run -0 --separate-stderr pw pool next --format json
	is "$(jq -r '.url, .path' <<<"$output")" "$(lines http://10.9.9.9:1 fallback)"
	# Nor without the CA that signed the service's certificate.
	PW_SERVICE__CA= run -0 --separate-stderr pw pool next --format json
	is "$(jq -r .path <<<"$output")" fallback
	is "$(wc -l <"$TLS_LOG")" 1
}

# ------------------------------------------------------------ the API

@test "POST /api/v1/proxy/request: the answer, and a 422 naming each bad field" {
	svc 1 -q pool add http://10.0.0.1:3128
	start_svc 1
	req() {
		curl -sS -X POST -H 'Content-Type: application/json' \
		    --data-binary "$1" "$S1_URL/api/v1/proxy/request"
	}
	out=$(req '{"client_id":"c1","target":"https://a.example/","connection_type":"https"}')
	is "$(jq -c .data <<<"$out")" '{"proxy_url":"http://10.0.0.1:3128","proxy_id":1,"strategy":"round-robin","ttl_seconds":60,"fallback_policy":"local"}'
	# counted as started, in a batch: the sum after it reached the file
	eventually svc_is 1 .started 1
	sum=$(state_sum "$S1_STATE")
	for c in 'client_id|{"target":""}' \
	    'client_id|{"client_id":"","target":""}' \
	    'client_id|{"client_id":7,"target":""}' \
	    'target|{"client_id":"c"}' \
	    'target|{"client_id":"c","target":"ftp://x"}' \
	    'connection_type|{"client_id":"c","target":"","connection_type":"tcp"}' \
	    'region|{"client_id":"c","target":"","region":""}' \
	    'region|{"client_id":"c","target":"","region":5}' \
	    'bogus|{"client_id":"c","target":"","bogus":1}' \
	    'target|{"client_id":"c","target":"http://a/","target":"http://b/"}'; do
		out=$(req "${c#*|}")
		is "$(jq -r '.error.code, .error.details.field' <<<"$out")" \
		    "$(lines VALIDATION_ERROR "${c%%|*}")"
	done
	is "$(state_sum "$S1_STATE")" "$sum"
	# No proxy in the region: 503.
	out=$(req '{"client_id":"c","target":"","region":"mars"}')
	is "$(jq -r .error.code <<<"$out")" PROXY_POOL_EMPTY
}

@test "POST /api/v1/proxy/feedback: one report or a batch; a bad one changes nothing" {
	svc 1 -q pool add http://10.0.0.1:3128 http://10.0.0.2:3128
	start_svc 1
	fb() {
		curl -sS -X POST -H 'Content-Type: application/json' \
		    --data-binary "$1" "$S1_URL/api/v1/proxy/feedback"
	}
	out=$(fb '{"proxy_id":1,"success":true,"latency_ms":20,"timestamp":1800000000}')
	is "$(jq -c .data <<<"$out")" '{"accepted":1,"unknown":0}'
	out=$(fb '{"reports":[{"proxy_id":2,"success":false,"error":"reset"},{"proxy_id":99,"success":true}]}')
	is "$(jq -c .data <<<"$out")" '{"accepted":1,"unknown":1}'
	eventually svc_is 1 '.succeeded, .latency_ms' "$(lines 1 20)"
	is "$(svc 1 pool show 2 --json | jq -r .failed)" 1
	sum=$(state_sum "$S1_STATE")
	for c in 'proxy_id|{"success":true}' \
	    'proxy_id|{"proxy_id":0,"success":true}' \
	    'proxy_id|{"proxy_id":1.5,"success":true}' \
	    'success|{"proxy_id":1}' \
	    'success|{"proxy_id":1,"success":"yes"}' \
	    'latency_ms|{"proxy_id":1,"success":true,"latency_ms":-1}' \
	    'timestamp|{"proxy_id":1,"success":true,"timestamp":"now"}' \
	    'error|{"proxy_id":1,"success":false,"error":3}' \
	    'reports|{"reports":{}}' \
	    'reports|{"reports":[]}' \
	    'reports[1].success|{"reports":[{"proxy_id":1,"success":true},{"proxy_id":2}]}' \
	    'reports[0]|{"reports":[1]}' \
	    'sucess|{"proxy_id":1,"success":true,"sucess":false}' \
	    'success|{"proxy_id":1,"success":true,"success":false}' \
	    'client_id|{"client_id":"c","proxy_id":1,"success":true}' \
	    'proxy_id|{"reports":[{"proxy_id":1,"success":true}],"proxy_id":1}' \
	    'reports[0].x|{"reports":[{"proxy_id":1,"success":true,"x":1}]}'; do
		out=$(fb "${c#*|}")
		is "$(jq -r '.error.code, .error.details.field' <<<"$out")" \
		    "$(lines VALIDATION_ERROR "${c%%|*}")"
	done
	is "$(state_sum "$S1_STATE")" "$sum"
}

@test "/metrics and pw cache stats count delegation" {
	svc 1 -q pool add http://10.0.0.1:3128
	start_svc 1
	export PW_SERVICE__ENDPOINTS=$S1_URL
	pw pool next >/dev/null
	pw pool next >/dev/null
	run -0 curl -sS "$S1_URL/metrics"
	like "$output" "*pw_delegate_requests_total 1*"
	run -0 pw cache stats --json
	is "$(jq -c .service <<<"$output")" '{"calls":1,"errors":0,"cache_hits":1,"fallbacks":0,"breaker_opened":0,"breaker_half_opened":0,"breaker_closed":0,"outbox_depth":0,"outbox_sent":0,"outbox_dropped":0,"delegated_requests":0,"delegated_feedback":0}'
	run -0 pw cache stats --format prometheus
	like "$output" "*pw_service_cache_hits_total 1*"
}

# ------------------------------------------------- without a service

@test "without a service pw selects as before and shows nothing of it" {
	pw -q pool add http://10.0.0.1:3128
	run -0 pw pool next --format json
	[[ $output != *'"path"'* ]]
	run -0 pw cache stats
	[[ $output != *service* ]]
	# Enabled false: the endpoints are ignored.
	PW_SERVICE__ENDPOINTS=http://127.0.0.1:1 PW_SERVICE__ENABLED=false \
	    run -0 pw pool next
	is "$output" http://10.0.0.1:3128
	is "$(stat service.fallbacks)" 0
	# Options the service cannot honour keep the selection local.
	PW_SERVICE__ENDPOINTS=http://127.0.0.1:1 run -0 pw -c geo.fallback=true pool next --country DE
	is "$(stat service.calls)" 0
}

# ---------------------------------------------------------- bad input

@test "the settings: env names with a double underscore, and bad values refused" {
	PW_SERVICE__ENDPOINTS='http://127.0.0.1:1 http://127.0.0.1:2' \
	    PW_SERVICE__TIMEOUT=250ms run -0 pw config get service.endpoints
	is "$output" 'http://127.0.0.1:1 http://127.0.0.1:2'
	PW_SERVICE__TIMEOUT=0.5 run -0 pw config get service.timeout
	is "$output" 0.5
	# The key is masked where settings are listed, not when asked for.
	PW_SERVICE__KEY=s3cret run -0 pw config list --plain
	is "$(grep '^service.key' <<<"$output")" "$(printf 'service.key\t***\tenv')"
	PW_SERVICE__KEY=s3cret run -0 pw config get service.key
	is "$output" s3cret
	# Never stored: it would be in the state file in clear.
	sum1=$(state_sum "$BATS_TEST_TMPDIR/s1.db")
	run -2 --separate-stderr svc 1 config set service.key s3cret
	is "$stderr" "pw: config set: service.key: a secret is not kept in the state file; give it in \$PW_SERVICE__KEY"
	is "$(state_sum "$BATS_TEST_TMPDIR/s1.db")" "$sum1"
	PW_SERVICE__KEY=s3cret start_svc 1
	run -0 curl -sS "$S1_URL/api/v1/config"
	is "$(jq -r '.data["service.key"].value' <<<"$output")" '***'
	stop_svc 1
	pw -q pool add http://10.0.0.1:3128
	sum=$(state_sum)
	run -2 --separate-stderr pw config set service.timeout 5ms
	is "$stderr" "pw: config set: service.timeout: '5ms': want a duration from 10ms to 60000ms (like 250ms, 0.5, 2s)"
	run -2 --separate-stderr pw config set service.endpoints ftp://x
	is "$stderr" "pw: config set: service.endpoints: 'ftp://x': want http:// or https:// URLs, separated by spaces"
	run -2 --separate-stderr pw config set service.auth basic
	is "$stderr" "pw: config set: service.auth: 'basic': want one of: none api-key bearer mtls"
	run -2 --separate-stderr env PW_SERVICE__BREAKER_THRESHOLD=0 pw pool next
	is "$stderr" "pw: PW_SERVICE__BREAKER_THRESHOLD: service.breaker_threshold: '0': want an integer from 1 to 1000"
	is "$(state_sum)" "$sum"
}

@test "bad input to pool next, report and flush: exit 2 and nothing changed" {
	pw -q pool add http://10.0.0.1:3128
	sum=$(state_sum)
	run -2 --separate-stderr pw pool next --target ftp://x
	is "$stderr" "pw: pool next: --target: 'ftp://x': want an http, https, ws or wss URL"
	run -2 --separate-stderr pw pool report 1 maybe
	is "$stderr" "pw: pool report: 'maybe': want ok or fail"
	run -2 --separate-stderr pw pool report 1 ok --fail
	is "$stderr" "pw: pool report: give ok or fail once"
	run -2 --separate-stderr pw pool report 1 fail --latency 5
	is "$stderr" "pw: pool report: --latency-ms goes with --ok"
	run -2 --separate-stderr pw pool report 1 ok --latency 5 --latency-ms 5
	is "$stderr" "pw: pool report: give --latency or --latency-ms once"
	run -2 --separate-stderr pw pool flush
	is "$stderr" "pw: pool flush: no service configured (set service.endpoints)"
	PW_SERVICE__ENDPOINTS=http://127.0.0.1:1 run -2 --separate-stderr pw pool flush --timeout 0
	is "$stderr" "pw: pool flush: --timeout: '0': want an integer from 1 to 3600"
	is "$(state_sum)" "$sum"
	# An id the service never handed out is a local one.
	PW_SERVICE__ENDPOINTS=http://127.0.0.1:1 run -1 --separate-stderr pw pool report 7 ok
	is "$stderr" "pw: pool report: 7: no such proxy"
	is "$(state_sum)" "$sum"
}
