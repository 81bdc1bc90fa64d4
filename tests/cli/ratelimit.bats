#!/usr/bin/env bats
# ratelimit.bats -- pw serve's rate limiting against real servers on
# loopback: the default limits and the headers, probes never throttled,
# tiers, endpoints and the whitelist from a configuration file, who a
# client is behind a trusted proxy, reloads (file, PUT), the state-file
# and Redis backends shared by two servers, fail-open and fail-closed with
# redis-server killed, and a step of the wall clock under libfaketime.

bats_require_minimum_version 1.5.0

load helper
load ../helpers/peers

setup() {
	setup_pw
	export PW_SECRET_KEY=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
	W=$BATS_TEST_TMPDIR/work
	mkdir -p "$W"
}

teardown() {
	stop_peers
}

header() {
	printf '%s\n' "$HDRS" | sed -n "s/^$1: //Ip" | tail -n 1
}

# codes N PATH [CURL ARGS]: the statuses of N GETs, counted: "200x5 429x1".
codes() {
	local n=$1 p=$2
	shift 2
	for _ in $(seq "$n"); do
		curl -s -o /dev/null -w '%{http_code}\n' "$@" "${API_URL:-$SERVE_URL}$p"
	done | sort | uniq -c | awk '{ printf "%s%sx%s", sep, $2, $1; sep = " " }'
}

# ------------------------------------------------------------ defaults

@test "default: 100 a minute per address; the 101st is 429 with Retry-After; headers on every answer" {
	start_serve
	api GET /api/v1/proxies
	is "$STATUS" 200
	is "$(header X-RateLimit-Limit)" 100
	is "$(header X-RateLimit-Remaining)" 99
	like "$(header X-RateLimit-Reset)" '[1-9]*'
	is "$(header Retry-After)" ""
	is "$(codes 99 /api/v1/proxies)" "200x99"
	api GET /api/v1/status
	is "$STATUS" 429
	is "$(j .error.code)" RATE_LIMIT_EXCEEDED
	is "$(j .error.details.limit)" 100
	is "$(header X-RateLimit-Remaining)" 0
	retry=$(header Retry-After)
	[ "$retry" -ge 1 ] && [ "$retry" -le 61 ]
	is "$(j .error.details.retry_after)" "$retry"
	# Throttling is logged once per window, without repeating.
	api GET /api/v1/status
	is "$(grep -c 'rate limit: addr:127.0.0.1 throttled' "$SERVE_LOG")" 1
}

@test "default: probes are never throttled; /api/v1/request has 50 a minute" {
	start_serve
	is "$(codes 150 /api/v1/ready)" "200x150"
	is "$(codes 120 /metrics)" "200x120"
	api GET /api/v1/health
	is "$(header X-RateLimit-Limit)" ""
	for _ in $(seq 50); do
		curl -s -o /dev/null -X POST -H 'Content-Type: application/json' \
		    --data-binary '{"url": "http://127.0.0.1:9/"}' \
		    "$SERVE_URL/api/v1/request"
	done
	api POST /api/v1/request -H 'Content-Type: application/json' \
	    --data-binary '{"url": "http://127.0.0.1:9/"}'
	is "$STATUS" 429
	is "$(header X-RateLimit-Limit)" 50
	# The tier's own count goes on for the other endpoints.
	api GET /api/v1/proxies
	is "$STATUS" 200
	is "$(header X-RateLimit-Remaining)" 49
}

@test "ratelimit.enabled false: nothing is limited, no headers" {
	SERVE_ENV=(PW_RATELIMIT__ENABLED=false)
	start_serve
	is "$(codes 120 /api/v1/proxies)" "200x120"
	api GET /api/v1/proxies
	is "$(header X-RateLimit-Limit)" ""
	api GET /api/v1/rate-limit/config
	is "$(j .data.enabled)" false
}

