#!/usr/bin/env bats
# serve_api.bats -- the guarded side of pw serve, on a free loopback port
# with curl: API keys (pw serve keys, 401 in the envelope, revocation),
# the SSRF guard of POST /api/v1/request (after DNS, at every redirect),
# security and CORS headers, POST /api/v1/proxies/test, and the OpenAPI
# document against the router. No address beyond loopback is contacted:
# a refused target is refused before any proxy is asked.

bats_require_minimum_version 1.5.0

load helper
load ../helpers/peers

setup_file() {
	start_origin
	refused_port >/dev/null
	export REFUSED=http://127.0.0.1:$REFUSED_PORT
	start_tinyproxy
	export TP=$TINYPROXY_URL TP_SRC=$TINYPROXY_SRC
}

teardown_file() {
	stop_peers
}

setup() {
	setup_pw
	export PW_SECRET_KEY=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
	ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
}

teardown() {
	stop_peers
}

header() {
	printf '%s\n' "$HDRS" | sed -n "s/^$1: //Ip" | tail -n 1
}

envelope_error() {
	is "$STATUS" "$1"
	is "$(j '.status')" error
	is "$(j '.error.code')" "$2"
	[ -n "$(j '.error.message')" ]
	is "$(j '.meta.request_id')" "$(header X-Request-ID)"
	is "$(header Content-Type)" application/json
}

field() {
	j '.error.details.field'
}

# proxies_started: requests the pool's proxies were chosen for, in all.
proxies_started() {
	pw pool ls --json | jq '[.[].started] | add // 0'
}

# ------------------------------------------------------- pw serve keys

@test "keys add prints a new pw_ key once; only its BLAKE2b hash is stored" {
	run -0 --separate-stderr pw serve keys add ci --tier premium
	local key=$output
	[[ $key =~ ^pw_[0-9a-f]{48}$ ]]
	is "$stderr" "pw: serve keys add: key 'ci' made: keep it now, it cannot be shown again"
	# a plain BLAKE2b-256 of the key, and nothing else of it, is stored
	is "$(sqlite3 "$PW_STATE" "SELECT name, tier, hex(hash) FROM api_keys")" \
	    "ci|premium|$(/usr/bin/python3 -c 'import hashlib, sys
print(hashlib.blake2b(sys.argv[1].encode(), digest_size=32).hexdigest().upper())' "$key")"
	! sqlite3 "$PW_STATE" .dump | grep -q "${key#pw_}"
	! grep -qa "${key#pw_}" "$PW_STATE" "$PW_STATE-wal"
	# a second key is another key
	run -0 pw -q serve keys add other
	[[ $output =~ ^pw_[0-9a-f]{48}$ ]]
	[ "$output" != "$key" ]
	run -0 pw serve keys ls --json
	is "$(jq -c '[.[] | [.name, .tier, .last_used]]' <<<"$output")" \
	    '[["ci","premium",null],["other","default",null]]'
	like "$(jq -r '.[0].created' <<<"$output")" '20[0-9][0-9]-*T*Z'
	[[ $output != *pw_* ]]
	run -0 pw serve keys ls --plain
	is "$(cut -f1,2 <<<"$output")" "$(printf 'ci\tpremium\nother\tdefault')"
	[[ $output != *"${key#pw_}"* ]]
}

@test "keys: bad names, tiers, duplicates and unknown keys are one-line errors; nothing changes" {
	run -0 pw -q serve keys add ci
	local before
	before=$(state_sum)
	run -2 --separate-stderr pw serve keys add 'a b'
	is "$stderr" "pw: serve keys add: 'a b': not a key name (want 1 to 64 letters, digits, '-', '_' or '.')"
	is "$output" ""
	run -2 --separate-stderr pw serve keys add ''
	is "$stderr" "pw: serve keys add: '': not a key name (want 1 to 64 letters, digits, '-', '_' or '.')"
	run -2 --separate-stderr pw serve keys add "$(printf 'k%.0s' {1..65})"
	like "$stderr" "pw: serve keys add: 'kkk*': not a key name (*"
	run -2 --separate-stderr pw serve keys add x --tier Gold
	is "$stderr" "pw: serve keys add: 'Gold': not a tier (want 1 to 32 lower-case letters, digits, '-' or '_')"
	is "$output" ""
	run -2 --separate-stderr pw serve keys add x --tier ''
	like "$stderr" "pw: serve keys add: '': not a tier *"
	run -1 --separate-stderr pw serve keys add ci
	is "$stderr" "pw: serve keys add: 'ci': a key of that name exists (remove it first)"
	is "$output" ""
	run -1 --separate-stderr pw serve keys rm nope
	is "$stderr" "pw: serve keys rm: 'nope': no such key"
	run -2 --separate-stderr pw serve keys add
	is "$stderr" "pw: serve keys add: missing argument (usage: pw serve keys add NAME [--tier TIER])"
	run -2 --separate-stderr pw serve keys rm a b
	is "$stderr" "pw: serve keys rm: unexpected argument 'b' (usage: pw serve keys rm NAME)"
	run -2 --separate-stderr pw serve keys
	is "${stderr%%$'\n'*}" "pw: serve keys: a verb is needed (see 'pw help serve keys')"
	run -2 --separate-stderr pw serve keys frob
	is "$stderr" "pw: frob: unknown verb (see 'pw --help')"
	run -2 --separate-stderr pw serve keys ls --tier x
	like "$stderr" "pw: serve keys ls: *--tier*"
	is "$(state_sum)" "$before"
	# no state file: ls and rm make none
	rm -f "$PW_STATE"*
	run -0 pw serve keys ls
	is "$output" ""
	run -1 pw serve keys rm ci
	is "$(state_sum)" absent
}

@test "keys rm revokes one key; help shows the verbs" {
	run -0 pw -q serve keys add a
	run -0 pw -q serve keys add b
	run -0 pw serve keys rm a
	is "$output" ""
	run -0 pw serve keys ls --plain
	is "$(cut -f1 <<<"$output")" b
	run -0 pw help serve keys
	[[ $output == *"add  "*"ls  "*"rm  "* ]]
	run -0 pw serve --help
	[[ $output == *"keys"*"--listen"* ]]
}

