#!/usr/bin/env bats
# serve.bats -- pw serve on a free loopback port, driven with curl: the
# envelope on every response, request ids, 404/405/413, health, ready and
# status, the pool endpoints with every bad input, proxied requests
# through real peers (tinyproxy, microsocks, the origin) with each error
# code, many clients at once beside another pw process on the same state
# file, and shutdown on SIGTERM/SIGINT with a request in flight.

bats_require_minimum_version 1.5.0

load helper
load ../helpers/peers

setup_file() {
	start_origin
	refused_port >/dev/null
	export REFUSED=http://127.0.0.1:$REFUSED_PORT
	start_tinyproxy
	export TP=$TINYPROXY_URL TP_SRC=$TINYPROXY_SRC
	start_microsocks
	export MS=socks5h://127.0.0.1:$MICROSOCKS_PORT
}

teardown_file() {
	stop_peers
}

setup() {
	setup_pw
	export PW_SECRET_KEY=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
}

teardown() {
	stop_peers
}

header() {
	printf '%s\n' "$HDRS" | sed -n "s/^$1: //Ip" | tail -n 1
}

# envelope_error STATUS CODE: the response is that error, in the envelope.
envelope_error() {
	is "$STATUS" "$1"
	is "$(j '.status')" error
	is "$(j '.error.code')" "$2"
	[ -n "$(j '.error.message')" ]
	is "$(j '.meta.version')" "$(pw --version | cut -d' ' -f2)"
	is "$(j '.meta.request_id')" "$(header X-Request-ID)"
	is "$(header Content-Type)" application/json
}

# field: the field a 422 names.
field() {
	j '.error.details.field'
}

add() {
	pw -q pool add "$@"
}

# ------------------------------------------------------------- basics

@test "every response is in the envelope, with a request id and security headers" {
	start_serve
	add http://10.0.0.1:3128
	api GET /api/v1/health
	is "$STATUS" 200
	is "$(j '.status')" success
	is "$(j '.error')" null
	is "$(j '.data.status')" healthy
	like "$(j '.meta.timestamp')" \
	    '[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9].[0-9][0-9][0-9]Z'
	is "$(j '.meta.version')" "$(pw --version | cut -d' ' -f2)"
	like "$(j '.meta.request_id')" \
	    '[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]????????????????????????'
	is "$(j '.meta.request_id | length')" 32
	is "$(header X-Request-ID)" "$(j '.meta.request_id')"
	is "$(header X-Content-Type-Options)" nosniff
	is "$(header X-Frame-Options)" DENY
	is "$(header Cache-Control)" no-store
	is "$(header Content-Type)" application/json
	# a new id each time
	local first
	first=$(j '.meta.request_id')
	api GET /api/v1/health
	[ "$(j '.meta.request_id')" != "$first" ]
}

@test "X-Request-ID is echoed when sane, replaced when not" {
	start_serve
	api GET /api/v1/ready -H 'X-Request-ID: abc-123.x_y:z'
	is "$STATUS" 200
	is "$(header X-Request-ID)" abc-123.x_y:z
	is "$(j '.meta.request_id')" abc-123.x_y:z
	api GET /api/v1/ready -H 'X-Request-ID: two words'
	is "$(j '.meta.request_id | length')" 32
	is "$(header X-Request-ID)" "$(j '.meta.request_id')"
	api GET /api/v1/ready -H "X-Request-ID: $(printf 'a%.0s' {1..129})"
	is "$(j '.meta.request_id | length')" 32
	# an error echoes it too
	api GET /nope -H 'X-Request-ID: trace-1'
	envelope_error 404 NOT_FOUND
	is "$(j '.meta.request_id')" trace-1
}

@test "unknown paths are 404 and wrong methods 405 with Allow, in the envelope" {
	start_serve
	api GET /nope
	envelope_error 404 NOT_FOUND
	api GET /api/v1/proxies/
	envelope_error 404 NOT_FOUND
	api GET /api/v1/proxies/1/x
	envelope_error 404 NOT_FOUND
	api GET /api/v2/health
	envelope_error 404 NOT_FOUND
	api POST /api/v1/health
	envelope_error 405 METHOD_NOT_ALLOWED
	is "$(header Allow)" "GET, HEAD"
	api PUT /api/v1/proxies/1
	envelope_error 405 METHOD_NOT_ALLOWED
	is "$(header Allow)" "GET, HEAD, DELETE"
	api DELETE /api/v1/proxies
	envelope_error 405 METHOD_NOT_ALLOWED
	is "$(header Allow)" "GET, HEAD, POST"
	api POST /api/v1/proxies/next
	envelope_error 405 METHOD_NOT_ALLOWED
	is "$(header Allow)" "GET, HEAD"
	api GET /api/v1/request
	envelope_error 405 METHOD_NOT_ALLOWED
	is "$(header Allow)" POST
	api HEAD /api/v1/request -I
	is "$STATUS" 405
}

@test "HEAD wherever GET: the same status and headers, Content-Length of the GET's body, no body" {
	start_serve
	add http://10.0.0.1:3128
	local p get_len raw=$BATS_TEST_TMPDIR/raw
	# the whole answer to a HEAD, as it comes on the wire
	head_raw() {
		{
			printf 'HEAD %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' \
			    "$1" "$SERVE_PORT" >&7
			cat <&7 >"$raw"
		} 7<>"/dev/tcp/127.0.0.1/$SERVE_PORT"
	}
	for p in /api/v1/health /api/v1/status /api/v1/proxies /api/v1/proxies/1 \
	    /api/v1/config /metrics /openapi.json /docs /docs/app.js; do
		api GET "$p"
		is "$STATUS" 200 || { echo "GET $p"; return 1; }
		get_len=$(wc -c <"$BATS_TEST_TMPDIR/body")
		api HEAD "$p" -I
		is "$STATUS" 200 || { echo "HEAD $p"; return 1; }
		# (an uptime in the body may have grown a digit since)
		case $p in
		/api/v1/health|/api/v1/status|/metrics)
			like "$(header Content-Length)" '[1-9]*' ;;
		*)
			is "$(header Content-Length)" "$get_len" ||
			    { echo "HEAD $p"; return 1; } ;;
		esac
		[ -n "$(header X-Request-ID)" ]
		is "$(header Content-Type)" "$(curl -s -o /dev/null -w '%{content_type}' "$SERVE_URL$p")"
		# nothing after the head
		head_raw "$p"
		is "$(head -n 1 "$raw" | tr -d '\r')" 'HTTP/1.1 200 OK'
		is "$(tail -c 4 "$raw" | od -An -c | tr -d ' ')" '\r\n\r\n' ||
		    { echo "HEAD $p"; return 1; }
	done
	head_raw /api/v1/proxies/7
	is "$(head -n 1 "$raw" | tr -d '\r')" 'HTTP/1.1 404 Not Found'
	is "$(tail -c 4 "$raw" | od -An -c | tr -d ' ')" '\r\n\r\n'
	api HEAD /nope -I
	is "$STATUS" 404
}