@test "ratelimit.enabled changed while pw serve runs: in force for the next request, on every thread" {
	start_serve
	is "$(codes 50 /api/v1/proxies)" "200x50"
	api PUT /api/v1/config -H 'Content-Type: application/json' \
	    --data-binary '{"ratelimit.enabled": false}'
	is "$STATUS" 200
	# 64 threads: most of these land on one that had no request yet.
	is "$(codes 120 /api/v1/proxies)" "200x120"
	api GET /api/v1/proxies
	is "$(header X-RateLimit-Limit)" ""
	# From another process, as pw config does it: 51 counted so far.
	pw config unset ratelimit.enabled
	is "$(codes 50 /api/v1/proxies)" "200x49 429x1"
}

# ------------------------------------------------------------ the file

tiers() {
	cat >"$W/rl.json" <<-'EOF'
	{
	  "default_tier": "free",
	  "tiers": [
	    {"name": "free", "limit": 5, "window": 60},
	    {"name": "premium", "limit": 1000},
	    {"name": "unlimited", "limit": null}
	  ],
	  "endpoints": {"/api/v1/status": 2},
	  "whitelist": ["127.0.0.2"]
	}
	EOF
}

@test "a configuration file: the default tier, a stricter endpoint, the whitelist" {
	tiers
	SERVE_ENV=(PW_RATELIMIT_CONFIG="$W/rl.json")
	start_serve
	is "$(codes 2 /api/v1/status)" "200x2"
	api GET /api/v1/status
	is "$STATUS" 429
	is "$(header X-RateLimit-Limit)" 2
	is "$(codes 4 /api/v1/proxies)" "200x3 429x1"
	# From 127.0.0.2: another client, and on the whitelist.
	is "$(codes 20 /api/v1/proxies --interface 127.0.0.2)" "200x20"
	api GET /api/v1/rate-limit/config
	is "$(j .data.default_tier)" free
	is "$(j '.data.tiers | map(.name) | join(",")')" free,premium,unlimited
	is "$(j '.data.tiers[2].limit')" null
	is "$(j '.data.endpoints["/api/v1/status"].limit')" 2
	is "$(j '.data.endpoints["/api/v1/health"].limit')" null
	api GET /api/v1/rate-limit/status/127.0.0.1
	is "$(j '.data.counters[0].scope')" "tier free"
	is "$(j '.data.counters[0].remaining')" 0
	is "$(j '.data.counters | map(select(.scope == "/api/v1/status"))[0].remaining')" 0
}

@test "a bad configuration file: pw serve does not start, and says where" {
	echo '{"tiers": [{"name": "free", "limit": -3}]}' >"$W/rl.json"
	run -2 --separate-stderr pw -c "ratelimit.config=$W/rl.json" serve --listen 127.0.0.1:1
	is "$stderr" "pw: serve: ratelimit.config: $W/rl.json: tiers[0].limit: want an integer from 0 (unlimited) to 1000000000"
	echo '{"tiers": ' >"$W/rl.json"
	run -2 --separate-stderr pw -c "ratelimit.config=$W/rl.json" serve --listen 127.0.0.1:1
	is "$stderr" "pw: serve: ratelimit.config: $W/rl.json: not valid JSON"
	run -2 --separate-stderr pw -c "ratelimit.config=$W/none.json" serve --listen 127.0.0.1:1
	is "$stderr" "pw: serve: ratelimit.config: $W/none.json: No such file or directory"
	is "$(state_sum)" absent
}

@test "reload: a changed file is read within seconds, counts kept; a broken one keeps what works" {
	tiers
	SERVE_ENV=(PW_RATELIMIT__CONFIG="$W/rl.json")
	start_serve
	is "$(codes 3 /api/v1/proxies)" "200x3"
	sed -i 's/"limit": 5,/"limit": 4,/' "$W/rl.json"
	for _ in $(seq 100); do
		api GET /api/v1/rate-limit/config
		[ "$(j '.data.tiers[0].limit')" = 4 ] && break
		sleep 0.1
	done
	is "$(j '.data.tiers[0].limit')" 4
	# The 3 counted before still count against the new limit of 4.
	is "$(codes 2 /api/v1/proxies)" "200x1 429x1"
	echo '{"tiers": [' >"$W/rl.json"
	touch -d '+1 minute' "$W/rl.json"
	# It is looked at when requests come.
	for _ in $(seq 100); do
		api GET /api/v1/rate-limit/config
		grep -q 'the configuration in force is kept' "$SERVE_LOG" && break
		sleep 0.1
	done
	grep -q "ratelimit.config: $W/rl.json: not valid JSON (the configuration in force is kept)" "$SERVE_LOG"
	api GET /api/v1/rate-limit/config
	is "$(j '.data.tiers[0].limit')" 4
}