# ------------------------------------------------------------ API keys

@test "without keys every route is open; once one exists a key is needed: 401 UNAUTHORIZED" {
	start_serve
	api GET /api/v1/status
	is "$STATUS" 200
	local key
	key=$(pw -q serve keys add ci)
	api GET /api/v1/status
	envelope_error 401 UNAUTHORIZED
	is "$(j '.error.message')" "an API key is needed (X-API-Key or Authorization: Bearer)"
	is "$(header WWW-Authenticate)" 'Bearer realm="pw"'
	is "$(header X-Content-Type-Options)" nosniff
	api GET /api/v1/status -H "X-API-Key: $key"
	is "$STATUS" 200
	api GET /api/v1/status -H "Authorization: Bearer $key"
	is "$STATUS" 200
	api GET /api/v1/status -H "Authorization: bearer $key"
	is "$STATUS" 200
	local bad
	for bad in "X-API-Key: ${key}0" "X-API-Key: ${key%?}0" \
	    "X-API-Key: pw_" "X-API-Key: " "Authorization: Bearer nope" \
	    "Authorization: Basic $(printf 'u:%s' "$key" | base64 -w0)" \
	    "X-Api-Key: $(tr a-f A-F <<<"$key")"; do
		api GET /api/v1/status -H "$bad"
		envelope_error 401 UNAUTHORIZED || { echo "for $bad"; return 1; }
		[[ $BODY != *"${key#pw_}"* ]]
	done
	api GET /api/v1/status -H "X-API-Key: ${key}0"
	is "$(j '.error.message')" "the API key is not valid"
}

@test "one worker knows at once that a key was added, then that none is left" {
	# One thread: the same worker answers before and after.
	start_serve --threads 1
	api GET /api/v1/status
	is "$STATUS" 200
	pw -q serve keys add ci >/dev/null
	api GET /api/v1/status
	envelope_error 401 UNAUTHORIZED
	pw -q serve keys rm ci
	api GET /api/v1/status
	is "$STATUS" 200
}

@test "every route but the probes and the documentation needs the key" {
	local key r m p
	key=$(pw -q serve keys add ci)
	start_serve
	while read -r m p r; do
		case $p in /api/v1/proxies/\{id\}) p=/api/v1/proxies/1 ;; esac
		api "$m" "$p"
		if [ "$r" = open ]; then
			[ "$STATUS" != 401 ] || { echo "$m $p: 401"; return 1; }
		else
			envelope_error 401 UNAUTHORIZED ||
			    { echo "$m $p: not 401"; return 1; }
		fi
	done < <(pw __routes)
	is "$(pw __routes | awk '$3 == "open" { print $2 }' | tr '\n' ' ')" \
	    "/api/v1/health /api/v1/ready /metrics /openapi.json /docs /docs/app.js /docs/app.css "
	# an unknown path is 404 with or without a key
	api GET /nope
	envelope_error 404 NOT_FOUND
}

@test "a refused request changes nothing; a used key shows its last use" {
	local key before
	key=$(pw -q serve keys add ci)
	start_serve
	before=$(state_sum)
	post /api/v1/proxies '{"url": "http://10.0.0.1:3128"}'
	envelope_error 401 UNAUTHORIZED
	put /api/v1/config '{"strategy": "random"}'
	envelope_error 401 UNAUTHORIZED
	api DELETE /api/v1/proxies/1 -H 'X-API-Key: pw_000000000000000000000000000000000000000000000000'
	envelope_error 401 UNAUTHORIZED
	is "$(state_sum)" "$before"
	post /api/v1/proxies '{"url": "http://10.0.0.1:3128"}' -H "X-API-Key: $key"
	is "$STATUS" 201
	run -0 pw serve keys ls --json
	[ "$(jq -r '.[0].last_used' <<<"$output")" != null ]
}

@test "once keys exist, only a key of tier admin changes the settings: 403 FORBIDDEN for others" {
	local user admin b
	user=$(pw -q serve keys add user)
	admin=$(pw -q serve keys add boss --tier admin)
	start_serve
	for b in '{"serve.allow_private_targets": true}' \
	    '{"ratelimit.enabled": false}' '{"serve.require_auth": false}' \
	    '{"strategy": "random"}'; do
		put /api/v1/config "$b" -H "X-API-Key: $user"
		envelope_error 403 FORBIDDEN || { echo "for $b"; return 1; }
		is "$(j '.error.message')" 'changing the settings is for keys of tier admin'
	done
	put /api/v1/config '{"strategy": "random"}'
	envelope_error 401 UNAUTHORIZED
	run -0 pw config list --plain
	! grep -q 'state$' <<<"$output"
	# reading them is anyone's with a key
	api GET /api/v1/config -H "X-API-Key: $user"
	is "$STATUS" 200
	is "$(j '.data["serve.allow_private_targets"].value')" false
	put /api/v1/config '{"serve.allow_private_targets": true}' -H "X-API-Key: $admin"
	is "$STATUS" 200
	run -0 pw config get serve.allow_private_targets
	is "$output" true
}

@test "serve.require_auth asks for a key even when none exists" {
	pw config set serve.require_auth true
	start_serve
	api GET /api/v1/proxies
	envelope_error 401 UNAUTHORIZED
	api GET /api/v1/health
	is "$(j '.error.code')" UNHEALTHY
	# and it follows the setting without a restart
	pw config set serve.require_auth false
	api GET /api/v1/proxies
	is "$STATUS" 200
}

@test "a key added while serving works at once; a revoked one stops at once" {
	start_serve
	local a b
	a=$(pw -q serve keys add a)
	api GET /api/v1/proxies -H "X-API-Key: $a"
	is "$STATUS" 200
	b=$(pw -q serve keys add b)
	pw serve keys rm a
	# well within a second: the next request, on any thread
	for _ in 1 2 3 4 5 6 7 8; do
		api GET /api/v1/proxies -H "X-API-Key: $a"
		envelope_error 401 UNAUTHORIZED
		api GET /api/v1/proxies -H "X-API-Key: $b"
		is "$STATUS" 200
	done
	pw serve keys rm b
	# no key left: open again
	api GET /api/v1/proxies
	is "$STATUS" 200
}

