#!/usr/bin/env bats
# peers.bats -- self-test of tests/helpers: the origin and the real peers
# (tinyproxy, microsocks, redis, a refused port, a blackhole), with curl.

bats_require_minimum_version 1.5.0

load helper
load ../helpers/peers

setup_file() {
	start_origin
	start_origin --tls
	start_origin --ipv6
	# After the TLS origin: tinyproxy allows CONNECT to ORIGIN_TLS_PORT.
	start_tinyproxy
	start_tinyproxy
	start_tinyproxy
	start_microsocks --user alice --pass 's3cret pw'
	start_blackhole
	start_redis
	refused_port >/dev/null
}

teardown_file() {
	stop_peers
}

setup() {
	setup_pw
}

teardown() {
	stop_peers
}

# get URL [CURL-OPTION...]: the body of a GET, curl failing on any error.
get() {
	local url=$1
	shift
	curl -sS --max-time 10 "$@" "$url"
}

@test "origin /echo: a POST body and its headers arrive intact" {
	body=$'line one\nline "two"\ttabbed é'
	run -0 get "$ORIGIN_URL/echo?a=1&a=2&b=" -X POST \
	    -H 'X-Pw-Test: a  b,c;d="e"' -H 'X-Dup: 1' -H 'X-Dup: 2' \
	    -H 'Content-Type: text/plain' --data-binary "$body"
	echo "$output" >"$BATS_TEST_TMPDIR/echo.json"
	is "$(json_get body <"$BATS_TEST_TMPDIR/echo.json")" "$body"
	run -0 json_get method path query args body_length headers.X-Pw-Test \
	    headers.X-Dup headers.Content-Type header_list.4 header_list.5 \
	    client server_port tls http_version <"$BATS_TEST_TMPDIR/echo.json"
	is "$output" "$(lines POST /echo 'a=1&a=2&b=' '{"a": ["1", "2"], "b": [""]}' \
	    "$(printf %s "$body" | wc -c)" 'a  b,c;d="e"' '1, 2' text/plain \
	    '["X-Dup", "1"]' '["X-Dup", "2"]' 127.0.0.1 "$ORIGIN_PORT" false HTTP/1.1)"
}

@test "origin /echo: any method; a binary body comes back in body_b64" {
	printf "$(printf '\\%03o' $(seq 0 255))" >"$BATS_TEST_TMPDIR/bin"
	is "$(wc -c <"$BATS_TEST_TMPDIR/bin")" 256
	run -0 get "$ORIGIN_URL/echo" -X FROB --data-binary @"$BATS_TEST_TMPDIR/bin"
	is "$(json_get method body body_b64 <<<"$output")" \
	    "$(lines FROB null "$(base64 -w0 "$BATS_TEST_TMPDIR/bin")")"
}

@test "origin /echo: 2 MiB bodies, with Content-Length (100-continue) and chunked" {
	origin_bytes 2097152 >"$BATS_TEST_TMPDIR/big"
	want=$(sha256sum <"$BATS_TEST_TMPDIR/big")
	for te in '' 'Transfer-Encoding: chunked'; do
		get "$ORIGIN_URL/echo" -H "$te" \
		    --data-binary @"$BATS_TEST_TMPDIR/big" >"$BATS_TEST_TMPDIR/out"
		is "$(json_get body_length <"$BATS_TEST_TMPDIR/out")" 2097152
		got=$(json_get body_b64 <"$BATS_TEST_TMPDIR/out" | base64 -d | sha256sum)
		is "$got" "$want"
	done
}

@test "origin /bytes: exact length and content, Content-Length or chunked" {
	origin_bytes 1048576 >"$BATS_TEST_TMPDIR/want"
	run -0 get "$ORIGIN_URL/bytes/1048576" -D "$BATS_TEST_TMPDIR/h1" \
	    -o "$BATS_TEST_TMPDIR/b1" -w '%{size_download}'
	is "$output" 1048576
	cmp "$BATS_TEST_TMPDIR/want" "$BATS_TEST_TMPDIR/b1"
	grep -qx $'Content-Length: 1048576\r' "$BATS_TEST_TMPDIR/h1"

	run -0 get "$ORIGIN_URL/bytes/1048576?chunked=1" -D "$BATS_TEST_TMPDIR/h2" \
	    -o "$BATS_TEST_TMPDIR/b2" -w '%{size_download}'
	is "$output" 1048576
	cmp "$BATS_TEST_TMPDIR/want" "$BATS_TEST_TMPDIR/b2"
	grep -qx $'Transfer-Encoding: chunked\r' "$BATS_TEST_TMPDIR/h2"
	run -1 grep -i '^Content-Length' "$BATS_TEST_TMPDIR/h2"

	run -0 get "$ORIGIN_URL/bytes/0" -w '%{http_code} %{size_download}'
	is "$output" '200 0'
}