@test "a body over 1 MiB is refused with 413, announced or chunked; nothing stored" {
	start_serve
	local before big=$BATS_TEST_TMPDIR/big.json
	before=$(state_sum)
	{ printf '{"url":"http://10.0.0.1:3128","source":"'
	  head -c 1100000 /dev/zero | tr '\0' a
	  printf '"}'; } >"$big"
	api POST /api/v1/proxies --data-binary @"$big"
	envelope_error 413 PAYLOAD_TOO_LARGE
	api POST /api/v1/proxies -H 'Transfer-Encoding: chunked' \
	    --data-binary @"$big"
	envelope_error 413 PAYLOAD_TOO_LARGE
	is "$(state_sum)" "$before"
	# just under the limit is read (and then judged on its content)
	{ printf '{"url":"http://10.0.0.1:3128","source":"'
	  head -c 1000000 /dev/zero | tr '\0' a
	  printf '"}'; } >"$big"
	api POST /api/v1/proxies -H 'Content-Type: application/json' \
	    --data-binary @"$big"
	is "$STATUS" 201
}

@test "bad JSON is 400, a body that is not an object or has wrong types 422 naming the field" {
	start_serve
	local before
	before=$(state_sum)
	post /api/v1/proxies '{"url": "http://10.0.0.1:3128",'
	envelope_error 400 INVALID_JSON
	post /api/v1/proxies 'nonsense'
	envelope_error 400 INVALID_JSON
	api POST /api/v1/proxies
	envelope_error 422 VALIDATION_ERROR
	is "$(field)" body
	post /api/v1/proxies '["http://10.0.0.1:3128"]'
	envelope_error 422 VALIDATION_ERROR
	is "$(field)" body
	post /api/v1/proxies '{"url": 3128}'
	envelope_error 422 VALIDATION_ERROR
	is "$(field)" url
	is "$(j '.error.message')" "url: want a string, not a number"
	post /api/v1/proxies '{"url": "http://10.0.0.1:3128", "weight": "2"}'
	envelope_error 422 VALIDATION_ERROR
	is "$(field)" weight
	post /api/v1/proxies '{"url": "http://10.0.0.1:3128", "country": ["DE"]}'
	envelope_error 422 VALIDATION_ERROR
	is "$(field)" country
	is "$(state_sum)" "$before"
}

@test "a JSON value followed by anything but white space is 400 INVALID_JSON; nothing stored" {
	start_serve
	add http://10.0.0.1:3128
	local before
	before=$(state_sum)
	post /api/v1/proxies '{"url": "http://10.0.0.2:3128"}]]]'
	envelope_error 400 INVALID_JSON
	is "$(j '.error.message')" 'the request body is not valid JSON: more after its value (at byte 31)'
	api PUT /api/v1/config -H 'Content-Type: application/json' \
	    --data-binary '{"health.timeout": 7} this is not JSON'
	envelope_error 400 INVALID_JSON
	post /api/v1/request '{"url": "http://10.0.0.9/"} x'
	envelope_error 400 INVALID_JSON
	post /api/v1/proxies '{"url": "http://10.0.0.2:3128"} {"url": "http://10.0.0.3:3128"}'
	envelope_error 400 INVALID_JSON
	printf '{"url": "http://10.0.0.2:3128"}\0' >"$BATS_TEST_TMPDIR/nul"
	post /api/v1/proxies @"$BATS_TEST_TMPDIR/nul"
	envelope_error 400 INVALID_JSON
	api PUT /api/v1/rate-limit/config -H 'Content-Type: application/json' \
	    --data-binary '{"default_tier": "free"} ]'
	envelope_error 400 INVALID_JSON
	is "$(state_sum)" "$before"
	api GET /api/v1/config
	is "$(j '.data["health.timeout"].origin')" default
	# white space after it is fine
	post /api/v1/proxies "$(printf '{"url": "http://10.0.0.2:3128"} \n\t\r\n')"
	is "$STATUS" 201
}

@test "-v logs one line per request with its id; without -v none" {
	start_serve -v
	api GET /api/v1/health -H 'X-Request-ID: log-me'
	api GET /nope -H 'X-Request-ID: log-me-too'
	sleep 0.2
	grep -q '^pw: serve: log-me GET /api/v1/health 503 [0-9]*ms$' "$SERVE_LOG"
	grep -q '^pw: serve: log-me-too GET /nope 404 [0-9]*ms$' "$SERVE_LOG"
	is "$(grep -c '^pw: serve: log-me' "$SERVE_LOG")" 2
	stop_peers
	start_serve
	api GET /api/v1/health -H 'X-Request-ID: quiet'
	sleep 0.2
	! grep -q quiet "$SERVE_LOG"
	grep -q "^pw: serve: listening on http://127.0.0.1:$SERVE_PORT$" \
	    "$SERVE_LOG"
}

@test "-v: what a client sent is logged on one line, control bytes and bad UTF-8 as \\xHH" {
	start_serve -v
	api GET '/api/v1/x%0Apw:%20serve:%20FAKE%20LINE' -H 'X-Request-ID: inj-1'
	envelope_error 404 NOT_FOUND
	api GET '/api/v1/%1b[31mred%0d%7f%ff%c2%9b' -g -H 'X-Request-ID: inj-2'
	api GET /api/v1/health -H 'X-Request-ID: inj-3'
	sleep 0.2
	grep -q '^pw: serve: inj-1 GET /api/v1/x\\x0apw: serve: FAKE LINE 404 [0-9]*ms$' \
	    "$SERVE_LOG"
	! grep -q '^pw: serve: FAKE' "$SERVE_LOG"
	grep -q '^pw: serve: inj-2 GET /api/v1/\\x1b\[31mred\\x0d\\x7f\\xff\\xc2\\x9b 404 [0-9]*ms$' \
	    "$SERVE_LOG"
	# a line each: the listening line and three requests, no raw control byte
	is "$(wc -l <"$SERVE_LOG")" 4
	! LC_ALL=C grep -q '[[:cntrl:]]' "$SERVE_LOG"
}