@test "the key never shows in the log, in errors or in the state file; the log names it" {
	local key
	key=$(pw -q serve keys add ci-bot)
	start_serve -v
	api GET /api/v1/proxies -H "X-API-Key: $key" -H 'X-Request-ID: with-key'
	api GET /api/v1/proxies -H "X-API-Key: ${key}x" -H 'X-Request-ID: bad-key'
	post /api/v1/proxies '{"url": "http://alice:s3cret@10.0.0.1:3128"}' \
	    -H "Authorization: Bearer $key" -H 'X-Request-ID: creds'
	is "$STATUS" 201
	# what lib logs during a request names it too
	api GET /api/v1/proxies/next -H "X-API-Key: $key" -H 'X-Request-ID: pick-1'
	is "$STATUS" 200
	sleep 0.2
	grep -q '^pw: serve: pick-1: round-robin: proxy 1$' "$SERVE_LOG"
	grep -q '^pw: serve: with-key GET /api/v1/proxies 200 [0-9]*ms key=ci-bot$' "$SERVE_LOG"
	grep -q '^pw: serve: bad-key GET /api/v1/proxies 401 [0-9]*ms$' "$SERVE_LOG"
	grep -q '^pw: serve: creds POST /api/v1/proxies 201 [0-9]*ms key=ci-bot$' "$SERVE_LOG"
	! grep -q "${key#pw_}" "$SERVE_LOG"
	! grep -q 's3cret' "$SERVE_LOG"
	# every line after the first names its request
	is "$(tail -n +2 "$SERVE_LOG" | grep -cv '^pw: serve: [a-z0-9-]*[: ]')" 0
	[ "$(wc -l <"$SERVE_LOG")" -ge 6 ]
	! grep -qa "${key#pw_}" "$PW_STATE" "$PW_STATE-wal"
}

@test "non-loopback: refused while no key exists, served once one does" {
	local port before
	before=$(state_sum)
	# (a timeout, should it ever serve: exit 124, not a hang)
	run -2 --separate-stderr timeout 10 pw serve --listen 0.0.0.0:8000
	is "$stderr" "pw: serve: --listen: '0.0.0.0:8000' is not a loopback address, and no API key exists (make one with pw serve keys add, or add --insecure to serve it anyway)"
	is "$(state_sum)" "$before"
	pw -q serve keys add ci >/dev/null
	port=$(free_port)
	_peers_spawn serve "$BATS_TEST_TMPDIR/any.log" pw serve \
	    --listen "0.0.0.0:$port"
	wait_port "$port"
	# spoken to over loopback only
	is "$(curl -s -o /dev/null -w '%{http_code}' \
	    "http://127.0.0.1:$port/api/v1/status")" 401
}

# ------------------------------------------------------------ SSRF guard

@test "POST /request refuses loopback, private, link-local and other local targets with 422 TARGET_FORBIDDEN" {
	start_serve
	pw -q pool add "$TP"
	local before u why
	before=$(state_sum)
	while IFS='|' read -r u why; do
		post /api/v1/request "{\"url\": \"$u\"}"
		envelope_error 422 TARGET_FORBIDDEN || { echo "for $u"; return 1; }
		is "$(j '.error.message')" "$why" || { echo "for $u"; return 1; }
		# user information is masked
		is "$(j '.error.details.url')" "${u/u:p@/***:***@}"
	done <<EOF
http://127.0.0.1/|127.0.0.1 is a loopback address
http://127.0.0.1:$ORIGIN_PORT/ip|127.0.0.1 is a loopback address
http://[::1]/|::1 is a loopback address
http://localhost/|localhost resolves to 127.0.0.1, a loopback address
HTTP://LOCALHOST:$ORIGIN_PORT/|LOCALHOST resolves to 127.0.0.1, a loopback address
https://u:p@127.0.0.2:8443/x?y#z|127.0.0.2 is a loopback address
http://127.1/|127.0.0.1 is a loopback address
http://2130706433/|127.0.0.1 is a loopback address
http://0x7f000001/|127.0.0.1 is a loopback address
http://[::ffff:127.0.0.1]/|::ffff:127.0.0.1 is a loopback address
http://10.0.0.1/|10.0.0.1 is a private address
http://172.16.5.4:8080/|172.16.5.4 is a private address
http://172.31.255.255/|172.31.255.255 is a private address
http://192.168.1.1/|192.168.1.1 is a private address
http://[fc00::1]/|fc00::1 is a private address
http://[fd12:3456::1]/|fd12:3456::1 is a private address
http://[::ffff:10.0.0.1]/|::ffff:10.0.0.1 is a private address
http://100.64.0.1/|100.64.0.1 is a shared (carrier-grade NAT) address
http://169.254.169.254/latest/meta-data/|169.254.169.254 is a link-local address
http://[fe80::1]/|fe80::1 is a link-local address
http://0.0.0.0:$ORIGIN_PORT/|0.0.0.0 is an unspecified address
http://[::]/|:: is an unspecified address
http://224.0.0.1/|224.0.0.1 is a multicast address
http://[ff02::1]/|ff02::1 is a multicast address
http://255.255.255.255/|255.255.255.255 is a reserved address
EOF
	# nothing was sent: no proxy was even chosen
	is "$(proxies_started)" 0
	is "$(state_sum)" "$before"
}