@test "origin /bytes: the pattern is fixed; HEAD sends headers only" {
	is "$(origin_bytes 1000000 | sha256sum)" \
	    '6dd319780382c1f4fd00273db03f2532239904b44332fa1715ff4d46d1cabca1  -'
	run -0 get "$ORIGIN_URL/bytes/5" -I
	[[ $output == *$'Content-Length: 5\r'* ]]
	run -0 get "$ORIGIN_URL/bytes/5" -o /dev/null -w '%{size_download}' -I
	is "$output" 0
}

@test "origin /bytes: ?abort cuts the body, ?stall stops sending" {
	run -18 --separate-stderr get "$ORIGIN_URL/bytes/1000000?abort=500000" \
	    -o "$BATS_TEST_TMPDIR/b" -w '%{size_download}'
	is "$output" 500000
	is "$stderr" 'curl: (18) transfer closed with 500000 bytes remaining to read'
	cmp "$BATS_TEST_TMPDIR/b" <(origin_bytes 500000)
	run -28 --separate-stderr get "$ORIGIN_URL/bytes/1000000?stall=300000" \
	    -m 1 -o "$BATS_TEST_TMPDIR/s" -w '%{size_download}'
	is "$output" 300000
	cmp "$BATS_TEST_TMPDIR/s" <(origin_bytes 300000)
}

@test "origin /bytes: 256 MiB stream in constant memory" {
	run -0 get "$ORIGIN_URL/bytes/268435456" -o /dev/null -w '%{size_download}'
	is "$output" 268435456
	hwm=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$ORIGIN_PID/status")
	echo "origin peak RSS: $hwm kB"
	[ "$hwm" -lt 65536 ]
}

@test "origin over HTTPS: verified with ORIGIN_CA, refused without" {
	run -0 get "$ORIGIN_TLS_URL/echo" --cacert "$ORIGIN_CA"
	is "$(json_get tls server_port <<<"$output")" "$(lines true "$ORIGIN_TLS_PORT")"
	run -0 get "https://localhost:$ORIGIN_TLS_PORT/ip" --cacert "$ORIGIN_CA" \
	    --resolve "localhost:$ORIGIN_TLS_PORT:127.0.0.1"
	is "$output" 127.0.0.1
	run -60 get "$ORIGIN_TLS_URL/ip"
}

@test "origin over IPv6 (::1)" {
	is "$ORIGIN6_URL" "http://[::1]:$ORIGIN6_PORT"
	run -0 get "$ORIGIN6_URL/ip"
	is "$output" ::1
}

@test "origin keeps connections alive (plain and TLS)" {
	run -0 curl -sS -o /dev/null -o /dev/null -w '%{num_connects}\n' \
	    "$ORIGIN_URL/echo" "$ORIGIN_URL/bytes/100000?chunked=1"
	is "$output" $'1\n0'
	run -0 curl -sS --cacert "$ORIGIN_CA" -o /dev/null -o /dev/null -o /dev/null \
	    -w '%{num_connects}\n' "$ORIGIN_TLS_URL/status/404" \
	    "$ORIGIN_TLS_URL/bytes/1000" "$ORIGIN_TLS_URL/ip"
	is "$output" $'1\n0\n0'
}