# ------------------------------------------------- health, ready, status

@test "health: unhealthy (503) when empty or nothing usable, degraded, healthy" {
	start_serve
	api GET /api/v1/health
	envelope_error 503 UNHEALTHY
	is "$(j '.data.status')" unhealthy
	is "$(j '.data.pool.total')" 0
	is "$(j '.data.version')" "$(pw --version | cut -d' ' -f2)"
	[ "$(j '.data.uptime_seconds >= 0')" = true ]
	add http://10.0.0.1:3128 http://10.0.0.2:3128
	api GET /api/v1/health
	is "$STATUS" 200
	is "$(j '.data.status')" healthy
	is "$(j '.data.pool.usable')" 2
	# three failures put a proxy in cooldown: one of two usable
	for _ in 1 2 3; do pw -q pool report 1 --fail; done
	api GET /api/v1/health
	is "$STATUS" 200
	is "$(j '.data.status')" degraded
	is "$(j '.data.pool.usable')" 1
	for _ in 1 2 3; do pw -q pool report 2 --fail; done
	api GET /api/v1/health
	envelope_error 503 UNHEALTHY
	is "$(j '.data.status')" unhealthy
	is "$(j '.data.pool.total')" 2
}

@test "ready: 200 with its checks, even for an empty pool" {
	start_serve
	api GET /api/v1/ready
	is "$STATUS" 200
	is "$(jq -c .data <<<"$BODY")" \
	    '{"ready":true,"checks":{"state_file":true,"pool_loaded":true}}'
}

@test "status: pool counts, strategy, storage and the server" {
	pw config set strategy random
	start_serve
	add http://10.0.0.1:3128 http://10.0.0.2:3128 http://10.0.0.3:3128
	for _ in 1 2 3; do pw -q pool report 1 --fail; done
	api GET /api/v1/status
	is "$STATUS" 200
	is "$(j '[.data.pool.total, .data.pool.usable, .data.pool.unknown,
	    .data.pool.cooling_down] | @tsv')" "$(printf '3\t2\t3\t1')"
	is "$(j '.data.strategy')" random
	is "$(j '.data.storage.backend')" sqlite
	is "$(j '.data.storage.path')" "$PW_STATE"
	is "$(j '.data.server.listen')" "127.0.0.1:$SERVE_PORT"
	[ "$(j '.data.server.requests_total')" -ge 1 ]
}

# --------------------------------------------------------------- proxies

@test "POST /proxies: 201 with Location, credentials masked, in the pool" {
	start_serve
	post /api/v1/proxies '{"url": "socks5://alice:s3cret@10.0.0.9:1080",
	    "country": "de", "region": "Bavaria", "source": "api",
	    "weight": 2.5}'
	is "$STATUS" 201
	is "$(j '.status')" success
	is "$(j '.data.id')" 1
	is "$(header Location)" /api/v1/proxies/1
	is "$(j '.data.url')" 'socks5://***:***@10.0.0.9:1080'
	is "$(j '[.data.scheme, .data.host, .data.port, .data.credentials,
	    .data.status, .data.country, .data.region, .data.source,
	    .data.weight] | @tsv')" \
	    "$(printf 'socks5\t10.0.0.9\t1080\ttrue\tunknown\tDE\tBavaria\tapi\t2.5')"
	[[ $BODY != *s3cret* && $BODY != *alice* ]]
	run -0 pw pool ls --json --show-secrets
	is "$(jq -r '.[0].url' <<<"$output")" \
	    'socks5://alice:s3cret@10.0.0.9:1080'
	api GET /api/v1/proxies/1
	[[ $BODY != *s3cret* && $BODY != *alice* ]]
}

@test "POST /proxies: a duplicate is 409 with the existing id; a new password updates" {
	start_serve
	add http://10.0.0.1:3128 http://u:p@10.0.0.2:3128
	local before
	before=$(state_sum)
	post /api/v1/proxies '{"url": "http://10.0.0.1:3128"}'
	envelope_error 409 CONFLICT
	is "$(j '.error.details.id')" 1
	post /api/v1/proxies '{"url": "HTTP://10.0.0.1:3128/"}'
	envelope_error 409 CONFLICT
	is "$(state_sum)" "$before"
	post /api/v1/proxies '{"url": "http://u:new@10.0.0.2:3128"}'
	is "$STATUS" 200
	is "$(j '.data.id')" 2
	run -0 pw pool ls --json --show-secrets
	is "$(jq -r '.[1].url' <<<"$output")" http://u:new@10.0.0.2:3128
}

@test "POST /proxies: bad input is 422 naming the field; nothing stored" {
	start_serve
	local before
	before=$(state_sum)
	post /api/v1/proxies '{}'
	envelope_error 422 VALIDATION_ERROR
	is "$(field)" url
	is "$(j '.error.message')" "url: required"
	post /api/v1/proxies '{"url": "ftp://10.0.0.1:21"}'
	envelope_error 422 VALIDATION_ERROR
	is "$(field)" url
	post /api/v1/proxies '{"url": "http://u:topsecret@10.0.0.1:99999"}'
	envelope_error 422 VALIDATION_ERROR
	is "$(field)" url
	[[ $BODY != *topsecret* ]]
	post /api/v1/proxies '{"url": "http://10.0.0.1:3128", "country": "XX"}'
	envelope_error 422 VALIDATION_ERROR
	is "$(field)" country
	post /api/v1/proxies '{"url": "http://10.0.0.1:3128", "weight": -1}'
	envelope_error 422 VALIDATION_ERROR
	is "$(field)" weight
	post /api/v1/proxies '{"url": "http://10.0.0.1:3128", "source": ""}'
	envelope_error 422 VALIDATION_ERROR
	is "$(field)" source
	# A label is printed one a line: no control character.
	post /api/v1/proxies '{"url": "http://10.0.0.1:3128", "source": "a\n9\tb"}'
	envelope_error 422 VALIDATION_ERROR
	is "$(field)" source
	post /api/v1/proxies '{"url": "http://10.0.0.1:3128", "region": "\u001b[31m"}'
	envelope_error 422 VALIDATION_ERROR
	is "$(field)" region
	is "$(state_sum)" "$before"
}