@test "PUT /api/v1/rate-limit/config: in force for the next request; a bad one is 422 naming the field" {
	start_serve
	is "$(codes 3 /api/v1/proxies)" "200x3"
	api PUT /api/v1/rate-limit/config -H 'Content-Type: application/json' \
	    --data-binary '{"tiers": [{"name": "t", "limit": 4}]}'
	is "$STATUS" 200
	is "$(j .data.default_tier)" t
	is "$(codes 2 /api/v1/proxies)" "200x1 429x1"
	api PUT /api/v1/rate-limit/config -H 'Content-Type: application/json' \
	    --data-binary '{"tiers": [{"name": "t", "limit": 4, "window": 0}]}'
	is "$STATUS" 422
	is "$(j .error.code)" VALIDATION_ERROR
	is "$(j .error.details.field)" "tiers[0].window"
	is "$(j .error.message)" "tiers[0].window: want seconds from 1 to 86400"
	api PUT /api/v1/rate-limit/config -H 'Content-Type: application/json' \
	    --data-binary '{"default_tier": "gold"}'
	is "$STATUS" 422
	is "$(j .error.details.field)" default_tier
}

# ------------------------------------------------------------ who

@test "X-Forwarded-For counts only from ratelimit.trusted_proxies, and only its last untrusted hop" {
	tiers
	SERVE_ENV=(PW_RATELIMIT_CONFIG="$W/rl.json")
	start_serve
	# Untrusted: the header is the client's word; one address, one limit.
	for i in 1 2 3 4 5 6; do
		curl -s -o /dev/null -w '%{http_code}\n' -H "X-Forwarded-For: 10.0.0.$i" \
		    "$SERVE_URL/api/v1/proxies"
	done >"$W/c"
	is "$(sort "$W/c" | uniq -c | awk '{print $2 "x" $1}' | tr '\n' ' ')" "200x5 429x1 "
	stop_peers
	SERVE_ENV=(PW_RATELIMIT_CONFIG="$W/rl.json" PW_RATELIMIT__TRUSTED_PROXIES=127.0.0.0/8)
	start_serve
	for i in 1 2 3 4 5 6; do
		curl -s -o /dev/null -w '%{http_code}\n' -H "X-Forwarded-For: 10.0.0.$i" \
		    "$SERVE_URL/api/v1/proxies"
	done >"$W/c"
	is "$(sort -u "$W/c")" 200
	# What a client writes before the last hop does not make it another.
	for i in 1 2 3 4 5 6; do
		curl -s -o /dev/null -w '%{http_code}\n' \
		    -H "X-Forwarded-For: 6.6.6.$i, 10.0.0.9" "$SERVE_URL/api/v1/proxies"
	done >"$W/c"
	is "$(sort "$W/c" | uniq -c | awk '{print $2 "x" $1}' | tr '\n' ' ')" "200x5 429x1 "
	api GET /api/v1/rate-limit/status/10.0.0.9
	is "$(j '.data.counters[0].remaining')" 0
	api GET /api/v1/rate-limit/metrics
	is "$(j '.data.top_throttled[0].identifier')" addr:10.0.0.9
}

# ------------------------------------------------------------ backends

@test "sqlite backend: two servers on one state file share one limit exactly" {
	tiers
	SERVE_ENV=(PW_RATELIMIT_CONFIG="$W/rl.json" PW_RATELIMIT__BACKEND=sqlite)
	start_serve
	A=$SERVE_URL
	start_serve
	B=$SERVE_URL
	{
		API_URL=$A codes 3 /api/v1/proxies
		echo
		API_URL=$B codes 3 /api/v1/proxies
	} >"$W/c"
	is "$(cat "$W/c")" $'200x3\n200x2 429x1'
	api GET /api/v1/rate-limit/config
	is "$(j .data.backend)" sqlite
}