@test "origin /status, /slow, /hang" {
	run -0 get "$ORIGIN_URL/status/503?Retry-After=7" -i
	[[ ${lines[0]} == 'HTTP/1.1 503 '* ]]
	[[ $output == *$'\nRetry-After: 7\r\n'* ]]
	[[ $output == *$'\r\n\r\nstatus 503' ]]
	run -0 get "$ORIGIN_URL/status/204" -w '%{http_code} %{size_download}'
	is "$output" '204 0'

	run -0 get "$ORIGIN_URL/slow/300" -w ' %{time_total}'
	[[ $output == 'slow 300'* ]]
	awk -v t="${output##* }" 'BEGIN { exit !(t >= 0.3) }'
	run -28 get "$ORIGIN_URL/slow/5000" -m 0.5

	run -28 get "$ORIGIN_URL/hang" -m 1
	run -28 get "$ORIGIN_URL/hang" -m 1 -X POST -d x
	run -0 get "$ORIGIN_URL/ip"
	is "$output" 127.0.0.1
}

@test "origin /gzip: compressed only when Accept-Encoding allows it" {
	run -0 get "$ORIGIN_URL/gzip" --compressed
	is "$(json_get gzipped <<<"$output")" true
	run -0 get "$ORIGIN_URL/gzip"
	is "$(json_get gzipped <<<"$output")" false
	is "$(get "$ORIGIN_URL/gzip" -H 'Accept-Encoding: gzip' | head -c 2 | od -An -tx1)" ' 1f 8b'
	run -0 get "$ORIGIN_URL/gzip" -H 'Accept-Encoding: gzip;q=0, br'
	is "$(json_get gzipped <<<"$output")" false
}

@test "origin /redirect/N: N redirects, then an answer" {
	run -0 get "$ORIGIN_URL/redirect/3" -i
	[[ ${lines[0]} == 'HTTP/1.1 302 '* ]]
	[[ $output == *$'\nLocation: /redirect/2\r\n'* ]]
	run -0 get "$ORIGIN_URL/redirect/3" -L -o "$BATS_TEST_TMPDIR/r" \
	    -w '%{http_code} %{num_redirects}'
	is "$output" '200 3'
	is "$(json_get path <"$BATS_TEST_TMPDIR/r")" /redirect/0
	run -0 get "$ORIGIN_URL/redirect/2?status=307&absolute=1" -L -d posted \
	    -o "$BATS_TEST_TMPDIR/r" -w '%{num_redirects} %{url_effective}'
	is "$output" "2 $ORIGIN_URL/redirect/0?status=307&absolute=1"
	is "$(json_get method <"$BATS_TEST_TMPDIR/r")" POST
}

@test "origin /headers: response headers from the query" {
	run -0 get "$ORIGIN_URL/headers?Set-Cookie=a&Set-Cookie=b%3D1&X-Pw=yes" \
	    -D "$BATS_TEST_TMPDIR/h" -o /dev/null
	run -0 grep -c -x -e $'Set-Cookie: a\r' -e $'Set-Cookie: b=1\r' \
	    -e $'X-Pw: yes\r' "$BATS_TEST_TMPDIR/h"
	is "$output" 3
}

@test "origin: unknown path is 404, bad numbers are 400" {
	run -0 get "$ORIGIN_URL/nope" -w ' %{http_code}'
	is "$output" $'not found\n 404'
	run -0 get "$ORIGIN_URL/bytes/x" -o /dev/null -w '%{http_code}'
	is "$output" 400
}

@test "tinyproxy carries HTTP, from its own source address" {
	run -0 get "$ORIGIN_URL/echo" -x "$TINYPROXY_URL"
	run -0 json_get headers.Via client <<<"$output"
	[[ ${lines[0]} == "1.1 tinyproxy-$TINYPROXY_PORT (tinyproxy/"*")" ]]
	is "${lines[1]}" "$TINYPROXY_SRC"
	run -0 get "$ORIGIN_URL/ip" -x "http://127.0.0.1:$TINYPROXY_PORT"
	is "$output" "$TINYPROXY_SRC"
	run -0 get "$ORIGIN6_URL/ip" -x "$TINYPROXY_URL"
	is "$output" ::1
}

@test "tinyproxy CONNECTs to the TLS origin, and only there" {
	run -0 get "$ORIGIN_TLS_URL/ip" -x "$TINYPROXY_URL" --cacert "$ORIGIN_CA" \
	    -w ' %{http_connect}'
	is "$output" "$TINYPROXY_SRC"$'\n 200'
	run -56 get "$ORIGIN_URL/ip" -x "$TINYPROXY_URL" -p
	[[ $output == *'CONNECT tunnel failed, response 403'* ]]
}