@test "GET /proxies: pages, totals, has_next/has_prev and filters" {
	start_serve
	add http://10.0.0.1:1 http://10.0.0.2:2 http://10.0.0.3:3 \
	    http://10.0.0.4:4 socks5://10.0.0.5:5
	api GET '/api/v1/proxies?page=2&page_size=2'
	is "$STATUS" 200
	is "$(j '[.data.items[].id] | @tsv')" "$(printf '3\t4')"
	is "$(j '[.data.total, .data.page, .data.page_size, .data.has_next,
	    .data.has_prev] | @tsv')" "$(printf '5\t2\t2\ttrue\ttrue')"
	api GET '/api/v1/proxies?page=3&page_size=2'
	is "$(j '[.data.items[].id] | @tsv')" 5
	is "$(j '[.data.has_next, .data.has_prev] | @tsv')" "$(printf 'false\ttrue')"
	# a last page that is exactly full has no next
	api GET '/api/v1/proxies?page=1&page_size=5'
	is "$(j '[(.data.items | length), .data.has_next, .data.has_prev] |
	    @tsv')" "$(printf '5\tfalse\tfalse')"
	api GET '/api/v1/proxies?page=9&page_size=2'
	is "$(j '.data.items | length')" 0
	is "$(j '.data.total')" 5
	api GET /api/v1/proxies
	is "$(j '[.data.total, .data.page, .data.page_size, .data.has_next,
	    .data.has_prev, (.data.items | length)] | @tsv')" \
	    "$(printf '5\t1\t50\tfalse\tfalse\t5')"
	api GET '/api/v1/proxies?page_size=500'
	is "$STATUS" 200
	for _ in 1 2 3; do pw -q pool report 2 --fail; done
	pw pool ls --json | jq -r '.[] | "\(.id) \(.status)"' >"$BATS_TEST_TMPDIR/st"
	api GET '/api/v1/proxies?status=unknown'
	is "$(j '.data.total')" "$(grep -c ' unknown$' "$BATS_TEST_TMPDIR/st")"
	api GET '/api/v1/proxies?scheme=socks5'
	is "$(j '[.data.items[].id] | @tsv')" 5
}