@test "POST /request: the host judged is the one libcurl connects to; parser tricks are refused" {
	start_serve
	# The origin as the only proxy: it answers what it is sent itself,
	# so that nothing leaves loopback even if something got through.
	pw -q pool add "$ORIGIN_URL"
	local f u code why
	# CODE|URL (JSON-escaped; P is the origin's port)|MESSAGE
	for f in \
	    'TARGET_FORBIDDEN|http://192.0.2.1\\@127.0.0.1:P/echo|127.0.0.1 is a loopback address' \
	    'TARGET_FORBIDDEN|http://192.0.2.1\\@localhost:P/echo|localhost resolves to 127.0.0.1, a loopback address' \
	    'TARGET_FORBIDDEN|http://127.0.0.1:P\\@192.0.2.1/|192.0.2.1 is a reserved address' \
	    'TARGET_FORBIDDEN|http://192.0.2.1%5c@127.0.0.1:P/echo|127.0.0.1 is a loopback address' \
	    'TARGET_FORBIDDEN|http://192.0.2.1#@127.0.0.1:P/echo|192.0.2.1 is a reserved address' \
	    'TARGET_FORBIDDEN|http://192.0.2.1?@127.0.0.1:P/echo|192.0.2.1 is a reserved address' \
	    'TARGET_FORBIDDEN|http://192.0.2.1/@127.0.0.1:P/echo|192.0.2.1 is a reserved address' \
	    'TARGET_FORBIDDEN|http://127.0.0.1:P/@192.0.2.1/|127.0.0.1 is a loopback address' \
	    'TARGET_FORBIDDEN|http://[::1]@192.0.2.1/|192.0.2.1 is a reserved address' \
	    'TARGET_FORBIDDEN|http://127.0.0.1:P;@192.0.2.1/|192.0.2.1 is a reserved address' \
	    'TARGET_FORBIDDEN|http://%31%32%37.1:P/echo|127.1 resolves to 127.0.0.1, a loopback address' \
	    'TARGET_FORBIDDEN|http://\u24dbocalhost:P/echo|a host name that is not ASCII (give its xn-- form)' \
	    'VALIDATION_ERROR|http://192.0.2.1\t@127.0.0.1:P/echo|' \
	    'VALIDATION_ERROR|http://127.0.0.1:P\n@192.0.2.1/|' \
	    'VALIDATION_ERROR|http://192.0.2.1 @127.0.0.1:P/echo|' \
	    'VALIDATION_ERROR|http://u@192.0.2.1@127.0.0.1:P/echo|'; do
		code=${f%%|*} u=${f#*|} why=${u#*|} u=${u%%|*}
		u=${u//:P/:$ORIGIN_PORT}
		post /api/v1/request "{\"url\": \"$u\"}"
		envelope_error 422 "$code" || { echo "for $u"; return 1; }
		if [ -n "$why" ]; then
			is "$(j '.error.message')" "$why" || { echo "for $u"; return 1; }
		else
			is "$(field)" url || { echo "for $u"; return 1; }
		fi
	done
	is "$(proxies_started)" 0
	stop_peers
	# Allowed, it reaches the host judged: the proxy is asked for it.
	start_serve --allow-private
	post /api/v1/request "{\"url\": \"http://192.0.2.1\\\\@127.0.0.1:$ORIGIN_PORT/echo\"}"
	is "$STATUS" 200
	is "$(j '.data.body | fromjson | .headers.Host')" "127.0.0.1:$ORIGIN_PORT"
	# and a redirect is read the same way
	post /api/v1/request "{\"url\": \"$ORIGIN_URL/status/302?Location=http://127.0.0.1:$ORIGIN_PORT%5C@192.0.2.1/\",
	    \"follow_redirects\": true}"
	envelope_error 422 TARGET_FORBIDDEN
	is "$(j '.error.message')" '192.0.2.1 is a reserved address'
	is "$(j '.error.details.url')" "http://***:***@192.0.2.1/"
}

@test "a target whose host does not resolve is 504 TARGET_UNREACHABLE before any proxy is used" {
	start_serve
	pw -q pool add "$TP"
	post /api/v1/request '{"url": "http://no-such-host.invalid/"}'
	envelope_error 504 TARGET_UNREACHABLE
	like "$(j '.error.message')" 'no-such-host.invalid: cannot resolve: *'
	post /api/v1/request '{"url": "http://%31%32%37.0.0.1/"}'
	envelope_error 422 TARGET_FORBIDDEN
	is "$(proxies_started)" 0
}

@test "--allow-private and serve.allow_private_targets let local targets through, not multicast or unspecified" {
	start_serve --allow-private
	pw -q pool add "$TP"
	post /api/v1/request "{\"url\": \"$ORIGIN_URL/ip\"}"
	is "$STATUS" 200
	is "$(j '.data.body')" "$TP_SRC"
	post /api/v1/request '{"url": "http://0.0.0.0/"}'
	envelope_error 422 TARGET_FORBIDDEN
	post /api/v1/request '{"url": "http://224.0.0.1/"}'
	envelope_error 422 TARGET_FORBIDDEN
	api GET /api/v1/config
	is "$(j '.data["serve.allow_private_targets"] | [.value, .origin] | @tsv')" \
	    "$(printf 'true\tflag')"
	stop_peers
	# the setting, changed while serving, counts from the next request
	start_serve
	post /api/v1/request "{\"url\": \"$ORIGIN_URL/ip\"}"
	envelope_error 422 TARGET_FORBIDDEN
	put /api/v1/config '{"serve.allow_private_targets": true}'
	is "$STATUS" 200
	post /api/v1/request "{\"url\": \"$ORIGIN_URL/ip\"}"
	is "$STATUS" 200
	put /api/v1/config '{"serve.allow_private_targets": null}'
	post /api/v1/request "{\"url\": \"$ORIGIN_URL/ip\"}"
	envelope_error 422 TARGET_FORBIDDEN
}

@test "follow_redirects: followed hop by hop, each target checked; a redirect to a forbidden one is 422" {
	start_serve --allow-private
	pw -q pool add "$TP"
	post /api/v1/request "{\"url\": \"$ORIGIN_URL/redirect/3\"}"
	is "$STATUS" 200
	is "$(j '.data.status_code')" 302
	is "$(j '.data.redirects')" 0
	is "$(j '.data.headers.location')" /redirect/2
	post /api/v1/request "{\"url\": \"$ORIGIN_URL/redirect/3\", \"follow_redirects\": true}"
	is "$STATUS" 200
	is "$(j '.data.status_code')" 200
	is "$(j '.data.redirects')" 3
	is "$(j '.data.url')" "$ORIGIN_URL/redirect/0"
	is "$(j '.data.attempts')" 4
	is "$(j '.data.body | fromjson | .path')" /redirect/0
	post /api/v1/request "{\"url\": \"$ORIGIN_URL/redirect/2?absolute=1\",
	    \"follow_redirects\": true}"
	is "$(j '[.data.redirects, .data.url] | @tsv')" \
	    "$(printf '2\t%s' "$ORIGIN_URL/redirect/0?absolute=1")"
	# 307 keeps the method and body, 303 makes a GET without one
	post /api/v1/request "{\"url\": \"$ORIGIN_URL/status/307?Location=/echo\",
	    \"method\": \"POST\", \"body\": \"kept\", \"follow_redirects\": true}"
	is "$(j '.data.body | fromjson | [.method, .body] | @tsv')" \
	    "$(printf 'POST\tkept')"
	post /api/v1/request "{\"url\": \"$ORIGIN_URL/status/303?Location=/echo\",
	    \"method\": \"POST\", \"body\": \"dropped\", \"follow_redirects\": true}"
	is "$(j '.data.body | fromjson | [.method, .body_length] | @tsv')" \
	    "$(printf 'GET\t0')"
	# a Location of a query only: the same path; without one, the end
	post /api/v1/request "{\"url\": \"$ORIGIN_URL/status/302?Location=%3Fx%3D1\",
	    \"follow_redirects\": true}"
	is "$(j '[.data.status_code, .data.redirects, .data.url] | @tsv')" \
	    "$(printf '302\t1\t%s' "$ORIGIN_URL/status/302?x=1")"
	# an allowed origin that redirects to a forbidden target
	local u
	for u in http://0.0.0.0:1/x http://224.0.0.1/ "http://[::]:$ORIGIN_PORT/"; do
		post /api/v1/request "{\"url\": \"$ORIGIN_URL/status/302?Location=$u\",
		    \"follow_redirects\": true}"
		envelope_error 422 TARGET_FORBIDDEN || { echo "for $u"; return 1; }
		is "$(j '.error.details.url')" "$u"
	done
	# a forbidden redirect's credentials are not shown
	post /api/v1/request "{\"url\": \"$ORIGIN_URL/status/302?Location=http://bob:hunter2@0.0.0.0:1/\",
	    \"follow_redirects\": true}"
	envelope_error 422 TARGET_FORBIDDEN
	is "$(j '.error.details.url')" 'http://***:***@0.0.0.0:1/'
	[[ $BODY != *hunter2* ]]
	# the same without following: the redirect is the answer
	post /api/v1/request "{\"url\": \"$ORIGIN_URL/status/302?Location=http://0.0.0.0:1/x\"}"
	is "$STATUS" 200
	is "$(j '.data.status_code')" 302
	post /api/v1/request "{\"url\": \"$ORIGIN_URL/redirect/11\", \"follow_redirects\": true}"
	envelope_error 502 TOO_MANY_REDIRECTS
	# the timeout is the whole request's, not each hop's
	post /api/v1/request "{\"url\": \"$ORIGIN_URL/redirect/3?delay=400\",
	    \"timeout\": 2, \"follow_redirects\": true}"
	is "$STATUS" 200
	post /api/v1/request "{\"url\": \"$ORIGIN_URL/redirect/3?delay=400\",
	    \"timeout\": 1, \"follow_redirects\": true}"
	envelope_error 504 REQUEST_TIMEOUT
	post /api/v1/request "{\"url\": \"$ORIGIN_URL/\", \"follow_redirects\": 1}"
	envelope_error 422 VALIDATION_ERROR
	is "$(field)" follow_redirects
}

@test "follow_redirects: a Location that cannot be fetched is the target's fault, 502 BAD_REDIRECT" {
	start_serve --allow-private
	pw -q pool add "$TP"
	local f loc shown
	# LOCATION (as the origin's query has it)|URL in details.url
	for f in 'http://127.0.0.1:99999/x|http://127.0.0.1:99999/x' \
	    'http://%5B::1/x|http://[::1/x' \
	    'http://u@x@127.0.0.1/|http://***@127.0.0.1/' \
	    'http://bob:hunter2@127.0.0.1:0x50/|http://***:***@127.0.0.1:0x50/'; do
		loc=${f%%|*} shown=${f#*|}
		post /api/v1/request "{\"url\": \"$ORIGIN_URL/status/302?Location=$loc\",
		    \"follow_redirects\": true}"
		envelope_error 502 BAD_REDIRECT || { echo "for $loc"; return 1; }
		is "$(j '.error.details.url')" "$shown" || { echo "for $loc"; return 1; }
		like "$(j '.error.message')" 'the target redirected to a URL that cannot be fetched: *'
		[[ $BODY != *hunter2* ]]
	done
	# not followed, the redirect is the answer
	post /api/v1/request "{\"url\": \"$ORIGIN_URL/status/302?Location=http://127.0.0.1:99999/x\"}"
	is "$STATUS" 200
	is "$(j '.data.status_code')" 302
}

@test "follow_redirects: credentials go to the origin they were given for, not to another" {
	start_serve --allow-private
	pw -q pool add "$TP"
	post /api/v1/request "{\"url\": \"$ORIGIN_URL/status/302?Location=http://localhost:$ORIGIN_PORT/echo\",
	    \"headers\": {\"Authorization\": \"Bearer t0ken\", \"Cookie\": \"a=b\",
	    \"X-Keep\": \"yes\"}, \"follow_redirects\": true}"
	is "$STATUS" 200
	is "$(j '.data.url')" "http://localhost:$ORIGIN_PORT/echo"
	is "$(j '.data.body | fromjson | .headers | [.["X-Keep"], .Authorization, .Cookie] | @tsv')" \
	    "$(printf 'yes\t\t')"
	post /api/v1/request "{\"url\": \"$ORIGIN_URL/redirect/1\",
	    \"headers\": {\"Authorization\": \"Bearer t0ken\"}, \"follow_redirects\": true}"
	is "$(j '.data.body | fromjson | .headers.Authorization')" 'Bearer t0ken'
}

# ------------------------------------------------------------- headers

@test "security headers on every response: success, errors, 204, text and HTML" {
	start_serve
	pw -q pool add http://10.0.0.1:3128
	local p
	for p in "GET /api/v1/health" "GET /nope" "POST /api/v1/health" \
	    "DELETE /api/v1/proxies/1" "GET /metrics" "GET /openapi.json" \
	    "GET /docs" "GET /docs/app.js" "OPTIONS /api/v1/proxies"; do
		api ${p% *} "${p#* }"
		is "$(header X-Content-Type-Options)" nosniff || { echo "$p"; return 1; }
		is "$(header X-Frame-Options)" DENY
		is "$(header Referrer-Policy)" no-referrer
		is "$(header Cache-Control)" no-store
		like "$(header X-Request-ID)" '?*'
		# no CORS unless configured
		! grep -qi '^access-control-' <<<"$HDRS" || { echo "$p"; return 1; }
	done
}

@test "no CORS by default: an OPTIONS preflight is 405, no Access-Control headers" {
	start_serve
	api OPTIONS /api/v1/proxies -H 'Origin: https://evil.example' \
	    -H 'Access-Control-Request-Method: POST'
	envelope_error 405 METHOD_NOT_ALLOWED
	! grep -qi '^access-control-' <<<"$HDRS"
	api GET /api/v1/proxies -H 'Origin: https://evil.example'
	is "$STATUS" 200
	! grep -qi '^access-control-' <<<"$HDRS"
	is "$(header Vary)" Origin
}

@test "CORS: a listed origin gets the headers and its preflight, before any key; others nothing" {
	pw config set serve.cors_origins 'https://app.example http://localhost:3000'
	local key o
	key=$(pw -q serve keys add web)
	start_serve
	api OPTIONS /api/v1/proxies -H 'Origin: https://app.example' \
	    -H 'Access-Control-Request-Method: POST' \
	    -H 'Access-Control-Request-Headers: x-api-key, content-type'
	is "$STATUS" 204
	is "$BODY" ""
	is "$(header Access-Control-Allow-Origin)" https://app.example
	is "$(header Access-Control-Allow-Methods)" "GET, POST"
	is "$(header Access-Control-Allow-Headers)" \
	    "Authorization, Content-Type, X-API-Key, X-Request-ID"
	is "$(header Access-Control-Max-Age)" 600
	is "$(header Vary)" Origin
	api OPTIONS /api/v1/proxies/7 -H 'Origin: http://localhost:3000' \
	    -H 'Access-Control-Request-Method: DELETE'
	is "$(header Access-Control-Allow-Methods)" "GET, DELETE"
	api GET /api/v1/proxies -H 'Origin: https://app.example' -H "X-API-Key: $key"
	is "$STATUS" 200
	is "$(header Access-Control-Allow-Origin)" https://app.example
	is "$(header Access-Control-Expose-Headers)" X-Request-ID
	# errors carry it too, so the page can read them
	api GET /api/v1/proxies -H 'Origin: https://app.example'
	envelope_error 401 UNAUTHORIZED
	is "$(header Access-Control-Allow-Origin)" https://app.example
	# an origin not listed: nothing, and no preflight
	for o in https://evil.example https://app.example.evil.example \
	    http://app.example null; do
		api OPTIONS /api/v1/proxies -H "Origin: $o" \
		    -H 'Access-Control-Request-Method: POST'
		envelope_error 405 METHOD_NOT_ALLOWED
		! grep -qi '^access-control-' <<<"$HDRS"
	done
	api OPTIONS /nope -H 'Origin: https://app.example' \
	    -H 'Access-Control-Request-Method: GET'
	envelope_error 404 NOT_FOUND
	# "*": any origin, changed without a restart
	pw config set serve.cors_origins '*'
	api GET /api/v1/health -H 'Origin: https://anything.example'
	is "$(header Access-Control-Allow-Origin)" '*'
}

@test "pages of other sites, without keys: a body not sent as JSON is 415, a change from another Origin 403, a foreign Host 421" {
	start_serve
	pw -q pool add http://10.0.0.1:3128
	local before t h json='Content-Type: application/json' b='{"url": "http://10.0.0.2:3128"}'
	before=$(state_sum)
	# what an HTML form of another site sends without a preflight
	for t in text/plain application/x-www-form-urlencoded multipart/form-data \
	    application/jsonp 'application/json-seq'; do
		api POST /api/v1/proxies -H "Content-Type: $t" --data-binary "$b"
		envelope_error 415 UNSUPPORTED_MEDIA_TYPE || { echo "for $t"; return 1; }
	done
	api POST /api/v1/proxies -H 'Content-Type:' --data-binary "$b"
	envelope_error 415 UNSUPPORTED_MEDIA_TYPE
	api PUT /api/v1/config -H 'Content-Type: text/plain' \
	    --data-binary '{"serve.allow_private_targets": true}'
	envelope_error 415 UNSUPPORTED_MEDIA_TYPE
	api POST /api/v1/request -H 'Content-Type: text/plain' \
	    --data-binary '{"url": "http://10.0.0.9/"}'
	envelope_error 415 UNSUPPORTED_MEDIA_TYPE
	# a change asked for by a page of another origin, JSON or not
	for h in http://attacker.example null "http://127.0.0.1:$SERVE_PORT.attacker.example"; do
		api POST /api/v1/proxies -H "Origin: $h" -H "$json" --data-binary "$b"
		envelope_error 403 FORBIDDEN || { echo "for $h"; return 1; }
	done
	api DELETE /api/v1/proxies/1 -H 'Origin: http://attacker.example'
	envelope_error 403 FORBIDDEN
	api PUT /api/v1/config -H 'Origin: http://attacker.example' -H "$json" \
	    --data-binary '{"serve.allow_private_targets": true}'
	envelope_error 403 FORBIDDEN
	api POST /api/v1/proxies/test -H 'Origin: http://attacker.example'
	envelope_error 403 FORBIDDEN
	is "$(state_sum)" "$before"
	# reading is not refused: the browser keeps the answer from the page
	api GET /api/v1/proxies -H 'Origin: http://attacker.example'
	is "$STATUS" 200
	! grep -qi '^access-control-' <<<"$HDRS"
	# JSON with parameters, from the server's own origin or none
	api POST /api/v1/proxies -H "Origin: http://127.0.0.1:$SERVE_PORT" \
	    -H 'Content-Type: Application/JSON; charset=utf-8' --data-binary "$b"
	is "$STATUS" 201
	pw config set serve.cors_origins https://app.example
	api DELETE /api/v1/proxies/2 -H 'Origin: https://app.example'
	is "$STATUS" 204
	# Host: an address, localhost or a name under it, not another name
	for h in attacker.example "attacker.example:$SERVE_PORT" \
	    127.0.0.1.nip.io "localhost.attacker.example" "[::1" \
	    "127.0.0.1:$SERVE_PORT:1" "127.0.0.1:x"; do
		api GET /api/v1/proxies -H "Host: $h"
		envelope_error 421 MISDIRECTED_REQUEST || { echo "for $h"; return 1; }
	done
	api GET /api/v1/health -H 'Host: attacker.example'
	envelope_error 421 MISDIRECTED_REQUEST
	for h in "127.0.0.1:$SERVE_PORT" 127.0.0.1 "localhost:$SERVE_PORT" \
	    LOCALHOST "app.localhost:$SERVE_PORT" "[::1]:$SERVE_PORT" 10.1.2.3; do
		api GET /api/v1/proxies -H "Host: $h"
		is "$STATUS" 200 || { echo "for $h"; return 1; }
	done
	# with a key, the key is what counts
	local key
	key=$(pw -q serve keys add k)
	api GET /api/v1/proxies -H 'Host: attacker.example'
	envelope_error 401 UNAUTHORIZED
	api GET /api/v1/proxies -H 'Host: attacker.example' -H "X-API-Key: $key"
	is "$STATUS" 200
}

@test "serve.cors_origins takes only origins: bad ones are refused by pw config and PUT /config" {
	local before
	before=$(state_sum)
	run -2 --separate-stderr pw config set serve.cors_origins 'https://a.example/path'
	is "$stderr" "pw: config set: serve.cors_origins: 'https://a.example/path': want origins like https://app.example:8443 (scheme, host and port, no path) or *, separated by spaces"
	run -2 --separate-stderr pw config set serve.cors_origins 'ftp://a.example'
	like "$stderr" "pw: config set: serve.cors_origins: 'ftp://a.example': want *"
	run -2 pw config set serve.require_auth maybe
	is "$(state_sum)" "$before"
	start_serve
	before=$(state_sum)
	put /api/v1/config '{"serve.cors_origins": "https://ok.example javascript:alert(1)"}'
	envelope_error 422 VALIDATION_ERROR
	is "$(field)" serve.cors_origins
	is "$(j '.error.message')" "serve.cors_origins: 'javascript:alert(1)': want origins like https://app.example:8443 (scheme, host and port, no path) or *, separated by spaces"
	is "$(state_sum)" "$before"
}

@test "request headers over the limit are refused (431), and the server goes on" {
	start_serve
	local big
	big=$(head -c 40000 /dev/zero | tr '\0' a)
	is "$(curl -s -o /dev/null -w '%{http_code}' -H "X-Big: $big" \
	    "$SERVE_URL/api/v1/ready")" 431
	api GET /api/v1/ready
	is "$STATUS" 200
}

# ------------------------------------------------------ POST /proxies/test

@test "POST /proxies/test checks the given proxies or the whole pool; a result per proxy" {
	pw config set health.url "$ORIGIN_URL/status/204"
	pw -q pool add "$TP" "$REFUSED"
	start_serve
	post /api/v1/proxies/test '{"ids": [1], "timeout": 5}'
	is "$STATUS" 200
	is "$(j '[.data.results[] | [.id, .ok, .status]] | @json')" '[[1,true,"healthy"]]'
	is "$(j '.data.results[0].http_status')" 204
	is "$(j '.data.results[0].proxy')" "$TP"
	is "$(j '.data.summary | [.total, .checked, .healthy] | @tsv')" "$(printf '1\t1\t1')"
	run -0 pw pool ls --json
	is "$(jq -r '[.[].status] | @tsv' <<<"$output")" "$(printf 'healthy\tunknown')"
	# no body: the whole pool
	api POST /api/v1/proxies/test
	is "$STATUS" 200
	is "$(j '[.data.results[] | [.id, .ok, .status]] | sort | @json')" \
	    '[[1,true,"healthy"],[2,false,"degraded"]]'
	[ -n "$(j '.data.results[] | select(.id == 2) | .error')" ]
	is "$(j '.data.summary | [.total, .checked, .healthy, .degraded] | @tsv')" \
	    "$(printf '2\t2\t1\t1')"
	post /api/v1/proxies/test '{}'
	is "$(j '.data.summary.total')" 2
	post /api/v1/proxies/test '{"ids": null}'
	is "$(j '.data.summary.total')" 2
}

@test "POST /proxies/test: an id given twice is checked once, as pw health 4 4 does" {
	pw config set health.url "$ORIGIN_URL/status/204"
	pw -q pool add "$TP" "$REFUSED"
	start_serve
	post /api/v1/proxies/test '{"ids": [2, 2, 2], "timeout": 5}'
	is "$STATUS" 200
	is "$(j '[.data.results[] | [.id, .consecutive_failures]] | @json')" '[[2,1]]'
	is "$(j '.data.summary | [.total, .checked, .degraded] | @tsv')" "$(printf '1\t1\t1')"
	post /api/v1/proxies/test '{"ids": [2, 1, 2, 1]}'
	is "$(j '[.data.results[] | [.id, .consecutive_failures]] | sort | @json')" '[[1,0],[2,2]]'
	is "$(j '.data.summary.total')" 2
	run -0 pw pool ls --json
	is "$(jq -c '[.[] | [.id, .consec_fail]]' <<<"$output")" '[[1,0],[2,2]]'
}

@test "POST /proxies/test: bad ids and timeouts are 422 naming the field, unknown ids 404; nothing checked" {
	pw -q pool add "$TP"
	start_serve
	local before b f
	before=$(state_sum)
	while IFS='|' read -r f b; do
		post /api/v1/proxies/test "$b"
		envelope_error 422 VALIDATION_ERROR || { echo "for $b"; return 1; }
		is "$(field)" "$f" || { echo "for $b"; return 1; }
	done <<EOF
ids|{"ids": 1}
ids|{"ids": "1"}
ids|{"ids": []}
ids[0]|{"ids": [0]}
ids[1]|{"ids": [1, 1.5]}
ids[0]|{"ids": ["1"]}
ids[0]|{"ids": [-3]}
ids|{"ids": [$(seq -s, 1 1001)]}
timeout|{"timeout": 0}
timeout|{"timeout": 301}
timeout|{"timeout": "5"}
health.url|{"ids": [1]}
EOF
	post /api/v1/proxies/test '{"ids": [1, 99]}'
	envelope_error 404 NOT_FOUND
	is "$(j '.error.details.id')" 99
	is "$(j '.error.message')" "ids[1]: 99: no such proxy"
	post /api/v1/proxies/test '[1]'
	envelope_error 422 VALIDATION_ERROR
	post /api/v1/proxies/test '{"ids": [1'
	envelope_error 400 INVALID_JSON
	api GET /api/v1/proxies/test
	envelope_error 405 METHOD_NOT_ALLOWED
	is "$(header Allow)" POST
	is "$(state_sum)" "$before"
}

# ------------------------------------------------------------- OpenAPI

@test "every route of the router is in /openapi.json, with its method, and nothing else is" {
	start_serve
	api GET /openapi.json
	is "$STATUS" 200
	is "$(header Content-Type)" application/json
	is "$BODY" "$(cat "$ROOT/share/openapi.json")"
	is "$(j '.openapi')" 3.1.0
	is "$(j '.info.version')" "$(pw --version | cut -d' ' -f2)"
	is "$(j '[.paths | to_entries[] | .key as $p | .value | keys[] |
	    "\(ascii_upcase) \($p)"] | sort | .[]')" \
	    "$(pw __routes | awk '{ print $1, $2 }' | LC_ALL=C sort)"
	# the open ones, and only they, say they need no key
	is "$(j '[.paths | to_entries[] | .key as $p | .value | to_entries[] |
	    select(.value.security == []) | "\(.key | ascii_upcase) \($p)"] |
	    sort | .[]')" \
	    "$(pw __routes | awk '$3 == "open" { print $1, $2 }' | LC_ALL=C sort)"
	# every operation that needs a key documents 401
	is "$(j '[.paths[][] | select(.security != []) |
	    select(.responses["401"] == null)] | length')" 0
}