@test "tinyproxy with Basic auth: 407 without credentials, for CONNECT too" {
	start_tinyproxy --user bob --pass hunter2
	is "$TINYPROXY_USER $TINYPROXY_PASS" "bob hunter2"
	is "$TINYPROXY_URL" "http://127.0.0.1:$TINYPROXY_PORT"
	grep -qx 'BasicAuth bob hunter2' "$BATS_TEST_TMPDIR/peers/tinyproxy.$TINYPROXY_PORT.conf"
	run -0 get "$ORIGIN_URL/ip" -x "$TINYPROXY_URL" -o /dev/null -w '%{http_code}'
	is "$output" 407
	run -0 get "$ORIGIN_URL/ip" -x "http://bob:hunter2@127.0.0.1:$TINYPROXY_PORT"
	is "$output" "$TINYPROXY_SRC"
	run -56 get "$ORIGIN_TLS_URL/ip" -x "$TINYPROXY_URL" --cacert "$ORIGIN_CA"
	[[ $output == *'CONNECT tunnel failed, response 407'* ]]
	run -0 get "$ORIGIN_TLS_URL/ip" --cacert "$ORIGIN_CA" \
	    -x "http://bob:hunter2@127.0.0.1:$TINYPROXY_PORT"
	is "$output" "$TINYPROXY_SRC"
	# tinyproxy 1.11 answers a wrong password with 401, not 407.
	run -0 get "$ORIGIN_URL/ip" -x "http://bob:wrong@127.0.0.1:$TINYPROXY_PORT" \
	    -o /dev/null -w '%{http_code}'
	is "$output" 401
	# Without --user, no auth.
	start_tinyproxy
	is "$TINYPROXY_USER$TINYPROXY_PASS" ""
	run -0 get "$ORIGIN_URL/ip" -x "$TINYPROXY_URL"
	is "$output" "$TINYPROXY_SRC"
}

@test "three tinyproxies: three ports, three source addresses" {
	read -ra ports <<<"$TINYPROXY_PORTS"
	read -ra srcs <<<"$TINYPROXY_SRCS"
	is "${#ports[@]}" 3
	is "${#srcs[@]}" 3
	is "${ports[2]}" "$TINYPROXY_PORT"
	is "$(printf '%s\n' "${srcs[@]}" | sort -u | wc -l)" 3
	# (not $i: bats' run changes it)
	for n in 0 1 2; do
		run -0 get "$ORIGIN_URL/ip" -x "http://127.0.0.1:${ports[$n]}"
		is "$output" "${srcs[$n]}"
	done
}

@test "microsocks with auth: the right password works, a wrong one fails" {
	is "$MICROSOCKS_USER" alice
	is "$MICROSOCKS_PASS" 's3cret pw'
	run -0 get "$ORIGIN_URL/ip" --socks5-hostname "127.0.0.1:$MICROSOCKS_PORT" \
	    --proxy-user "$MICROSOCKS_USER:$MICROSOCKS_PASS"
	is "$output" "$MICROSOCKS_SRC"
	run -0 get "$ORIGIN_TLS_URL/ip" --cacert "$ORIGIN_CA" \
	    -x "socks5h://alice:s3cret%20pw@127.0.0.1:$MICROSOCKS_PORT"
	is "$output" "$MICROSOCKS_SRC"
	run -0 get "$ORIGIN6_URL/ip" \
	    -x "socks5h://alice:s3cret%20pw@127.0.0.1:$MICROSOCKS_PORT"
	is "$output" ::1

	run -97 get "$ORIGIN_URL/ip" \
	    -x "socks5h://alice:wrong@127.0.0.1:$MICROSOCKS_PORT"
	[[ $output == *'User was rejected by the SOCKS5 server'* ]]
	run -97 get "$ORIGIN_URL/ip" -x "socks5h://127.0.0.1:$MICROSOCKS_PORT"
	[[ $output == *'No authentication method was acceptable'* ]]
}

@test "a refused port refuses, directly and as a proxy" {
	[[ $REFUSED_PORT =~ ^[0-9]+$ ]]
	run -7 get "http://127.0.0.1:$REFUSED_PORT/"
	run -7 get "$ORIGIN_URL/ip" -x "http://127.0.0.1:$REFUSED_PORT"
	run -7 get "$ORIGIN_URL/ip" -x "socks5h://127.0.0.1:$REFUSED_PORT"
}