@test "GET /proxies: bad page, page_size, status are 422 naming the parameter" {
	start_serve
	local q f
	for q in page_size=501:page_size page_size=0:page_size \
	    page_size=x:page_size page=0:page page=-1:page page=1.5:page \
	    status=sick:status scheme=ftp:scheme country=XX:country; do
		f=${q##*:}
		api GET "/api/v1/proxies?${q%:*}"
		envelope_error 422 VALIDATION_ERROR
		is "$(field)" "$f"
	done
	api GET '/api/v1/proxies?page_size=501'
	is "$(j '.error.message')" \
	    "page_size: '501': want an integer from 1 to 500"
}

@test "GET and DELETE /proxies/{id}: 200, 204, and 404 for unknown ids" {
	start_serve
	add http://10.0.0.1:3128 http://10.0.0.2:3128
	api GET /api/v1/proxies/2
	is "$STATUS" 200
	is "$(j '.data.id')" 2
	is "$(j '.data.url')" http://10.0.0.2:3128
	local before
	before=$(state_sum)
	api GET /api/v1/proxies/3
	envelope_error 404 NOT_FOUND
	api GET /api/v1/proxies/abc
	envelope_error 404 NOT_FOUND
	api GET /api/v1/proxies/0
	envelope_error 404 NOT_FOUND
	api DELETE /api/v1/proxies/3
	envelope_error 404 NOT_FOUND
	api DELETE /api/v1/proxies/x
	envelope_error 404 NOT_FOUND
	# Junk after the id, a NUL too, is no id: not proxy 2.
	for p in 2%00 2%00x 2%00%00 +2 2%20 2%0A; do
		api GET "/api/v1/proxies/$p"
		envelope_error 404 NOT_FOUND
		api DELETE "/api/v1/proxies/$p"
		envelope_error 404 NOT_FOUND
	done
	is "$(j '.error.message')" "'2
': no such proxy"
	api GET /api/v1/proxies/2%00
	is "$(j '.error.message')" "'2%00': no such proxy"
	# An escaped digit is a digit.
	api GET /api/v1/proxies/%32
	is "$(j '.data.id')" 2
	# Nor does a NUL cut a query parameter short.
	api GET '/api/v1/proxies?page_size=1%00'
	envelope_error 422 VALIDATION_ERROR
	is "$(state_sum)" "$before"
	api DELETE /api/v1/proxies/1
	is "$STATUS" 204
	is "$BODY" ""
	[ -n "$(header X-Request-ID)" ]
	api GET /api/v1/proxies/1
	envelope_error 404 NOT_FOUND
	api DELETE /api/v1/proxies/1
	envelope_error 404 NOT_FOUND
	run -0 pw pool ls --plain
	is "$(cut -f1 <<<"$output")" 2
}

@test "GET /proxies/next: strategy, session and country; errors" {
	start_serve
	api GET /api/v1/proxies/next
	envelope_error 503 PROXY_POOL_EMPTY
	add --country DE http://10.0.0.1:1 http://10.0.0.2:2
	add --country FR http://u:pw@10.0.0.3:3
	local ids=()
	for _ in 1 2 3 4; do
		api GET '/api/v1/proxies/next?strategy=round-robin'
		is "$STATUS" 200
		ids+=("$(j '.data.id')")
	done
	is "${ids[*]}" "1 2 3 1"
	api GET '/api/v1/proxies/next?country=fr'
	is "$(j '.data.id')" 3
	is "$(j '.data.url')" 'http://***:***@10.0.0.3:3'
	api GET '/api/v1/proxies/next?strategy=sticky&session=s1'
	local sticky
	sticky=$(j '.data.id')
	for _ in 1 2; do
		api GET '/api/v1/proxies/next?strategy=sticky&session=s1'
		is "$(j '.data.id')" "$sticky"
	done
	# "next" is a path of its own, marked used in the pool (the file
	# gets it within a second)
	started_ge() {
		run -0 pw pool ls --json
		[ "$(jq '[.[].started] | add' <<<"$output")" -ge "$1" ]
	}
	eventually started_ge 7
	api GET '/api/v1/proxies/next?strategy=fastest'
	envelope_error 422 VALIDATION_ERROR
	is "$(field)" strategy
	api GET '/api/v1/proxies/next?strategy=sticky'
	envelope_error 422 VALIDATION_ERROR
	is "$(field)" strategy
	api GET '/api/v1/proxies/next?country=XX'
	envelope_error 422 VALIDATION_ERROR
	is "$(field)" country
	api GET '/api/v1/proxies/next?country=US'
	envelope_error 503 PROXY_POOL_EMPTY
	# A region in any case, as a country.
	add --region Berlin http://10.0.0.4:4
	for r in Berlin berlin BERLIN; do
		api GET "/api/v1/proxies/next?region=$r"
		is "$STATUS" 200
		is "$(j '.data.id')" 4
	done
}

# ------------------------------------------------------- proxied requests
# The origin and the peers are on loopback: --allow-private lets them be
# targets (serve_api.bats tests the guard itself).

@test "POST /request: through tinyproxy to the origin, headers and body passed" {
	start_serve --allow-private
	add "$TP"
	post /api/v1/request "{\"url\": \"$ORIGIN_URL/echo?a=1\",
	    \"method\": \"POST\", \"headers\": {\"X-Test\": \"yes\",
	    \"Content-Type\": \"text/plain\"}, \"body\": \"hello\",
	    \"timeout\": 10}"
	is "$STATUS" 200
	is "$(j '.status')" success
	is "$(j '.data.status_code')" 200
	is "$(j '.data.proxy_used')" "$TP"
	is "$(j '.data.proxy_id')" 1
	is "$(j '.data.attempts')" 1
	[ "$(j '.data.elapsed_ms')" -ge 0 ]
	is "$(j '.data.body_encoding')" utf-8
	is "$(j '.data.headers["content-type"]')" application/json
	local echo
	echo=$(j '.data.body')
	is "$(jq -r '.method, .body, .headers["X-Test"], .args.a[0]' <<<"$echo")" \
	    "$(printf 'POST\nhello\nyes\n1')"
	# the proxy carried it
	post /api/v1/request "{\"url\": \"$ORIGIN_URL/ip\"}"
	is "$(j '.data.body')" "$TP_SRC"
	succeeded_is() {
		run -0 pw pool ls --json
		is "$(jq -r '.[0].succeeded' <<<"$output")" "$1"
	}
	eventually succeeded_is 2
}

@test "POST /request: no_proxy in the server's environment sends nothing around the proxy" {
	SERVE_ENV=("no_proxy=*" "NO_PROXY=*")
	start_serve --allow-private
	add "$TP"
	post /api/v1/request "{\"url\": \"$ORIGIN_URL/ip\"}"
	is "$STATUS" 200
	is "$(j '.data.body')" "$TP_SRC"
}

@test "POST /request: binary bodies come back as base64, HEAD without one" {
	start_serve --allow-private
	add "$TP"
	post /api/v1/request "{\"url\": \"$ORIGIN_URL/bytes/300\"}"
	is "$STATUS" 200
	is "$(j '.data.body_encoding')" base64
	is "$(j '.data.body' | base64 -d | sha256sum)" \
	    "$(origin_bytes 300 | sha256sum)"
	# UTF-8 only as RFC 3629 has it: a strict decoder takes the text.
	post /api/v1/request "{\"url\": \"$ORIGIN_URL/hex/636166c3a9\"}"
	is "$(j '.data.body_encoding')" utf-8
	is "$(j '.data.body')" "café"
	for bad in 636166eda080 c0af f4908080; do
		post /api/v1/request "{\"url\": \"$ORIGIN_URL/hex/$bad\"}"
		is "$(j '.data.body_encoding')" base64
		is "$(j '.data.body' | base64 -d | od -An -tx1 | tr -d ' \n')" "$bad"
	done
	post /api/v1/request "{\"url\": \"$ORIGIN_URL/status/404\",
	    \"method\": \"HEAD\"}"
	is "$STATUS" 200
	is "$(j '.data.status_code')" 404
	is "$(j '.data.body')" ""
}

@test "POST /request: no proxy is 503 PROXY_POOL_EMPTY, all failing 502 PROXY_FAILOVER_EXHAUSTED" {
	start_serve --allow-private
	post /api/v1/request "{\"url\": \"$ORIGIN_URL/ip\"}"
	envelope_error 503 PROXY_POOL_EMPTY
	add "$REFUSED"
	post /api/v1/request "{\"url\": \"$ORIGIN_URL/ip\"}"
	envelope_error 502 PROXY_FAILOVER_EXHAUSTED
	is "$(j '.error.details.attempts[0].proxy')" "$REFUSED"
	like "$(j '.error.details.attempts[0].error')" '*onnect*'
}

@test "POST /request: an unreachable target is 504 TARGET_UNREACHABLE, a slow one 504 REQUEST_TIMEOUT" {
	start_serve --allow-private
	add "$MS"
	post /api/v1/request "{\"url\": \"http://127.0.0.1:$REFUSED_PORT/\"}"
	envelope_error 504 TARGET_UNREACHABLE
	pw -q pool rm 1
	add "$TP"
	post /api/v1/request "{\"url\": \"$ORIGIN_URL/hang\", \"timeout\": 1}"
	envelope_error 504 REQUEST_TIMEOUT
	# neither is the proxy's fault
	run -0 pw pool ls --json
	is "$(jq -r '.[0].failed' <<<"$output")" 0
}

@test "POST /request: bad input is 422 naming the field, before any proxy is used" {
	start_serve --allow-private
	add "$TP"
	local before b f
	before=$(state_sum)
	while IFS='|' read -r f b; do
		post /api/v1/request "$b"
		envelope_error 422 VALIDATION_ERROR
		is "$(field)" "$f" || { echo "for $b"; return 1; }
	done <<EOF
url|{}
url|{"url": 80}
url|{"url": "ftp://127.0.0.1/x"}
url|{"url": "127.0.0.1/x"}
method|{"url": "http://127.0.0.1/", "method": "FETCH"}
method|{"url": "http://127.0.0.1/", "method": "get"}
method|{"url": "http://127.0.0.1/", "method": 1}
timeout|{"url": "http://127.0.0.1/", "timeout": 301}
timeout|{"url": "http://127.0.0.1/", "timeout": 0}
timeout|{"url": "http://127.0.0.1/", "timeout": "5"}
headers|{"url": "http://127.0.0.1/", "headers": ["X: y"]}
headers.X|{"url": "http://127.0.0.1/", "headers": {"X": 1}}
headers.X|{"url": "http://127.0.0.1/", "headers": {"X": "a\r\nY: b"}}
headers.A B|{"url": "http://127.0.0.1/", "headers": {"A B": "c"}}
body|{"url": "http://127.0.0.1/", "body": {"a": 1}}
strategy|{"url": "http://127.0.0.1/", "strategy": "nope"}
country|{"url": "http://127.0.0.1/", "country": "XX"}
EOF
	# found by fuzz_api: a refused URL came back with its password
	post /api/v1/request '{"url": "ftp://u:s3cret@127.0.0.1/x"}'
	envelope_error 422 VALIDATION_ERROR
	is "$(j '.error.message')" "url: 'ftp://***:***@127.0.0.1/x': want an http or https URL"
	is "$(state_sum)" "$before"
}

@test "a NUL (\\u0000) in a string of a body is 422 naming the field, not cut short; nothing sent" {
	start_serve --allow-private
	add "$TP"
	local b f e=$ORIGIN_URL/echo
	while IFS='|' read -r f b; do
		post /api/v1/request "$b"
		envelope_error 422 VALIDATION_ERROR || { echo "for $b"; return 1; }
		is "$(field)" "$f" || { echo "for $b"; return 1; }
	done <<EOF
body|{"url": "$e", "method": "POST", "body": "abc\\u0000defgh"}
headers.X-A|{"url": "$e", "headers": {"X-A": "v\\u0000w"}}
headers.X|{"url": "$e", "headers": {"X\\u0000Y": "v"}}
url|{"url": "$e\\u0000x"}
method|{"url": "$e", "method": "GET\\u0000X"}
EOF
	is "$(j '.error.message')" 'method: a NUL character (\u0000) is not allowed in a string'
	post /api/v1/proxies '{"url": "http://10.0.0.1:3128\u0000x"}'
	envelope_error 422 VALIDATION_ERROR
	is "$(field)" url
	post /api/v1/proxies/test '{"ids": [1, "\u0000"]}'
	envelope_error 422 VALIDATION_ERROR
	is "$(field)" 'ids[1]'
	api GET /api/v1/proxies
	is "$(j '.data.total')" 1
	is "$(j '.data.items[0].stats.started')" 0
	# an escaped backslash before u0000 is text, and goes as it is
	post /api/v1/request "{\"url\": \"$e\", \"method\": \"POST\",
	    \"body\": \"a\\\\u0000b\", \"headers\": {\"X-A\": \"\\\\\\\\u0000\"}}"
	is "$STATUS" 200
	is "$(j '.data.body | fromjson | .body')" 'a\u0000b'
	is "$(j '.data.body | fromjson | .headers["X-A"]')" '\\u0000'
}

@test "a key given twice, or one the route does not take, is 422 naming it; nothing changes" {
	start_serve
	add http://10.0.0.1:3128
	local before f m b
	before=$(state_sum)
	while IFS='|' read -r m f b; do
		api "${m%% *}" "${m#* }" -H 'Content-Type: application/json' \
		    --data-binary "$b"
		envelope_error 422 VALIDATION_ERROR || { echo "for $b"; return 1; }
		is "$(field)" "$f" || { echo "for $b"; return 1; }
	done <<'EOF'
POST /api/v1/proxies|url|{"url": "http://10.0.0.2:1", "url": "http://10.0.0.3:1"}
POST /api/v1/proxies|weight|{"url": "http://10.0.0.2:1", "weight": 1, "weight": 2}
POST /api/v1/proxies|bogus|{"url": "http://10.0.0.2:1", "bogus": 1}
POST /api/v1/proxies|URL|{"URL": "http://10.0.0.2:1"}
POST /api/v1/proxies/test|idz|{"idz": [1]}
POST /api/v1/request|headers.X-A|{"url": "http://h/", "headers": {"X-A": "1", "X-A": "2"}}
POST /api/v1/request|methd|{"url": "http://h/", "methd": "POST"}
PUT /api/v1/config|strategy|{"strategy": "random", "strategy": "round-robin"}
PUT /api/v1/rate-limit/config|tiers[0].limit|{"tiers": [{"name": "a", "limit": 5, "limit": 9}]}
EOF
	post /api/v1/proxies '{"url": "http://10.0.0.2:1", "url": "http://10.0.0.3:1"}'
	is "$(j '.error.message')" "url: duplicate key"
	post /api/v1/proxies '{"url": "http://10.0.0.2:1", "bogus": 1}'
	is "$(j '.error.message')" "bogus: unknown field (want url, source, region, country, weight)"
	is "$(state_sum)" "$before"
	api GET /api/v1/config
	is "$(j '.data.strategy.value')" round-robin
	# A key once, and only keys the route takes: as before.
	post /api/v1/proxies '{"url": "http://10.0.0.2:1", "weight": 2, "region": null}'
	is "$STATUS" 201
}

@test "POST /request: framing headers are the server's, refused from a client: no request smuggled, none left waiting" {
	start_origin -v
	start_serve --allow-private
	add "$MS"
	local h e=$ORIGIN_URL/echo smuggled
	smuggled='GET /status/418 HTTP/1.1\r\nHost: x\r\n\r\n'
	for h in Content-Length content-length Transfer-Encoding Connection \
	    Keep-Alive Upgrade TE Trailer Host Proxy-Authorization \
	    Proxy-Connection; do
		post /api/v1/request "{\"url\": \"$e\", \"method\": \"POST\",
		    \"headers\": {\"$h\": \"0\"}, \"body\": \"$smuggled\",
		    \"timeout\": 3}"
		envelope_error 422 VALIDATION_ERROR || { echo "for $h"; return 1; }
		is "$(field)" "headers.$h" || { echo "for $h"; return 1; }
		is "$(j '.error.message')" "headers.$h: set by the server itself, never by a client"
	done
	post /api/v1/request "{\"url\": \"$e\", \"headers\": {\"Content-Length\": \"5\"},
	    \"timeout\": 3}"
	envelope_error 422 VALIDATION_ERROR
	# nothing reached the origin
	! grep -q 'HTTP/1' "$ORIGIN_LOG"
	# the body goes as one, framed by libcurl
	post /api/v1/request "{\"url\": \"$e\", \"method\": \"POST\",
	    \"headers\": {\"Content-Type\": \"text/plain\"}, \"body\": \"$smuggled\"}"
	is "$STATUS" 200
	is "$(j '.data.body | fromjson | .body_length')" 37
	sleep 0.2
	is "$(grep -c 'HTTP/1' "$ORIGIN_LOG")" 1
	! grep -q '/status/418' "$ORIGIN_LOG"
}

# ------------------------------------------------------- config, metrics

@test "GET /config: every key with its value, origin, type and default" {
	start_serve
	api GET /api/v1/config
	is "$STATUS" 200
	is "$(j '.data | keys | .[]')" "$(pw config list --plain | cut -f1 |
	    LC_ALL=C sort)"
	is "$(j '.data.strategy | [.value, .origin, .type, .default] | @tsv')" \
	    "$(printf 'round-robin\tdefault\tenum\tround-robin')"
	# another process changes a setting: the next request sees it
	pw config set strategy random
	for _ in 1 2 3 4 5 6; do
		api GET /api/v1/config
		is "$(j '.data.strategy | [.value, .origin] | @tsv')" \
		    "$(printf 'random\tstate')"
	done
	pw config unset strategy
	api GET /api/v1/config
	is "$(j '.data.strategy.origin')" default
}