@test "the OpenAPI document: every \$ref resolves, every error code the server sends is listed" {
	local doc=$ROOT/share/openapi.json ref c
	jq -e . "$doc" >/dev/null
	for ref in $(jq -r '.. | objects | .["$ref"]? // empty' "$doc" | sort -u); do
		jq -e --arg p "${ref#\#/}" 'getpath($p | split("/")) != null' \
		    "$doc" >/dev/null || { echo "dangling $ref"; return 1; }
	done
	# the codes in api.c: its upper-case string constants, less methods
	# and the words of header values and messages
	is "$(grep -oE '"[A-Z][A-Z_]+[A-Z]"' "$ROOT/lib/api.c" | tr -d '"' |
	    grep -vxE 'GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS|DENY|URL' |
	    LC_ALL=C sort -u)" \
	    "$(jq -r '.components.schemas.Error.properties.code.enum[]' "$doc" |
	    LC_ALL=C sort)"
	# each is in the responses of some operation too
	for c in $(jq -r '.components.schemas.Error.properties.code.enum[]' "$doc"); do
		grep -q "$c" <(jq -r '.. | objects | .description? // empty' "$doc") ||
		    { echo "$c: in no response"; return 1; }
	done
}

@test "/docs is a page of its own: script and style from the server, nothing from elsewhere" {
	start_serve
	api GET /docs
	is "$STATUS" 200
	is "$(header Content-Type)" 'text/html; charset=utf-8'
	like "$(header Content-Security-Policy)" "default-src 'none'; script-src 'self'; connect-src 'self'*"
	is "$BODY" "$(cat "$ROOT/share/docs.html")"
	[[ $BODY == *'src="/docs/app.js"'* && $BODY == *'href="/docs/app.css"'* ]]
	api GET /docs/app.js
	is "$STATUS" 200
	is "$(header Content-Type)" 'text/javascript; charset=utf-8'
	[[ $BODY == *'fetch("/openapi.json"'* ]]
	api GET /docs/app.css
	is "$(header Content-Type)" 'text/css; charset=utf-8'
	# no URL of another host in any of them
	! grep -nE '(https?:)?//[a-z0-9]' "$ROOT/share/docs.html" \
	    "$ROOT/share/docs.js" "$ROOT/share/docs.css"
	# the page is open even when keys exist
	pw -q serve keys add k >/dev/null
	api GET /docs
	is "$STATUS" 200
}

@test "lib/assets.c is made from share/ as it is" {
	local tmp=$BATS_TEST_TMPDIR/src
	mkdir -p "$tmp/lib"
	cp -R "$ROOT/Makefile" "$ROOT/share" "$tmp/"
	make -s -C "$tmp" -B lib/assets.c
	is "$(file_sum "$tmp/lib/assets.c")" "$(file_sum "$ROOT/lib/assets.c")"
}