@test "the blackhole accepts and never answers" {
	run -28 get "http://127.0.0.1:$BLACKHOLE_PORT/" -m 1
	[[ $output == *'with 0 bytes received'* ]]
	run -28 get "$ORIGIN_URL/ip" -x "http://127.0.0.1:$BLACKHOLE_PORT" -m 1
	run -28 get "$ORIGIN_TLS_URL/ip" -x "http://127.0.0.1:$BLACKHOLE_PORT" -m 1
}

@test "redis answers PING, keeps nothing on disk" {
	run -0 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" PING
	is "$output" PONG
	run -0 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" CONFIG GET save
	is "$output" save	# and an empty value (run drops the last newline)
	run -0 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" CONFIG GET appendonly
	is "$output" $'appendonly\nno'
	is "$REDIS_URL" "redis://127.0.0.1:$REDIS_PORT"
}

@test "free_port and wait_port" {
	run -0 free_port
	[[ $output =~ ^[0-9]+$ ]] && [ "$output" -gt 0 ] && [ "$output" -lt 65536 ]
	run -0 wait_port "$ORIGIN_PORT"
	is "$output" ''
	run -1 wait_port "$REFUSED_PORT" 1
	is "$output" "peers: wait_port: nothing accepts connections on 127.0.0.1 port $REFUSED_PORT after 1s"
}

@test "peers started in a test: added to the lists, ended by stop_peers" {
	start_tinyproxy
	pid=$_PEER_PID
	is "$(wc -w <<<"$TINYPROXY_PORTS")" 4
	run -0 get "$ORIGIN_URL/ip" -x "$TINYPROXY_URL"
	is "$output" "$TINYPROXY_SRC"
	start_microsocks
	is "$MICROSOCKS_USER" ''
	run -0 get "$ORIGIN_URL/ip" -x "socks5h://127.0.0.1:$MICROSOCKS_PORT"
	is "$output" "$MICROSOCKS_SRC"
	start_origin
	origin_pid=$ORIGIN_PID

	pid_alive "$pid"
	pid_alive "$origin_pid"
	stop_peers
	# (kill -0 would not do: the origin is an orphan, and may linger as a
	# zombie until init reaps it)
	run -1 pid_alive "$pid"
	run -1 pid_alive "$origin_pid"
	is "$(ls "$BATS_TEST_TMPDIR/peers/"*.pid "$BATS_FILE_TMPDIR/peers/strays/" 2>/dev/null)" \
	    "$BATS_FILE_TMPDIR/peers/strays/:"
	run -7 get "$ORIGIN_URL/ip"
	run -7 get "http://127.0.0.1:$TINYPROXY_PORT/"
	run -7 get "http://127.0.0.1:$MICROSOCKS_PORT/"
	# The file's peers are untouched.
	run -0 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" PING
}

@test "helpers refuse bad options" {
	run -1 start_origin --nope
	is "$output" 'peers: start_origin: unknown option --nope'
	run -1 start_microsocks --user u
	is "$output" 'peers: start_microsocks: --user and --pass go together'
	run -1 start_microsocks --pass p
	is "$output" 'peers: start_microsocks: --user and --pass go together'
	run -1 start_microsocks --user
	is "$output" 'peers: start_microsocks: --user needs a value'
	run -1 start_tinyproxy --nope
	is "$output" 'peers: start_tinyproxy: unknown option --nope'
	run -1 start_tinyproxy --user u
	is "$output" 'peers: start_tinyproxy: --user and --pass go together'
	run -1 start_tinyproxy --pass p
	is "$output" 'peers: start_tinyproxy: --user and --pass go together'
	run -1 start_tinyproxy --pass
	is "$output" 'peers: start_tinyproxy: --pass needs a value'
	run -1 start_tinyproxy --user 'a b' --pass p
	is "$output" 'peers: start_tinyproxy: --user: letters, digits and ._~- only'
}

@test "the origin wrote nothing to its log without -v" {
	for f in "$BATS_FILE_TMPDIR"/peers/origin*.log; do
		is "$(wc -c <"$f")" 0
	done
	is "$(ls "$BATS_FILE_TMPDIR"/peers/origin*.log | wc -l)" 3
}