@test "PUT /config: checked like pw config set, stored, seen by every thread" {
	start_serve
	put /api/v1/config \
	    '{"strategy": "random", "fetch.retries": 5, "geo.fallback": true,
	      "pool.cooldown": "15m"}'
	is "$STATUS" 200
	is "$(j '.data.strategy.value')" random
	is "$(j '.data["fetch.retries"] | [.value, .origin] | @tsv')" \
	    "$(printf '5\tstate')"
	run -0 pw config get strategy
	is "$output" random
	run -0 pw config get fetch.retries
	is "$output" 5
	run -0 pw config get geo.fallback
	is "$output" true
	# A number is kept in the fewest digits that read back as it.
	put /api/v1/config '{"strategy.alpha": 0.1}'
	is "$STATUS" 200
	run -0 pw config get strategy.alpha
	is "$output" 0.1
	for _ in 1 2 3 4 5 6 7 8; do
		api GET /api/v1/status
		is "$(j '.data.strategy')" random
	done
	put /api/v1/config '{"strategy": null}'
	is "$STATUS" 200
	is "$(j '.data.strategy | [.value, .origin] | @tsv')" \
	    "$(printf 'round-robin\tdefault')"
	run -0 pw config get strategy
	is "$output" round-robin
}

@test "PUT /config: bad keys, values and types are 422 naming the key; nothing stored" {
	start_serve
	local before b f
	before=$(state_sum)
	while IFS='|' read -r f b; do
		put /api/v1/config "$b"
		envelope_error 422 VALIDATION_ERROR
		is "$(field)" "$f" || { echo "for $b"; return 1; }
	done <<EOF
nope|{"nope": 1}
fetch.retries|{"fetch.retries": 0}
fetch.retries|{"fetch.retries": "many"}
strategy|{"strategy": "fastest"}
strategy|{"strategy": ["random"]}
pool.cooldown|{"strategy": "random", "pool.cooldown": "soon"}
ratelimit.redis_url|{"health.concurrency": 7, "ratelimit.redis_url": "redis://:pw123@127.0.0.1:6379/0"}
service.key|{"strategy": "random", "fetch.retries": 7, "service.key": "x"}
body|{}
EOF
	is "$(j '.error.message')" "body: no setting to change"
	put /api/v1/config '{"nope": 1}'
	like "$(j '.error.message')" "'nope': unknown config key (valid: strategy, *)"
	# a secret is not kept in the file: refused, and nothing else stored
	put /api/v1/config \
	    '{"health.concurrency": 7, "ratelimit.redis_url": "redis://:pw123@127.0.0.1:6379/0"}'
	is "$(j '.error.message')" 'ratelimit.redis_url: a password is not kept in the state file; give this URL in $PW_RATELIMIT__REDIS_URL'
	[[ $BODY != *pw123* ]]
	api GET /api/v1/config
	is "$(j '.data["health.concurrency"].origin')" default
	put /api/v1/config '[1]'
	envelope_error 422 VALIDATION_ERROR
	put /api/v1/config '{"strategy": '
	envelope_error 400 INVALID_JSON
	is "$(state_sum)" "$before"
}