@test "redis backend: two servers share one limit exactly; fail open and closed with redis-server killed, and back" {
	start_redis
	rpid=$_PEER_PID
	tiers
	SERVE_ENV=(PW_RATELIMIT_CONFIG="$W/rl.json" PW_RATELIMIT__BACKEND=redis
	    PW_RATELIMIT__REDIS_URL="$REDIS_URL/2" PW_RATELIMIT__FAIL_MODE=closed)
	start_serve
	A=$SERVE_URL
	SERVE_ENV[3]=PW_RATELIMIT__FAIL_MODE=open
	start_serve
	B=$SERVE_URL
	for i in 1 2 3 4; do
		curl -s -o /dev/null -w '%{http_code}\n' "$A/api/v1/proxies"
		curl -s -o /dev/null -w '%{http_code}\n' "$B/api/v1/proxies"
	done >"$W/c"
	is "$(sort "$W/c" | uniq -c | awk '{print $2 "x" $1}' | tr '\n' ' ')" "200x5 429x3 "
	is "$(redis-cli -p "$REDIS_PORT" -n 2 hget pw:rl:t:addr:127.0.0.1 c)" 5
	thr=$(curl -s "$A/metrics" | awk '/^pw_ratelimit_throttled_total/ { n += $2 } END { print n + 0 }')
	kill -9 "$rpid"
	for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 || break; sleep 0.1; done
	API_URL=$A api GET /api/v1/proxies
	is "$STATUS" 503
	is "$(j .error.code)" RATE_LIMIT_UNAVAILABLE
	# A backend that is away throttled nobody: no 429 is counted.
	is "$(curl -s "$A/metrics" | awk '/^pw_ratelimit_throttled_total/ { n += $2 } END { print n + 0 }')" "$thr"
	API_URL=$B api GET /api/v1/proxies
	is "$STATUS" 200
	api GET /api/v1/rate-limit/metrics
	[ "$(j .data.backend_failures)" -ge 1 ]
	# Counters it cannot read are not made up, whatever the fail mode.
	for u in "$A" "$B"; do
		API_URL=$u api GET /api/v1/rate-limit/status/127.0.0.1
		is "$STATUS" 503
		is "$(j '.error.code, .error.message, .data')" "$(lines \
		    RATE_LIMIT_UNAVAILABLE \
		    "the rate limiter's backend (redis) cannot be reached: its counters are unknown" \
		    null)"
	done
	# Back, on the same port: limits again once the backoff is over.
	redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' \
	    --appendonly no --daemonize no >/dev/null 2>&1 &
	rpid=$!
	for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
	sleep 1.1
	is "$(API_URL=$A codes 5 /api/v1/proxies)" "200x5"
	is "$(API_URL=$A codes 1 /api/v1/proxies)" "429x1"
	API_URL=$A api GET /api/v1/rate-limit/status/127.0.0.1
	is "$STATUS" 200
	is "$(j '.data.counters[0].remaining')" 0
	kill "$rpid"
}

# burst URL N: the statuses of N GETs of URL from one curl (one
# connection, one after another), one per line.
burst() {
	local args=()
	for _ in $(seq "$2"); do args+=(-o /dev/null "$1"); done
	curl -s -w '%{http_code}\n' "${args[@]}"
}

# Far from a limit the shared backends count in batches; near it, each
# request: two servers, bursts in turn, exactly the limit passes. A day's
# window: windows turn at fixed times, and past a turn the last one's
# count fades, a request more every 30 ms for a minute's window of 2000,
# so a test that ran across one saw a few more pass.
batched() {
	echo '{"default_tier": "t", "tiers": [{"name": "t", "limit": 2000,
	    "window": 86400}]}' >"$W/rl.json"
	SERVE_ENV+=(PW_RATELIMIT_CONFIG="$W/rl.json")
	start_serve
	A=$SERVE_URL
	start_serve
	B=$SERVE_URL
	for _ in 1 2 3 4 5 6 7; do
		burst "$A/api/v1/proxies?page_size=1" 160
		burst "$B/api/v1/proxies?page_size=1" 160
	done >"$W/c"
	is "$(sort "$W/c" | uniq -c | awk '{print $2 "x" $1}' | tr '\n' ' ')" "200x2000 429x240 "
}

