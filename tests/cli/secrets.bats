#!/usr/bin/env bats
# secrets.bats -- the secrets audit: proxy passwords (http through an
# authenticating tinyproxy, socks5 through microsocks with auth), a target's
# and a judge's password, an API key, gateway users, a Redis URL with a
# password and service.key. Every command of pw is run, in every output
# format, on its success and its error paths; pw serve's every GET endpoint,
# its errors, /metrics and its log; the gateway's log. No secret may
# appear in stdout, stderr, a log, an export, an API response, or the
# bytes of the state file and its WAL -- except where the user asked for
# it (pw pool next, --show-secrets, --with-credentials, pw config get KEY,
# pw serve keys add, proxy_url of POST /api/v1/proxy/request), which the
# tests check too, so that a search that finds nothing means something.
#
# Every secret starts with S3cr3t; the search is for that, for the API key
# and for the Basic credentials (base64) a proxy is sent.

bats_require_minimum_version 1.5.0

load helper
load ../helpers/peers

PASS=S3cr3tPassw0rd
REDIS_PASS=S3cr3tRedisPass
GW_PASS=S3cr3tGatewayPass
SVC_KEY=S3cr3tServiceKey

setup_file() {
	start_origin
	start_tinyproxy --user tpu --pass "$PASS"
	start_microsocks --user msu --pass "$PASS"
	start_redis --pass "$REDIS_PASS"
	export TPA=http://tpu:$PASS@127.0.0.1:$TINYPROXY_PORT
	export MSA=socks5h://msu:$PASS@127.0.0.1:$MICROSOCKS_PORT
	export TP_SHOWN=http://***:***@127.0.0.1:$TINYPROXY_PORT
}

teardown_file() {
	stop_peers
}

setup() {
	setup_pw
	export PW_SECRET_KEY=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
	OUT=$BATS_TEST_TMPDIR/out
	ASKED=$BATS_TEST_TMPDIR/asked
	mkdir -p "$OUT" "$ASKED"
	N=0
	APIKEY=
}

teardown() {
	stop_peers
}

# keep CMD...: run CMD; its stdout and stderr go to files under $OUT (one
# pair per call, numbered, with the command line beside them). RC is its
# exit status.
keep() {
	N=$((N + 1))
	printf '%s\n' "$*" >"$BATS_TEST_TMPDIR/$N.cmd"
	RC=0
	"$@" >"$OUT/$N.out" 2>"$OUT/$N.err" || RC=$?
}

# asked CMD...: the same for a command whose output is meant to hold a
# secret, under $ASKED: not searched, but checked to hold one.
asked() {
	N=$((N + 1))
	"$@" >"$ASKED/$N.out" 2>"$ASKED/$N.err" || :
	grep -q -a -F -e S3cr3t ${APIKEY:+-e "$APIKEY"} "$ASKED/$N.out" || {
		echo "no secret where it was asked for: $*" >&2
		return 1
	}
}

# leaks PATH...: each file under PATH holding a secret, and the line.
leaks() {
	local b1 b2
	b1=$(printf 'tpu:%s' "$PASS" | base64)
	b2=$(printf 'msu:%s' "$PASS" | base64)
	grep -r -a -n -F -e S3cr3t -e "$b1" -e "$b2" \
	    ${APIKEY:+-e "$APIKEY" -e "${APIKEY#pw_}"} "$@" 2>/dev/null |
	    cut -c1-300 || :
}

# no_leaks PATH...: none, in PATH, in $OUT and in the state file.
no_leaks() {
	local f state=()
	for f in "$PW_STATE" "$PW_STATE-wal" "$PW_STATE-shm"; do
		if [ -e "$f" ]; then state+=("$f"); fi
	done
	[ -s "$PW_STATE" ]
	is "$(leaks "$OUT" "${state[@]}" "$@")" ""
	# and the commands ran: a search of nothing finds nothing
	[ "$N" -gt 10 ]
}

# ---------------------------------------------------------------- CLI