@test "GET /api/v1/metrics: totals, rate, latency, error rate and per-proxy stats" {
	start_serve
	add http://10.0.0.1:3128 http://u:p@10.0.0.2:3128
	pw -q pool report 1 --ok --latency-ms 40
	api GET /api/v1/ready
	api GET /api/v1/proxies
	api GET /nope
	api GET /api/v1/metrics
	is "$STATUS" 200
	is "$(j '[.data.requests_total, .data.responses["2xx"],
	    .data.responses["4xx"], .data.responses["5xx"]] | @tsv')" \
	    "$(printf '3\t2\t1\t0')"
	is "$(j '.data.error_rate * 3 | round')" 1
	[ "$(j '.data.requests_per_second > 0')" = true ]
	[ "$(j '.data.mean_latency_ms >= 0')" = true ]
	is "$(j '.data.requests_in_flight')" 1
	is "$(j '[.data.proxies[] | .id] | @tsv')" "$(printf '1\t2')"
	is "$(j '.data.proxies[0] | [.succeeded, .success_rate, .latency_ms] | @tsv')" \
	    "$(printf '1\t1\t40')"
	is "$(j '.data.proxies[1].url')" 'http://***:***@10.0.0.2:3128'
	is "$(j '.data.proxies_truncated')" false
}

@test "GET /metrics: the Prometheus text format, counters by class, pool gauges" {
	start_serve
	add http://10.0.0.1:3128 http://10.0.0.2:3128
	for _ in 1 2 3 4 5; do pw -q pool report 2 --fail; done
	api GET /api/v1/ready
	api GET /nope
	api GET /metrics
	is "$STATUS" 200
	is "$(header Content-Type)" 'text/plain; version=0.0.4; charset=utf-8'
	[ -n "$(header X-Request-ID)" ]
	grep -qx 'pw_http_requests_total{code="2xx"} 1' <<<"$BODY"
	grep -qx 'pw_http_requests_total{code="4xx"} 1' <<<"$BODY"
	grep -qx 'pw_http_request_duration_seconds_count 2' <<<"$BODY"
	grep -qx 'pw_proxies{status="unknown"} 2' <<<"$BODY"
	grep -qx 'pw_proxies_usable 1' <<<"$BODY"
	grep -qx '# TYPE pw_http_requests_total counter' <<<"$BODY"
	# every sample line is NAME{LABELS} VALUE, every metric has a TYPE
	is "$(grep -v '^#' <<<"$BODY" | grep -cvE \
	    '^[a-z_]+(\{[a-z]+="[^"]*"\})? [0-9][0-9.e+-]*$')" 0
	local m
	for m in $(grep -v '^#' <<<"$BODY" | sed 's/[{ ].*//' |
	    sed 's/_sum$//; s/_count$//; s/_bucket$//' | sort -u); do
		grep -q "^# TYPE $m " <<<"$BODY" || { echo "no TYPE for $m"; return 1; }
	done
	api POST /metrics
	envelope_error 405 METHOD_NOT_ALLOWED
}