@test "/metrics: requests and refusals by tier, checks on the backend, the check-time histogram" {
	tiers
	SERVE_ENV=(PW_RATELIMIT_CONFIG="$W/rl.json" PW_RATELIMIT__BACKEND=sqlite)
	start_serve
	is "$(codes 7 /api/v1/proxies)" "200x5 429x2"
	api GET /metrics
	is "$STATUS" 200
	m() { printf '%s\n' "$BODY" | awk -v k="$1" '$1 == k { print $2 }'; }
	is "$(m 'pw_ratelimit_requests_total{tier="free"}')" 7
	is "$(m 'pw_ratelimit_throttled_total{tier="free"}')" 2
	# A limit of 5 is never counted in batches: each check on the file.
	is "$(m pw_ratelimit_backend_checks_total)" 7
	is "$(m pw_ratelimit_check_duration_seconds_count)" 7
	is "$(m 'pw_ratelimit_check_duration_seconds_bucket{le="+Inf"}')" 7
	printf '%s\n' "$BODY" | grep -q '^# TYPE pw_ratelimit_check_duration_seconds histogram$'
}

@test "sqlite backend in batches: two servers share a limit of 2000 exactly, asking the file for a fraction" {
	SERVE_ENV=(PW_RATELIMIT__BACKEND=sqlite)
	batched
	# 2240 checks; one by one they would be 2240 writes.
	n=0
	for u in "$A" "$B"; do
		API_URL=$u api GET /api/v1/rate-limit/metrics
		n=$(( n + $(j .data.backend_checks) ))
	done
	[ "$n" -gt 0 ] && [ "$n" -lt 1120 ]
}

@test "redis backend in batches: two servers share a limit of 2000 exactly" {
	start_redis
	SERVE_ENV=(PW_RATELIMIT__BACKEND=redis PW_RATELIMIT__REDIS_URL="$REDIS_URL/4")
	batched
	is "$(redis-cli -p "$REDIS_PORT" -n 4 hget pw:rl:t:addr:127.0.0.1 c)" 2000
	API_URL=$A api GET /api/v1/rate-limit/metrics
	[ "$(j .data.backend_checks)" -lt "$(j .data.checks)" ]
}

# ------------------------------------------------------------ clocks

@test "a step of the wall clock neither resets nor stretches a window" {
	tiers
	lib=/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1
	[ -e "$lib" ] || lib=$(find /usr/lib -name libfaketimeMT.so.1 | head -n 1)
	echo '+0' >"$W/clock"
	# (Under AddressSanitizer, which wants to be loaded first.)
	SERVE_ENV=(PW_RATELIMIT_CONFIG="$W/rl.json" LD_PRELOAD="$lib"
	    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
	    FAKETIME_TIMESTAMP_FILE="$W/clock" FAKETIME_NO_CACHE=1
	    FAKETIME_DONT_FAKE_MONOTONIC=1)
	start_serve
	is "$(codes 6 /api/v1/proxies)" "200x5 429x1"
	before=$(date -u +%Y)
	echo '+3h' >"$W/clock"
	api GET /api/v1/proxies
	is "$STATUS" 429
	# The server's wall clock did move: its timestamps say so.
	t=$(j .meta.timestamp)
	[ "$(date -d "$t" +%s)" -gt $(( $(date +%s) + 3 * 3600 - 120 )) ]
	echo '-3h' >"$W/clock"
	api GET /api/v1/proxies
	is "$STATUS" 429
	[ "$(date -d "$(j .meta.timestamp)" +%s)" -lt $(( $(date +%s) - 3 * 3600 + 120 )) ]
	[ "$before" -gt 2000 ]
}