@test "pool, cache and config: no password in any format or on any error path unless asked" {
	keep pw pool add "$TPA" "$MSA" "http://u:S3cr3t%2Fenc%40x@127.0.0.1:1"
	is "$RC" 0
	keep pw -v pool add "$TPA" "http://u2:S3cr3tOther@127.0.0.1:$TINYPROXY_PORT"
	local f
	for f in --plain --json --jsonl --csv --table; do
		keep pw pool ls $f
		keep pw -v pool ls $f
		keep pw pool show 1 $f
	done
	keep pw pool show 3
	keep pw pool set 1 --weight 2 --country de
	keep pw pool report 1 ok
	keep pw pool report 2 fail
	keep pw pool sessions --json
	# what the user asks for
	asked pw pool next
	asked pw pool next --session s1
	asked pw --show-secrets pool ls
	asked pw --show-secrets pool show 1 --json
	asked pw cache export --with-credentials
	keep pw pool sessions --json
	keep pw pool sessions
	# bad input quoting a proxy URL with a password
	keep pw pool add "http://u:S3cr3tBad@127.0.0.1:99999"
	is "$RC" 2
	keep pw pool add "ftp://u:S3cr3tBad@127.0.0.1:1"
	keep pw pool add "http://u:S3cr3tBad@"
	keep pw pool rm "http://u:S3cr3tBad@127.0.0.1:7"
	keep pw pool show "http://u:S3cr3tBad@127.0.0.1:7"
	keep pw pool next --target "ftp://u:S3cr3tTarget@127.0.0.1/"
	is "$RC" 2
	is "$(cat "$OUT/$N.err")" "pw: pool next: --target: 'ftp://***:***@127.0.0.1/': want an http, https, ws or wss URL"
	# cache: warm with warnings, export, stats, prune
	printf '%s\n' "http://w:S3cr3tWarm@10.0.0.2:8080" \
	    "http://w:S3cr3tWarm@10.0.0.1:99999" "foo://w:S3cr3tWarm@h:1" \
	    "\"http://w:S3cr3tWarm@h:1" >"$BATS_TEST_TMPDIR/list.txt"
	keep pw cache warm "$BATS_TEST_TMPDIR/list.txt"
	is "$RC" 0
	keep pw cache warm --json "$BATS_TEST_TMPDIR/list.txt"
	keep pw cache warm --format csv "$BATS_TEST_TMPDIR/list.txt"
	keep pw cache warm --format json "$BATS_TEST_TMPDIR/list.txt"
	keep pw cache warm "http://w:S3cr3tList@127.0.0.1:1/list.txt"
	is "$RC" 1
	for f in txt csv json jsonl; do
		keep pw cache export --format "$f"
	done
	keep pw cache stats
	keep pw cache stats --json
	keep pw cache prune
	no_leaks
}

@test "config: secret settings are refused in the file, masked where listed, shown when asked for by name" {
	keep pw config set service.key "$SVC_KEY"
	is "$RC" 2
	is "$(cat "$OUT/$N.err")" "pw: config set: service.key: a secret is not kept in the state file; give it in \$PW_SERVICE__KEY"
	keep pw config set ratelimit.redis_url "redis://:$REDIS_PASS@127.0.0.1:1/0"
	is "$RC" 2
	keep pw config set serve.gateway_users "gw:$GW_PASS,gw2:S3cr3tOther"
	is "$RC" 0
	keep pw config set serve.gateway_users "gw:S3cr3t Bad"
	is "$RC" 2
	keep pw config get serve.gateway_users
	export PW_SERVICE__KEY=$SVC_KEY
	export PW_RATELIMIT__REDIS_URL=redis://:$REDIS_PASS@127.0.0.1:$REDIS_PORT/0
	local f
	for f in "" --json --jsonl --csv --table; do
		keep pw config list $f
	done
	keep pw -c "service.key=S3cr3tFlag" config list --json
	keep pw -c "ratelimit.redis_url=redis://u:S3cr3tFlag@h:1/0" config list
	PW_RATELIMIT__REDIS_URL="redis://:$REDIS_PASS@h:99999999/0" keep pw config list
	is "$RC" 2
	asked pw config get service.key
	asked pw config get ratelimit.redis_url
	asked pw --show-secrets config list
	no_leaks
}