# ------------------------------------------------------------ concurrency

@test "8 clients x 50 requests beside a pw pool add loop: no 5xx, no lock errors, file intact" {
	# 400 requests from one address: over the default rate limit.
	PW_RATELIMIT__ENABLED=false start_serve
	add http://10.9.0.1:1 http://10.9.0.2:2
	local c codes=$BATS_TEST_TMPDIR/codes pids=() adder rc
	(
		for i in $(seq 1 40); do
			pw -q pool add "http://10.8.$i.1:8080" || exit 1
		done
	) 2>"$BATS_TEST_TMPDIR/adder.err" &
	adder=$!
	for c in $(seq 1 8); do
		(
			for i in $(seq 1 50); do
				case $((i % 5)) in
				0) curl -s -o /dev/null -w '%{http_code}\n' \
				    -H 'Content-Type: application/json' \
				    -X POST --data-binary \
				    "{\"url\": \"http://10.7.$c.$i:80\"}" \
				    "$SERVE_URL/api/v1/proxies" ;;
				1) curl -s -o /dev/null -w '%{http_code}\n' \
				    "$SERVE_URL/api/v1/proxies?page_size=20" ;;
				2) curl -s -o /dev/null -w '%{http_code}\n' \
				    "$SERVE_URL/api/v1/proxies/next" ;;
				3) curl -s -o /dev/null -w '%{http_code}\n' \
				    "$SERVE_URL/api/v1/status" ;;
				4) curl -s -o /dev/null -w '%{http_code}\n' \
				    "$SERVE_URL/api/v1/proxies/1" ;;
				esac
			done >"$codes.$c"
		) &
		pids+=($!)
	done
	for c in "${pids[@]}"; do wait "$c"; done
	rc=0
	wait "$adder" || rc=$?
	is "$rc" 0
	is "$(cat "$BATS_TEST_TMPDIR/adder.err")" ""
	is "$(cat "$codes".* | wc -l)" 400
	is "$(cat "$codes".* | grep -cv '^[24]')" 0
	is "$(cat "$codes".* | sort | uniq -c | awk '{print $2}' | tr '\n' ' ')" \
	    "200 201 "
	! grep -qi 'locked\|busy' "$SERVE_LOG"
	run -0 pw pool ls --plain
	is "${#lines[@]}" $((2 + 40 + 80))
	is "$(sqlite3 "$PW_STATE" 'PRAGMA integrity_check')" ok
}

# --------------------------------------------------------------- lifecycle

@test "SIGTERM finishes the request in flight, then exits 0 leaving no journal" {
	start_serve --allow-private
	add "$TP"
	curl -sS -o "$BATS_TEST_TMPDIR/slow" -w '%{http_code}' -X POST \
	    -H 'Content-Type: application/json' \
	    --data-binary "{\"url\": \"$ORIGIN_URL/slow/1500\"}" \
	    "$SERVE_URL/api/v1/request" >"$BATS_TEST_TMPDIR/slow.code" &
	local cpid=$! rc=0
	sleep 0.5
	kill -TERM "$SERVE_PID"
	wait "$cpid"
	is "$(cat "$BATS_TEST_TMPDIR/slow.code")" 200
	is "$(jq -r '.data.body' "$BATS_TEST_TMPDIR/slow")" "slow 1500"
	wait "$SERVE_PID" || rc=$?
	is "$rc" 0
	[ ! -e "$PW_STATE-journal" ]
	grep -q 'SIGTERM: finishing requests in flight' "$SERVE_LOG"
	! _peers_connects 127.0.0.1 "$SERVE_PORT"
	is "$(sqlite3 "$PW_STATE" 'PRAGMA integrity_check')" ok
	run -0 pw pool ls --json
	is "$(jq -r '.[0].succeeded' <<<"$output")" 1
}

@test "SIGINT stops it too, exit 0" {
	start_serve
	api GET /api/v1/ready
	local rc=0
	kill -INT "$SERVE_PID"
	wait "$SERVE_PID" || rc=$?
	is "$rc" 0
	[ ! -e "$PW_STATE-journal" ]
}

@test "the listen address: serve.listen, bad ones, non-loopback, a port in use" {
	local port
	port=$(free_port)
	pw config set serve.listen "127.0.0.1:$port"
	_peers_spawn serve "$BATS_TEST_TMPDIR/cfg.log" pw serve
	wait_port "$port"
	curl -sf "http://127.0.0.1:$port/api/v1/ready" >/dev/null
	stop_peers
	# IPv6, in brackets
	port=$(free_port)
	_peers_spawn serve "$BATS_TEST_TMPDIR/v6.log" pw serve \
	    --listen "[::1]:$port"
	wait_port "$port" 10 ::1
	is "$(curl -sg "http://[::1]:$port/api/v1/status" |
	    jq -r .data.server.listen)" "[::1]:$port"
	stop_peers
	rm -f "$PW_STATE"*
	run -2 --separate-stderr pw serve --listen nonsense
	is "$stderr" "pw: serve: --listen: 'nonsense': want HOST:PORT (IPv6 as [ADDR]:PORT)"
	run -2 --separate-stderr pw serve --listen 127.0.0.1:0
	is "$stderr" "pw: serve: --listen: '127.0.0.1:0': want a port from 1 to 65535"
	run -2 --separate-stderr pw serve --listen 0.0.0.0:8000
	is "$stderr" "pw: serve: --listen: '0.0.0.0:8000' is not a loopback address, and no API key exists (make one with pw serve keys add, or add --insecure to serve it anyway)"
	run -2 --separate-stderr pw serve --threads 0
	like "$stderr" "pw: serve: --threads: '0': want an integer from 1 to 256"
	run -1 --separate-stderr pw serve --listen "127.0.0.1:$REFUSED_PORT"
	is "$stderr" "pw: serve: cannot listen on 127.0.0.1:$REFUSED_PORT: Address already in use"
	[ ! -e "$PW_STATE" ]
}

@test "pw serve alone loads libmicrohttpd; other commands never do" {
	run -0 env LD_DEBUG=libs pw pool ls
	[[ $output != *microhttpd* && $output != *cjson* && $output != *libcurl* ]]
	start_serve
	local maps
	maps=$(cat "/proc/$SERVE_PID/maps")
	[[ $maps == *libmicrohttpd.so.12* ]]
	[[ $maps == *libcjson.so.1* ]]
}