# ------------------------------------------------------------ outbound

@test "fetch.rate_per_proxy in pw serve: /api/v1/request answers 429 rather than wait" {
	start_origin
	start_tinyproxy
	pw -q pool add "$TINYPROXY_URL"
	pw config set fetch.rate_per_proxy 1/1h
	SERVE_ENV=(PW_RATELIMIT__ENABLED=false)
	start_serve --allow-private
	req() {
		api POST /api/v1/request -H 'Content-Type: application/json' \
		    --data-binary "{\"url\": \"$ORIGIN_URL/ip\"}"
	}
	req
	is "$STATUS" 200
	req
	is "$STATUS" 429
	is "$(j .error.code)" RATE_LIMIT_EXCEEDED
	like "$(j .error.message)" "every eligible proxy has had its fetch.rate_per_proxy; *"
}

# ------------------------------------------------------------ keys

@test "API keys: a key is its own client with its key's tier; the configuration is for tier admin" {
	tiers
	pw -q serve keys add alice --tier premium >"$W/alice"
	pw -q serve keys add bob >"$W/bob"
	pw -q serve keys add root --tier admin >"$W/root"
	SERVE_ENV=(PW_RATELIMIT_CONFIG="$W/rl.json")
	start_serve
	A=(-H "X-API-Key: $(cat "$W/alice")")
	B=(-H "X-API-Key: $(cat "$W/bob")")
	# bob has no tier: the default one, 5; alice's premium is 1000.
	is "$(codes 6 /api/v1/proxies "${B[@]}")" "200x5 429x1"
	is "$(codes 20 /api/v1/proxies "${A[@]}")" "200x20"
	api GET /api/v1/proxies "${A[@]}"
	is "$(header X-RateLimit-Limit)" 1000
	api GET /api/v1/rate-limit/status/key:bob
	is "$STATUS" 401
	api GET /api/v1/rate-limit/status/key:bob "${A[@]}"
	is "$(j '.data.counters[0].remaining')" 0
	api GET /api/v1/rate-limit/config "${A[@]}"
	is "$STATUS" 403
	is "$(j .error.code)" FORBIDDEN
	api PUT /api/v1/rate-limit/config "${A[@]}" -H 'Content-Type: application/json' \
	    --data-binary '{"tiers": [{"name": "free", "limit": 1000000}]}'
	is "$STATUS" 403
	api GET /api/v1/rate-limit/config -H "X-API-Key: $(cat "$W/root")"
	is "$STATUS" 200
	is "$(j .data.default_tier)" free
	api GET /api/v1/rate-limit/metrics "${A[@]}"
	is "$(j .data.top_throttled[0].identifier)" key:bob
}

@test "SIGHUP reads the rate-limit file again at once, counts kept" {
	tiers
	SERVE_ENV=(PW_RATELIMIT_CONFIG="$W/rl.json")
	start_serve
	is "$(codes 3 /api/v1/proxies)" "200x3"
	sed -i 's/"limit": 5,/"limit": 3,/' "$W/rl.json"
	# Well within the 5 s between looks at the file: the signal did it.
	kill -HUP "$SERVE_PID"
	for _ in $(seq 50); do
		grep -q 'SIGHUP' "$SERVE_LOG" && break
		sleep 0.05
	done
	api GET /api/v1/rate-limit/config
	is "$(j '.data.tiers[0].limit')" 3
	is "$(codes 1 /api/v1/proxies)" "429x1"
	# A broken file: the error is logged, the configuration kept.
	echo '{"tiers": [' >"$W/rl.json"
	kill -HUP "$SERVE_PID"
	for _ in $(seq 50); do
		grep -q 'configuration in force is kept' "$SERVE_LOG" && break
		sleep 0.05
	done
	grep -q "ratelimit.config: $W/rl.json: not valid JSON (the configuration in force is kept)" "$SERVE_LOG"
	api GET /api/v1/rate-limit/config
	is "$(j '.data.tiers[0].limit')" 3
}