@test "fetch and health: no password in reports, -v, --json, -w or errors, through http and socks5 proxies" {
	pw -q pool add "$TPA" "$MSA"
	keep pw -v fetch "$ORIGIN_URL/ip"
	is "$RC" 0
	keep pw -v fetch --json "$ORIGIN_URL/echo"
	keep pw -v -v fetch -i "$ORIGIN_URL/echo"
	keep pw fetch -w '%{proxy} %{attempts} %{http_code}\n' -o /dev/null "$ORIGIN_URL/ip"
	keep pw fetch -x "$MSA" --json "$ORIGIN_URL/ip"
	# wrong passwords: the proxies refuse, pw says so without them
	keep pw -v fetch -x "http://tpu:S3cr3tWrong@127.0.0.1:$TINYPROXY_PORT" \
	    --json "$ORIGIN_URL/ip"
	keep pw -v fetch -x "socks5://msu:S3cr3tWrong@127.0.0.1:$MICROSOCKS_PORT" \
	    "$ORIGIN_URL/ip"
	is "$RC" 4
	keep pw fetch -x "http://tpu:S3cr3tWrong@127.0.0.1:1" --json "$ORIGIN_URL/ip"
	keep pw fetch -x "http://tpu:S3cr3tWrong@127.0.0.1:99999" "$ORIGIN_URL/ip"
	is "$RC" 2
	# a target with a password of its own, on error paths
	keep pw fetch "http://t:S3cr3tTarget@127.0.0.1:99999/"
	is "$RC" 2
	is "$(cat "$OUT/$N.err")" "pw: fetch: 'http://***:***@127.0.0.1:99999/': bad URL: Port number was not a decimal number between 0 and 65535"
	keep pw fetch "ftp://t:S3cr3tTarget@127.0.0.1:1/"
	is "$(cat "$OUT/$N.err")" "pw: fetch: 'ftp://***:***@127.0.0.1:1/': want an http:// or https:// URL"
	keep pw fetch --retries 2 "http://t:S3cr3tTarget@127.0.0.1:1/"
	keep pw fetch -f "http://t:S3cr3tTarget@127.0.0.1:$ORIGIN_PORT/status/404"
	is "$RC" 22
	is "$(cat "$OUT/$N.err")" "pw: fetch: http://***:***@127.0.0.1:$ORIGIN_PORT/status/404: HTTP 404"
	keep pw fetch -m 1 "http://t:S3cr3tTarget@127.0.0.1:$ORIGIN_PORT/hang"
	is "$RC" 5
	# health, with a judge that has a password too
	local f
	for f in --plain --json --jsonl --csv --table; do
		keep pw -v health $f -u "$ORIGIN_URL/ip"
	done
	keep pw health --anonymity --json -u "$ORIGIN_URL/echo"
	keep pw health --json -u "http://j:S3cr3tJudge@127.0.0.1:$ORIGIN_PORT/ip"
	keep pw health --json -u "http://j:S3cr3tJudge@127.0.0.1:1/"
	keep pw health -u "ftp://j:S3cr3tJudge@127.0.0.1:1/"
	is "$RC" 2
	keep pw health --mode connect --json -u "$ORIGIN_URL/ip"
	pw -q pool add "http://tpu:S3cr3tWrong@127.0.0.1:$TINYPROXY_PORT"
	keep pw -v health --json -u "$ORIGIN_URL/ip"
	no_leaks
}

# ------------------------------------------------------------- pw serve

# get PATH [CURL ARGS...]: a GET of the API, kept.
get() {
	local p=$1
	shift
	keep curl -sS -i -H "X-API-Key: $APIKEY" "$@" "$SERVE_URL$p"
}

# send METHOD PATH JSON [CURL ARGS...]: a request with a body, kept.
send() {
	local m=$1 p=$2 d=$3
	shift 3
	keep curl -sS -i -X "$m" -H "X-API-Key: $APIKEY" \
	    -H 'Content-Type: application/json' --data-binary "$d" "$@" \
	    "$SERVE_URL$p"
}

