#!/usr/bin/env bats
# gateway.bats -- pw serve --gateway, a local rotating proxy, driven with
# curl and raw sockets through real peers on loopback: two tinyproxies and
# a microsocks as upstreams, plain and TLS origins. Rotation per tunnel
# and per plain request, SOCKS5, failover, sessions, country filters, the
# gateway's own authentication, limits, timeouts, back-pressure, outcomes
# in the state file, metrics, and every refused option or setting.

bats_require_minimum_version 1.5.0

load helper
load ../helpers/peers

setup_file() {
	start_origin
	start_origin --tls
	start_origin --ipv6
	refused_port >/dev/null
	export DEAD=http://127.0.0.1:$REFUSED_PORT
	start_tinyproxy --connect-port "$ORIGIN_PORT" \
	    --connect-port "$ORIGIN_TLS_PORT"
	export TP1=$TINYPROXY_URL TP1_SRC=$TINYPROXY_SRC
	start_tinyproxy --connect-port "$ORIGIN_PORT" \
	    --connect-port "$ORIGIN_TLS_PORT"
	export TP2=$TINYPROXY_URL TP2_SRC=$TINYPROXY_SRC
	start_microsocks
	export MS=socks5h://127.0.0.1:$MICROSOCKS_PORT MS_SRC=$MICROSOCKS_SRC
	start_tinyproxy --user tpu --pass 'tp.pass' \
	    --connect-port "$ORIGIN_TLS_PORT"
	export TPA=http://tpu:tp.pass@127.0.0.1:$TINYPROXY_PORT \
	    TPA_SRC=$TINYPROXY_SRC
	start_microsocks --user msu --pass mspass
	export MSA=socks5://msu:mspass@127.0.0.1:$MICROSOCKS_PORT \
	    MSA_SRC=$MICROSOCKS_SRC
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

add() {
	pw -q pool add "$@"
}

# through URL [CURL ARGS...]: GET URL through the gateway as an HTTP proxy.
through() {
	local url=$1
	shift
	curl -sS -m 10 --cacert "$ORIGIN_CA" -x "$GW" "$@" "$url"
}

# socks URL [CURL ARGS...]: the same through the gateway as SOCKS5.
socks() {
	local url=$1
	shift
	curl -sS -m 10 --cacert "$ORIGIN_CA" \
	    --socks5-hostname "127.0.0.1:$GW_PORT" "$@" "$url"
}

# stat ID FIELD: a counter of proxy ID from pw pool ls --json.
stat() {
	pw pool ls --json | jq -r ".[] | select(.id == $1) | .$2"
}

# wait_stat ID FIELD VALUE: outcomes are written in batches, once a second.
wait_stat() {
	for _ in $(seq 50); do
		[ "$(stat "$1" "$2")" = "$3" ] && return 0
		sleep 0.1
	done
	is "$(stat "$1" "$2")" "$3"
}

# raw PORT HEX...: send the bytes, print what comes back as hex (python).
raw() {
	local port=$1
	shift
	/usr/bin/python3 - "$port" "$@" <<'EOF'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
out = b""
for h in sys.argv[2:]:
    s.sendall(bytes.fromhex(h))
    time.sleep(0.2)
s.settimeout(5)
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
        if len(out) >= 2 and out[0] == 5 and len(out) >= 10:
            break
except socket.timeout:
    pass
print(out.hex())
EOF
}

# ------------------------------------------------------------- rotation

@test "plain HTTP rotates per request across three upstreams, even on one connection" {
	add "$TP1" "$TP2" "$MS"
	start_gateway
	run -0 through "$ORIGIN_URL/ip" "$ORIGIN_URL/ip" "$ORIGIN_URL/ip" \
	    "$ORIGIN_URL/ip" "$ORIGIN_URL/ip" "$ORIGIN_URL/ip"
	is "$output" "$(lines "$TP1_SRC" "$TP2_SRC" "$MS_SRC" "$TP1_SRC" \
	    "$TP2_SRC" "$MS_SRC")"
	# One client connection carried all six.
	run -0 curl -sS -m 10 -v -x "$GW" "$ORIGIN_URL/ip" "$ORIGIN_URL/ip"
	like "$output" "*Re-using existing connection*"
}

@test "no_proxy in the gateway's environment sends nothing around the upstream" {
	add "$TP1"
	GW_ENV=("no_proxy=*" "NO_PROXY=*")
	start_gateway
	run -0 through "$ORIGIN_URL/ip"
	is "$output" "$TP1_SRC"
	run -0 through "$ORIGIN_TLS_URL/ip"
	is "$output" "$TP1_SRC"
}

@test "CONNECT tunnels to an HTTPS origin rotate across three upstreams" {
	add "$TP1" "$TP2" "$MS"
	start_gateway
	for _ in 1 2 3; do
		through "$ORIGIN_TLS_URL/ip"
	done >"$BATS_TEST_TMPDIR/out"
	is "$(cat "$BATS_TEST_TMPDIR/out")" \
	    "$(lines "$TP1_SRC" "$TP2_SRC" "$MS_SRC")"
	# curl -p: a CONNECT tunnel for plain HTTP too.
	run -0 through "$ORIGIN_URL/ip" -p
	is "$output" "$TP1_SRC"
}

@test "SOCKS5 on the same port rotates, plain and TLS, by name and by address" {
	add "$TP1" "$TP2" "$MS"
	start_gateway
	{
		socks "$ORIGIN_URL/ip"
		socks "$ORIGIN_TLS_URL/ip"
		curl -sS -m 10 --socks5 "127.0.0.1:$GW_PORT" "$ORIGIN_URL/ip"
		# A name (address type 3), resolved by the upstream.
		socks "http://localhost:$ORIGIN_PORT/ip"
	} >"$BATS_TEST_TMPDIR/out"
	is "$(cat "$BATS_TEST_TMPDIR/out")" \
	    "$(lines "$TP1_SRC" "$TP2_SRC" "$MS_SRC" "$TP1_SRC")"
}

@test "SOCKS5 carries an IPv6 target" {
	add "$MS"
	start_gateway
	run -0 curl -sS -m 10 --socks5 "127.0.0.1:$GW_PORT" "$ORIGIN6_URL/ip"
	is "$output" "::1"
}

@test "a separate --gateway-socks port takes SOCKS5 and nothing else" {
	add "$TP1"
	sp=$(free_port)
	start_gateway --gateway-socks "127.0.0.1:$sp"
	wait_port "$sp"
	run -0 curl -sS -m 10 --socks5-hostname "127.0.0.1:$sp" "$ORIGIN_URL/ip"
	is "$output" "$TP1_SRC"
	run -0 curl -sS -m 10 -o /dev/null -w '%{http_code}' -x \
	    "http://127.0.0.1:$sp" "$ORIGIN_URL/ip" || true
	[ "$output" != 200 ]
	like "$(cat "$GW_LOG")" "*gateway on 127.0.0.1:$sp (SOCKS5)*"
}

@test "upstream credentials are used, for tunnels and plain requests" {
	add "$TPA" "$MSA"
	start_gateway
	run -0 through "$ORIGIN_TLS_URL/ip"
	is "$output" "$TPA_SRC"
	run -0 through "$ORIGIN_TLS_URL/ip"
	is "$output" "$MSA_SRC"
	run -0 through "$ORIGIN_URL/ip"
	is "$output" "$TPA_SRC"
	run -0 socks "$ORIGIN_URL/ip"
	is "$output" "$MSA_SRC"
}

# --------------------------------------------------------- byte for byte

@test "the origin sees the same request through the gateway as straight through the upstream" {
	add "$TP1"
	start_gateway
	direct=$(curl -sS -m 10 -x "$TP1" -H 'X-Test: 1' "$ORIGIN_URL/echo" |
	    jq -c .header_list)
	via=$(through "$ORIGIN_URL/echo" -H 'X-Test: 1' | jq -c .header_list)
	is "$via" "$direct"
	# The gateway's credentials never reach the upstream or the origin.
	via=$(through "$ORIGIN_URL/echo" -U 'me-session-x:pw' -H 'X-Test: 1' |
	    jq -c .header_list)
	is "$via" "$direct"
	direct=$(curl -sS -m 10 --cacert "$ORIGIN_CA" -x "$TP1" \
	    "$ORIGIN_TLS_URL/echo" | jq -c .header_list)
	via=$(through "$ORIGIN_TLS_URL/echo" | jq -c .header_list)
	is "$via" "$direct"
}

@test "through a SOCKS upstream the origin sees the client's request, in origin form" {
	add "$MS"
	start_gateway
	direct=$(curl -sS -m 10 --socks5-hostname "${MS#socks5h://}" \
	    "$ORIGIN_URL/echo?a=1" | jq -c '[.header_list, .path, .query]')
	via=$(through "$ORIGIN_URL/echo?a=1" | jq -c '[.header_list, .path, .query]')
	is "$via" "$direct"
	# The Host is the target's, whatever the client said (RFC 9112
	# 3.2.2), and there is one for an HTTP/1.0 request without it.
	run -0 through "$ORIGIN_URL/echo" -H 'Host: evil.example'
	is "$(jq -r '[.header_list[] | select(.[0] | ascii_downcase == "host") | .[1]] | join(" ")' <<<"$output")" \
	    "${ORIGIN_URL#http://}"
	run -0 through "$ORIGIN_URL/echo" -0 -H 'Host:'
	is "$(jq -r '[.header_list[] | select(.[0] | ascii_downcase == "host") | .[1]] | join(" ")' <<<"$output")" \
	    "${ORIGIN_URL#http://}"
	# A POST body, chunked, and the next request on the same connection.
	run -0 through "$ORIGIN_URL/echo" -H 'Transfer-Encoding: chunked' \
	    --data-binary 'hello world'
	is "$(jq -r .body <<<"$output")" "hello world"
}

@test "large and chunked bodies arrive whole, byte for byte" {
	add "$TP1" "$MS"
	start_gateway
	origin_bytes 3000000 >"$BATS_TEST_TMPDIR/want"
	for u in "$ORIGIN_URL/bytes/3000000" \
	    "$ORIGIN_URL/bytes/3000000?chunked=1" \
	    "$ORIGIN_TLS_URL/bytes/3000000"; do
		through "$u" -o "$BATS_TEST_TMPDIR/got"
		cmp "$BATS_TEST_TMPDIR/want" "$BATS_TEST_TMPDIR/got"
		socks "$u" -o "$BATS_TEST_TMPDIR/got"
		cmp "$BATS_TEST_TMPDIR/want" "$BATS_TEST_TMPDIR/got"
	done
	# HEAD and 204/304-style answers without a body keep the connection.
	run -0 through "$ORIGIN_URL/ip" -I
	like "$output" "HTTP/1.? 200*"
}

@test "a response without a length ends when the origin closes, and so does the client's" {
	add "$TP1" "$MS"
	port=$(free_port)
	/usr/bin/python3 -c 'import socket,sys
l=socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1",int(sys.argv[1]))); l.listen(8)
l.settimeout(20)
served=0
while served < 2:
    c,_=l.accept(); b=b"x"; h=b""
    while b and b"\r\n\r\n" not in h:
        b=c.recv(65536); h+=b
    if b:
        c.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nsent until close")
        served+=1
    c.close()' "$port" 3>&- &
	holder=$!
	wait_port "$port"
	start_gateway
	for _ in 1 2; do
		run -0 through "http://127.0.0.1:$port/" -w ' %{http_code}'
		is "$output" "sent until close 200"
	done
	kill "$holder" 2>/dev/null || true
}

# ------------------------------------------------------------- failover

@test "a dead upstream is skipped transparently, and its failure recorded" {
	add "$DEAD" "$TP1"
	start_gateway
	for _ in 1 2 3 4; do
		through "$ORIGIN_URL/ip"
		through "$ORIGIN_TLS_URL/ip"
		socks "$ORIGIN_URL/ip"
	done >"$BATS_TEST_TMPDIR/out"
	is "$(sort -u "$BATS_TEST_TMPDIR/out")" "$TP1_SRC"
	wait_stat 2 succeeded 12
	[ "$(stat 1 failed)" -ge 1 ]
}

@test "when every upstream fails the client gets 502, or SOCKS5 general failure" {
	add "$DEAD"
	start_gateway --retries 2
	run -0 through "$ORIGIN_URL/ip" -o /dev/null -w '%{http_code}'
	is "$output" 502
	run -56 through "$ORIGIN_TLS_URL/ip"
	like "$output" "*CONNECT tunnel failed, response 502*"
	run -97 socks "$ORIGIN_URL/ip"
	like "$output" "*(1)*"
	# An empty pool says so, the same way.
	pw -q pool clear --yes
	run -0 through "$ORIGIN_URL/ip"
	like "$output" "pw gateway: no eligible proxy*"
}

@test "a target that refuses is the target's failure, not a failover" {
	add "$MS" "$TP1"
	start_gateway
	# microsocks reaches the target and is refused: SOCKS5 reply 5.
	run -97 socks "http://127.0.0.1:$REFUSED_PORT/"
	like "$output" "*(5)*"
	wait_stat 1 completed 1
	is "$(stat 1 failed)" 0
	is "$(stat 2 started)" 0
}

# ------------------------------------------------------------- controls

@test "a session in the user name sticks to one upstream; another may differ" {
	add "$TP1" "$TP2" "$MS"
	start_gateway
	for _ in 1 2 3 4; do
		through "$ORIGIN_URL/ip" -U 'me-session-abc:x'
		socks "$ORIGIN_TLS_URL/ip" -U 'me-session-abc:x'
	done >"$BATS_TEST_TMPDIR/out"
	is "$(sort -u "$BATS_TEST_TMPDIR/out" | wc -l)" 1
	first=$(head -n 1 "$BATS_TEST_TMPDIR/out")
	run -0 through "$ORIGIN_URL/ip" -U 'me-session-other:x'
	[ "$output" != "$first" ]
}

@test "country filters hold, combined with a session and a strategy" {
	add --country de "$TP2"
	add --country us "$TP1" "$MS"
	start_gateway
	for _ in 1 2 3; do
		through "$ORIGIN_URL/ip" -U 'me-country-DE:x'
		socks "$ORIGIN_URL/ip" -U 'me-country-de-session-s1:x'
	done >"$BATS_TEST_TMPDIR/out"
	is "$(sort -u "$BATS_TEST_TMPDIR/out")" "$TP2_SRC"
	for _ in 1 2 3 4; do
		through "$ORIGIN_URL/ip" -U 'me-strategy-least-used-country-us:x'
	done >"$BATS_TEST_TMPDIR/out"
	is "$(sort -u "$BATS_TEST_TMPDIR/out")" "$(sort <<<"$(lines "$TP1_SRC" \
	    "$MS_SRC")")"
	run -0 through "$ORIGIN_URL/ip" -U 'me-country-fr:x'
	like "$output" "pw gateway: no eligible proxy*"
}

@test "bad controls in the user name are refused with the reason" {
	add "$TP1"
	start_gateway
	run -0 through "$ORIGIN_URL/ip" -U 'me-colour-red:x' \
	    -w '%{http_code}'
	is "$output" "$(lines "pw gateway: 'colour': unknown control in the user name (session, country, strategy)" 400)"
	run -0 through "$ORIGIN_URL/ip" -U 'me-country-xyz:x' -w '%{http_code}'
	is "$output" "$(lines "pw gateway: country: 'xyz': want a two-letter code" 400)"
	run -0 through "$ORIGIN_URL/ip" -U 'me-session:x' -w '%{http_code}'
	is "$output" "$(lines "pw gateway: session: no value in the user name" 400)"
	run -0 through "$ORIGIN_URL/ip" -U 'me-strategy-nope:x' -w '%{http_code}'
	like "$output" "pw gateway: *nope*"
	like "$output" "*400"
	run -97 socks "$ORIGIN_URL/ip" -U 'me-colour-red:x'
}

# ----------------------------------------------------------------- auth

@test "gateway users are stored hashed; a wrong password, or a prefix of the right one, is refused" {
	add "$TP1"
	pw -q config set serve.gateway_users 'alice:s3cret-pass,bob:other'
	run -0 pw config get serve.gateway_users
	[[ $output != *s3cret* ]]
	like "$output" 'alice:$b2$*,bob:$b2$*'
	# Listed, the names alone: a weak password falls to a search of its
	# hash.
	run -0 pw config list --plain
	grep -qxF "serve.gateway_users"$'\t'"alice:***,bob:***"$'\t'state \
	    <<<"$(cut -f 1-3 <<<"$output")"
	run -0 sqlite3 "$PW_STATE" .dump
	[[ $output != *s3cret* ]]
	start_gateway
	run -0 through "$ORIGIN_URL/ip" -w '%{http_code}'
	is "$output" "$(lines "pw gateway: proxy authentication required" 407)"
	run -0 curl -sS -m 10 -D - -o /dev/null -x "$GW" "$ORIGIN_URL/ip"
	like "$output" "*Proxy-Authenticate: Basic realm=\"pw\"*"
	for bad in 'alice:s3cret' 'alice:s3cret-pas' 'alice:s3cret-pass2' \
	    'alice:' 'alice:other' 'carol:s3cret-pass' 'alicex:s3cret-pass'; do
		run -0 through "$ORIGIN_URL/ip" -U "$bad" -o /dev/null \
		    -w '%{http_code}'
		is "$output" 407
		run -97 socks "$ORIGIN_URL/ip" -U "$bad"
	done
	run -56 through "$ORIGIN_TLS_URL/ip" -U alice:wrong
	# Who has not authenticated learns nothing about the controls.
	run -0 through "$ORIGIN_URL/ip" -U 'alice-colour-red:wrong' \
	    -o /dev/null -w '%{http_code}'
	is "$output" 407
	run -0 through "$ORIGIN_URL/ip" -U 'alice-colour-red:s3cret-pass' \
	    -o /dev/null -w '%{http_code}'
	is "$output" 400
	run -0 through "$ORIGIN_URL/ip" -U 'alice:s3cret-pass'
	is "$output" "$TP1_SRC"
	run -0 through "$ORIGIN_TLS_URL/ip" -U 'bob-session-1:other'
	is "$output" "$TP1_SRC"
	run -0 socks "$ORIGIN_URL/ip" -U 'alice:s3cret-pass'
	is "$output" "$TP1_SRC"
	# SOCKS5 without credentials: no acceptable method.
	run -97 curl -sS -m 10 --socks5-hostname "127.0.0.1:$GW_PORT" \
	    "$ORIGIN_URL/ip"
}

@test "a user list changed while the gateway runs is in force within seconds" {
	add "$TP1"
	start_gateway
	run -0 through "$ORIGIN_URL/ip"
	pw -q config set serve.gateway_users 'alice:pw1'
	for _ in $(seq 30); do
		code=$(through "$ORIGIN_URL/ip" -o /dev/null -w '%{http_code}')
		[ "$code" = 407 ] && break
		sleep 0.1
	done
	is "$code" 407
	run -0 through "$ORIGIN_URL/ip" -U alice:pw1
	is "$output" "$TP1_SRC"
}

@test "bad gateway user settings are refused, and nothing is stored" {
	before=$(state_sum)
	run -2 --separate-stderr pw config set serve.gateway_users 'alice'
	is "$stderr" "pw: config set: serve.gateway_users: user 'alice': no password (want USER:PASSWORD)"
	run -2 --separate-stderr pw config set serve.gateway_users 'al-ice:x'
	is "$stderr" "pw: config set: serve.gateway_users: entry for user 'al-ice': want USER:PASSWORD, USER of letters, digits and _.@+ (no '-': it starts the controls)"
	run -2 --separate-stderr pw config set serve.gateway_users 'a:x,a:y'
	is "$stderr" "pw: config set: serve.gateway_users: user 'a' given twice"
	run -2 --separate-stderr pw config set serve.gateway_users 'a:x y'
	is "$stderr" "pw: config set: serve.gateway_users: value contains a space or control character"
	is "$(state_sum)" "$before"
}

# ------------------------------------------------------ options refused

@test "bad gateway options are refused with the reason" {
	run -2 --separate-stderr pw serve --gateway nope
	is "$stderr" "pw: serve: --gateway: 'nope': want HOST:PORT (IPv6 as [ADDR]:PORT)"
	run -2 --separate-stderr pw serve --gateway 127.0.0.1:0
	is "$stderr" "pw: serve: --gateway: '127.0.0.1:0': want a port from 1 to 65535"
	run -2 --separate-stderr pw serve --gateway-socks 127.0.0.1:9
	is "$stderr" "pw: serve: --gateway-socks: needs --gateway"
	run -2 --separate-stderr pw serve --retries 2
	is "$stderr" "pw: serve: --retries: needs --gateway"
	run -2 --separate-stderr pw serve --gateway 127.0.0.1:9 --retries 0
	is "$stderr" "pw: serve: --retries: '0': want an integer from 1 to 100"
	run -2 --separate-stderr pw serve --gateway "0.0.0.0:$(free_port)"
	like "$stderr" "pw: serve: --gateway: '0.0.0.0:*' is not a loopback address, and the gateway has no users (set serve.gateway_users first)"
	port=$(free_port)
	/usr/bin/python3 -c 'import socket,sys,time
s=socket.socket(); s.bind(("127.0.0.1",int(sys.argv[1]))); s.listen(1)
time.sleep(5)' "$port" 3>&- &
	holder=$!
	wait_port "$port"
	run -1 --separate-stderr pw serve --gateway "127.0.0.1:$port"
	is "$stderr" "pw: serve: --gateway: cannot listen on 127.0.0.1:$port: Address already in use"
	kill "$holder"
	run -2 --separate-stderr pw serve --gateway 127.0.0.1:9 \
	    --gateway-max-tunnels 0
	is "$stderr" "pw: serve: --gateway-max-tunnels: '0': want an integer from 1 to 1000000"
	run -2 --separate-stderr pw serve --gateway 127.0.0.1:9 \
	    --gateway-idle-timeout 2d
	is "$stderr" "pw: serve: --gateway-idle-timeout: '2d': want a duration from 1s to 86400s (like 90, 90s, 15m)"
	for o in --gateway-socks=127.0.0.1:9 --gateway-max-tunnels=9 \
	    --gateway-max-per-client=9 --gateway-idle-timeout=9 \
	    --gateway-handshake-timeout=9; do
		run -2 --separate-stderr pw serve "$o"
		is "$stderr" "pw: serve: ${o%%=*}: needs --gateway"
	done
	run -2 --separate-stderr pw serve --gateway "127.0.0.1:$(free_port)" \
	    --gateway-socks "0.0.0.0:$(free_port)"
	like "$stderr" "pw: serve: --gateway-socks: '0.0.0.0:*' is not a loopback address, and the gateway has no users (set serve.gateway_users first)"
	is "$(state_sum)" absent
}

@test "malformed requests get 400, https:// absolute-form 501, a huge head 431" {
	add "$TP1"
	start_gateway
	run -0 raw "$GW_PORT" "$(printf 'GET /relative HTTP/1.1\r\nHost: x\r\n\r\n' | xxd -p | tr -d '\n')"
	like "$(xxd -r -p <<<"$output")" "HTTP/1.1 400 Bad Request*"
	run -0 raw "$GW_PORT" "$(printf 'GET https://x/ HTTP/1.1\r\nHost: x\r\n\r\n' | xxd -p | tr -d '\n')"
	like "$(xxd -r -p <<<"$output")" "HTTP/1.1 501 Not Implemented*"
	run -0 raw "$GW_PORT" "$(printf 'POST http://x/ HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n' | xxd -p | tr -d '\n')"
	like "$(xxd -r -p <<<"$output")" "HTTP/1.1 400 Bad Request*"
	big=$(head -c 20000 /dev/zero | tr '\0' a)
	run -0 curl -sS -m 10 -x "$GW" -H "X-Big: $big" -o /dev/null \
	    -w '%{http_code}' "$ORIGIN_URL/ip"
	is "$output" 431
}

@test "a head of bare-LF lines gets 400 at once; a SOCKS4 client reply 0x5B at once" {
	add "$TP1"
	sp=$(free_port)
	start_gateway --gateway-socks "127.0.0.1:$sp"
	wait_port "$sp"
	# The handshake timeout is 10 s, raw waits 5: an answer came first.
	run -0 raw "$GW_PORT" "$(printf 'GET http://x/ HTTP/1.1\nHost: x\n\n' | xxd -p | tr -d '\n')"
	is "$(xxd -r -p <<<"$output")" "$(printf 'HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 68\r\nConnection: close\r\n\r\npw gateway: malformed request: a line ends in a bare LF (want CRLF)')"
	run -0 raw "$GW_PORT" "$(printf 'CONNECT x:443 HTTP/1.1\n' | xxd -p | tr -d '\n')"
	like "$(xxd -r -p <<<"$output")" "HTTP/1.1 400 Bad Request*a bare LF*"
	# SOCKS4 CONNECT and SOCKS4a, on both ports: request rejected.
	for p in "$GW_PORT" "$sp"; do
		run -0 raw "$p" 040100507f00000175736572 00
		is "$output" 005b000000000000
		run -0 raw "$p" 040101bb000000017500 782e6f726700
		is "$output" 005b000000000000
	done
	is "$(grep -c 'a SOCKS4 client refused (SOCKS5 only)' "$GW_LOG")" 4
	# Nothing was tried upstream.
	is "$(pw pool show 1 --json | jq -r .started)" 0
}

@test "SOCKS5 refusals carry the right reply codes" {
	add "$MS"
	start_gateway
	# BIND: command not supported (7).
	run -0 raw "$GW_PORT" 050100 050200017f0000010050
	is "$output" 050005070001000000000000
	# Address type 9: not supported (8).
	run -0 raw "$GW_PORT" 050100 0501000900
	is "$output" 050005080001000000000000
	# No method the gateway takes: 0xff.
	run -0 raw "$GW_PORT" 050103
	is "$output" 05ff
}

# ------------------------------------------------- limits and timeouts

@test "a client that says nothing is dropped at the handshake timeout" {
	add "$TP1"
	start_gateway --gateway-handshake-timeout 1
	start=$(date +%s)
	run -0 /usr/bin/python3 -c 'import socket,sys
s=socket.create_connection(("127.0.0.1",int(sys.argv[1])))
s.settimeout(10)
print(repr(s.recv(10)))' "$GW_PORT"
	is "$output" "b''"
	[ $(($(date +%s) - start)) -le 4 ]
}

@test "an idle tunnel is closed at the idle timeout" {
	add "$TP1"
	start_gateway --gateway-idle-timeout 1s
	run -0 /usr/bin/python3 -c 'import socket,sys
s=socket.create_connection(("127.0.0.1",int(sys.argv[1])))
s.sendall(b"CONNECT 127.0.0.1:%s HTTP/1.1\r\nHost: x\r\n\r\n" % sys.argv[2].encode())
s.settimeout(10)
print(s.recv(100).split(b"\r\n")[0].decode())
print(repr(s.recv(10)))' "$GW_PORT" "$ORIGIN_PORT"
	is "$output" "$(lines "HTTP/1.1 200 Connection established" "b''")"
}

@test "connections over the per-client limit are refused at once" {
	add "$TP1"
	start_gateway --gateway-max-per-client 2
	run -0 /usr/bin/python3 -c 'import socket,sys
port=int(sys.argv[1])
held=[]
for i in range(2):
    s=socket.create_connection(("127.0.0.1",port))
    s.sendall(b"CONNECT 127.0.0.1:%s HTTP/1.1\r\n\r\n" % sys.argv[2].encode())
    s.settimeout(5)
    print(s.recv(100).split(b"\r\n")[0].decode())
    held.append(s)
s=socket.create_connection(("127.0.0.1",port))
s.settimeout(5)
try:
    print(repr(s.recv(10)))
except ConnectionResetError:
    print("reset")
held[0].close()
import time; time.sleep(0.3)
s=socket.create_connection(("127.0.0.1",port))
s.sendall(b"CONNECT 127.0.0.1:%s HTTP/1.1\r\n\r\n" % sys.argv[2].encode())
s.settimeout(5)
print(s.recv(100).split(b"\r\n")[0].decode())' "$GW_PORT" "$ORIGIN_PORT"
	is "$output" "$(lines "HTTP/1.1 200 Connection established" \
	    "HTTP/1.1 200 Connection established" "b''" \
	    "HTTP/1.1 200 Connection established")"
}

@test "connections over the overall limit are refused at once" {
	add "$TP1"
	start_gateway --gateway-max-tunnels 1
	run -0 /usr/bin/python3 -c 'import socket,sys
port=int(sys.argv[1])
s=socket.create_connection(("127.0.0.1",port))
s.sendall(b"CONNECT 127.0.0.1:%s HTTP/1.1\r\n\r\n" % sys.argv[2].encode())
s.settimeout(5)
print(s.recv(100).split(b"\r\n")[0].decode())
t=socket.create_connection(("127.0.0.1",port))
t.settimeout(5)
print(repr(t.recv(10)))' "$GW_PORT" "$ORIGIN_PORT"
	is "$output" "$(lines "HTTP/1.1 200 Connection established" "b''")"
}

@test "a reader that does not read does not make the gateway buffer" {
	add "$TP1"
	start_gateway
	rss0=$(awk '/^VmRSS/ { print $2 }' "/proc/$GW_PID/status")
	run -0 /usr/bin/python3 -c 'import socket,sys,time
s=socket.create_connection(("127.0.0.1",int(sys.argv[1])))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.sendall(b"GET http://127.0.0.1:%s/bytes/300000000 HTTP/1.1\r\nHost: x\r\n\r\n" % sys.argv[2].encode())
time.sleep(3)
print(open("/proc/%s/status" % sys.argv[3]).read().split("VmRSS:")[1].split()[0])
s.settimeout(20)
got=0
while got < 1000000:
    b = s.recv(65536)
    if not b:
        break
    got += len(b)
print("ok" if got >= 1000000 else "eof after %d" % got)' "$GW_PORT" "$ORIGIN_PORT" "$GW_PID"
	rss1=${lines[0]}
	is "${lines[1]}" ok
	# Not the 300 MB the origin would send: a few socket buffers at most.
	[ $((rss1 - rss0)) -lt 20000 ]
}

# ------------------------------------------- outcomes, metrics, signals

@test "outcomes reach the state file in batches, and /metrics counts the gateway" {
	add "$TP1" "$DEAD"
	start_gateway --listen "127.0.0.1:$(free_port)"
	api=$(sed -n 's|.*listening on \(http://[^ ]*\)$|\1|p' "$GW_LOG")
	for _ in 1 2 3 4; do
		through "$ORIGIN_URL/ip"
	done >/dev/null
	wait_stat 1 succeeded 4
	[ "$(stat 2 failed)" -ge 1 ]
	run -0 curl -sS -m 10 "$api/metrics"
	like "$output" "*pw_gateway_tunnels_opened_total 4*"
	like "$output" "*pw_gateway_failovers_total [1-9]*"
	like "$output" "*pw_gateway_upstream_failures_total{proxy=\"2\"} [1-9]*"
	like "$output" "*pw_gateway_bytes_total{direction=\"down\"} [1-9]*"
	like "$output" "*pw_gateway_tunnels_active 0*"
}

@test "beside the API, the gateway shares its pool in memory" {
	add "$TP1" "$TP2"
	pw -q config set strategy round-robin
	pw -q config set serve.flush_interval 1h
	start_gateway --listen "127.0.0.1:$(free_port)"
	api=$(sed -n 's|.*listening on \(http://[^ ]*\)$|\1|p' "$GW_LOG")
	through "$ORIGIN_URL/ip" >/dev/null
	# One rotation: the gateway took proxy 1, the API's next is 2.
	run -0 curl -sS -m 10 "$api/api/v1/proxies/next"
	is "$(jq -r .data.id <<<"$output")" 2
	# The gateway's outcome is in the API's answer, not yet in the file.
	run -0 curl -sS -m 10 "$api/api/v1/proxies/1"
	is "$(jq -r .data.stats.succeeded <<<"$output")" 1
	is "$(stat 1 succeeded)" 0
}

@test "SIGTERM stops the gateway with open tunnels, and it exits 0" {
	add "$TP1"
	start_gateway
	/usr/bin/python3 -c 'import socket,sys,time
s=socket.create_connection(("127.0.0.1",int(sys.argv[1])))
s.sendall(b"CONNECT 127.0.0.1:%s HTTP/1.1\r\n\r\n" % sys.argv[2].encode())
time.sleep(30)' "$GW_PORT" "$ORIGIN_PORT" 3>&- &
	holder=$!
	sleep 0.5
	kill -TERM "$GW_PID"
	for _ in $(seq 50); do
		pid_alive "$GW_PID" || break
		sleep 0.1
	done
	run -1 pid_alive "$GW_PID"
	kill "$holder" 2>/dev/null || true
	like "$(cat "$GW_LOG")" "*SIGTERM*"
}