@test "pw serve: no secret in any GET endpoint, error, /metrics or its log" {
	N=0
	APIKEY=$(pw serve keys add tester)
	[[ $APIKEY == pw_* ]]
	asked echo "$APIKEY"
	keep pw serve keys ls
	keep pw serve keys ls --json
	pw -q pool add "$TPA" "$MSA" "http://u:S3cr3tDead@127.0.0.1:1"
	pw -q config set ratelimit.backend redis
	pw -q config set serve.gateway_users "gw:$GW_PASS"
	export PW_SERVICE__KEY=$SVC_KEY
	export PW_RATELIMIT__REDIS_URL=redis://:$REDIS_PASS@127.0.0.1:$REDIS_PORT/0
	start_serve -v --allow-private -v
	local p
	for p in /api/v1/health /api/v1/ready /api/v1/status /api/v1/proxies \
	    '/api/v1/proxies?page_size=1&page=2' /api/v1/proxies/1 \
	    /api/v1/proxies/2 /api/v1/proxies/3 /api/v1/proxies/99 \
	    /api/v1/proxies/next '/api/v1/proxies/next?session=a' \
	    /api/v1/config /api/v1/metrics /metrics \
	    /api/v1/rate-limit/metrics /api/v1/rate-limit/config \
	    /openapi.json /docs /api/v1/nope; do
		get "$p"
	done
	# a request through each proxy, and its errors
	send POST /api/v1/request "{\"url\": \"$ORIGIN_URL/echo\"}"
	send POST /api/v1/request "{\"url\": \"$ORIGIN_URL/echo\", \"strategy\": \"round-robin\"}"
	send POST /api/v1/request "{\"url\": \"http://t:S3cr3tTarget@127.0.0.1:99999/\"}"
	grep -q '^HTTP/1.1 422' "$OUT/$N.out"
	send POST /api/v1/request "{\"url\": \"ftp://t:S3cr3tTarget@127.0.0.1:1/\"}"
	grep -q '^HTTP/1.1 422' "$OUT/$N.out"
	send POST /api/v1/request "{\"url\": \"http://t:S3cr3tTarget@127.0.0.1:1/\"}"
	send POST /api/v1/request "{\"url\": \"http://t:S3cr3tTarget@127.0.0.1:$ORIGIN_PORT/redirect/2?absolute=1\", \"follow_redirects\": true}"
	send POST /api/v1/proxies "{\"url\": \"http://n:S3cr3tNew@127.0.0.1:9\"}"
	grep -q '^HTTP/1.1 201' "$OUT/$N.out"
	send POST /api/v1/proxies "{\"url\": \"http://n:S3cr3tNew@127.0.0.1:9\"}"
	send POST /api/v1/proxies "{\"url\": \"http://n:S3cr3tBad@127.0.0.1:99999\"}"
	send POST /api/v1/proxies "{\"url\": \"foo://n:S3cr3tBad@127.0.0.1:9\"}"
	send POST /api/v1/proxies '{"url": "http://n:S3cr3tBad@127.0.0.1:9"'
	send POST /api/v1/proxies/test '{"ids": [1, 2, 3], "timeout": 2}'
	send POST /api/v1/proxy/feedback '{"proxy_id": 1, "success": true, "client_id": "c1"}'
	send PUT /api/v1/config "{\"service.key\": \"S3cr3tPut\"}"
	send PUT /api/v1/config "{\"ratelimit.redis_url\": \"redis://:S3cr3tPut@127.0.0.1:1/0\"}"
	send PUT /api/v1/config "{\"serve.gateway_users\": \"gw:$GW_PASS,gw2:S3cr3tPut\"}"
	send PUT /api/v1/config "{\"serve.gateway_users\": \"gw2 S3cr3tPut\"}"
	send DELETE /api/v1/proxies/3 ''
	# what the delegation hands a client, it asked for
	asked curl -sS -X POST -H "X-API-Key: $APIKEY" \
	    -H 'Content-Type: application/json' --data-binary "{\"client_id\": \"c1\", \"target\": \"$ORIGIN_URL/\"}" \
	    "$SERVE_URL/api/v1/proxy/request"
	# keys: a wrong one, a bearer token, none
	keep curl -sS -i -H "X-API-Key: pw_S3cr3tWrongKey" "$SERVE_URL/api/v1/proxies"
	grep -q '^HTTP/1.1 401' "$OUT/$N.out"
	keep curl -sS -i -H "Authorization: Bearer S3cr3tBearer" "$SERVE_URL/api/v1/proxies"
	keep curl -sS -i "$SERVE_URL/api/v1/proxies"
	get /api/v1/metrics
	get /metrics
	sleep 1.5		# a flush of the outcomes
	kill -TERM "$SERVE_PID"
	wait "$SERVE_PID"
	[ -s "$SERVE_LOG" ]
	no_leaks "$SERVE_LOG"
}

# ------------------------------------------------------------- gateway

@test "the gateway: no secret in its log, its answers or the state file" {
	pw -q pool add "$TPA" "socks5://msu:S3cr3tWrong@127.0.0.1:$MICROSOCKS_PORT" \
	    "http://x:S3cr3tDead@127.0.0.1:1"
	pw -q config set serve.gateway_users "gw:$GW_PASS"
	start_gateway --retries 3
	local i
	for i in 1 2 3 4; do
		keep curl -sS -i -x "http://gw:$GW_PASS@127.0.0.1:$GW_PORT" \
		    "$ORIGIN_URL/ip"
		keep curl -sS -x "socks5h://gw:$GW_PASS@127.0.0.1:$GW_PORT" \
		    "$ORIGIN_URL/ip"
		keep curl -sS -p -x "http://gw:$GW_PASS@127.0.0.1:$GW_PORT" \
		    "$ORIGIN_URL/ip"
	done
	grep -q "$TINYPROXY_SRC" "$OUT/1.out"
	keep curl -sS -i -x "http://gw:S3cr3tWrongGw@127.0.0.1:$GW_PORT" \
	    "$ORIGIN_URL/ip"
	grep -q '^HTTP/1.1 407' "$OUT/$N.out"
	keep curl -sS -x "socks5h://gw:S3cr3tWrongGw@127.0.0.1:$GW_PORT" \
	    "$ORIGIN_URL/ip"
	keep curl -sS -i -x "http://gw-country-zz:$GW_PASS@127.0.0.1:$GW_PORT" \
	    "$ORIGIN_URL/ip"
	sleep 1.5		# a flush of the outcomes
	kill -TERM "$GW_PID"
	wait "$GW_PID"
	grep -q 'failed' "$GW_LOG"
	no_leaks "$GW_LOG"
}
