#!/usr/bin/env bats
# fetch.bats -- pw fetch against real peers on loopback (tests/helpers):
# rotation and failover, what the pool learns, every classification of a
# failure (the proxy's or the target's), exit codes, request bodies and
# headers, streaming in constant memory, HTTPS through CONNECT and SOCKS,
# curl's options, --json, and bad input that changes nothing.

bats_require_minimum_version 1.5.0

load helper
load ../helpers/peers

setup_file() {
	start_origin
	start_origin --tls
	# After the TLS origin: the tinyproxies CONNECT to ORIGIN_TLS_PORT.
	start_tinyproxy
	start_tinyproxy
	start_tinyproxy
	read -r TP1 TP2 TP3 <<<"$TINYPROXY_PORTS"
	read -r SRC1 SRC2 SRC3 <<<"$TINYPROXY_SRCS"
	export TP1 TP2 TP3 SRC1 SRC2 SRC3
	export T1=http://127.0.0.1:$TP1 T2=http://127.0.0.1:$TP2 \
	    T3=http://127.0.0.1:$TP3
	# A tinyproxy that wants Basic auth: 407 without credentials.
	start_tinyproxy --user bob --pass hunter2
	export TPA=$TINYPROXY_PORT TPA_SRC=$TINYPROXY_SRC
	start_microsocks --user alice --pass 's3cret pw'
	export MS=$MICROSOCKS_PORT MS_SRC=$MICROSOCKS_SRC
	export SOCKS="socks5h://alice:s3cret%20pw@127.0.0.1:$MICROSOCKS_PORT"
	export SOCKS_SHOWN="socks5h://***:***@127.0.0.1:$MICROSOCKS_PORT"
	start_blackhole
	refused_port >/dev/null
	export REFUSED=http://127.0.0.1:$REFUSED_PORT
	export BLACKHOLE=http://127.0.0.1:$BLACKHOLE_PORT
}

teardown_file() {
	stop_peers
}

setup() {
	setup_pw
	W=$BATS_TEST_TMPDIR/work
	mkdir -p "$W"
}

teardown() {
	stop_peers
}

add() {
	pw -q pool add "$@"
}

# stats ID: started completed succeeded failed consec_fail of proxy ID.
stats() {
	pw pool ls --json | jq -r ".[] | select(.id == $1) |
	    \"\(.started) \(.completed) \(.succeeded) \(.failed) \(.consec_fail)\""
}

# field ID NAME: one field of `pw pool ls --json` for proxy ID.
field() {
	pw pool ls --json | jq -r ".[] | select(.id == $1) | .$2"
}

# unchanged: the state file is as it was when $before was taken.
unchanged() {
	is "$(state_sum)" "$before"
}

# The first 64 KiB of the /bytes pattern has this digest; 100 MiB of it
# (tests/helpers/origin.py --gen 104857600) has BIG_SHA.
BIG=104857600
BIG_SHA=c85952f25591783da047421025f5eec81921c77c722905445393670187bb2890

# under_asan: the build under test carries AddressSanitizer, whose shadow
# memory makes a peak RSS meaningless.
under_asan() {
	ldd "$PW_BUILD/pw" 2>/dev/null | grep -q libasan
}

# A host name the resolver refuses without asking anyone: a label longer
# than 63 bytes is not a DNS name, so glibc's resolver fails it before
# any query is built (checked with strace in a network namespace: no
# socket to port 53). Never a name that would reach real DNS.
BADNAME=$(printf 'a%.0s' {1..64}).test

# ------------------------------------------------------------- rotation

@test "rotation: three proxies take turns, in -w %{proxy} and in the origin's /ip" {
	add "$T1" "$T2" "$T3"
	got=()
	for n in 1 2 3 4; do
		run -0 --separate-stderr pw fetch -w '%{proxy} %{proxy_id} %{attempts}' \
		    "$ORIGIN_URL/ip"
		is "$stderr" ""
		got+=("$output")
	done
	is "$(lines "${got[@]}")" "$(lines \
	    "$SRC1" "$T1 1 1" "$SRC2" "$T2 2 1" "$SRC3" "$T3 3 1" "$SRC1" "$T1 1 1")"
	# Each used, and recorded as a success with a latency.
	is "$(stats 1)" "2 2 2 0 0"
	is "$(stats 2)" "1 1 1 0 0"
	is "$(stats 3)" "1 1 1 0 0"
	[ "$(field 2 latency_ms)" != null ]
}

# ------------------------------------------------------------- failover

@test "no_proxy and NO_PROXY in the environment never send a fetch around the proxy chosen" {
	add "$T1"
	local dead
	dead=$(refused_port)
	for v in no_proxy NO_PROXY; do
		# The origin sees tinyproxy's address, not this machine's.
		run -0 env "$v=*" pw fetch -w '%{proxy}' "$ORIGIN_URL/ip"
		is "$output" "$SRC1"$'\n'"$T1"
		run -0 env "$v=127.0.0.1" pw fetch --proxy "$T1" "$ORIGIN_URL/ip"
		is "$output" "$SRC1"
		# A dead proxy stays dead: no direct request passes for it.
		run -4 --separate-stderr env "$v=*" pw fetch \
		    --proxy "http://127.0.0.1:$dead" "$ORIGIN_URL/ip"
		is "$output" ""
	done
	is "$(stats 1)" "2 2 2 0 0"
}

@test "failover: a refused proxy, then a live one: attempts=2, the failure recorded" {
	add "$REFUSED" "$T1"
	run -0 --separate-stderr pw fetch -w '%{proxy} %{attempts}' "$ORIGIN_URL/ip"
	is "$output" "$SRC1"$'\n'"$T1 2"
	# Saved by another proxy: said only with -v.
	is "$stderr" ""
	is "$(stats 1)" "1 1 0 1 1"
	is "$(stats 2)" "1 1 1 0 0"
	run -0 pw pool show 1
	[[ $output == *$'\nfailed\t1\n'* ]]
	[[ $output == *$'\nconsec_fail\t1\n'* ]]

	run -0 --separate-stderr pw fetch -v -o /dev/null "$ORIGIN_URL/ip"
	like "$stderr" "*pw: fetch: attempt 1 via $REFUSED: proxy failed: Failed to connect to 127.0.0.1 port $REFUSED_PORT after * ms: Couldn't connect to server*"
	is "$(stats 1)" "2 2 0 2 2"
}

@test "failover: at pool.failure_threshold the failing proxy cools down and is skipped" {
	add "$REFUSED" "$T1"
	pw config set pool.failure_threshold 2
	for n in 1 2; do
		run -0 pw fetch -o /dev/null -w '%{attempts}' "$ORIGIN_URL/ip"
		is "$output" 2
	done
	is "$(field 1 consec_fail)" 2
	[ "$(field 1 cooldown_until)" != null ]
	is "$(field 2 cooldown_until)" null
	# Cooling down: not tried at all.
	for n in 1 2; do
		run -0 --separate-stderr pw fetch -v -w '%{proxy} %{attempts}' \
		    "$ORIGIN_URL/ip"
		is "$output" "$SRC1"$'\n'"$T1 1"
		[[ $stderr != *"attempt"* ]]
	done
	is "$(stats 1)" "2 2 0 2 2"
	is "$(stats 2)" "4 4 4 0 0"
}

@test "failover: every proxy dead: exit 4, each attempt on stderr, masked, and why" {
	add "$REFUSED" "socks5h://alice:wrongpass@127.0.0.1:$MS" "$BLACKHOLE"
	run -4 --separate-stderr pw fetch -m 1 --connect-timeout 1 \
	    -w '%{http_code} %{proxy_id} %{attempts} %{exitcode}' "$ORIGIN_URL/ip"
	is "$output" "000 0 3 4"
	is "${#stderr_lines[@]}" 4
	like "${stderr_lines[0]}" "pw: fetch: attempt 1 via $REFUSED: proxy failed: Failed to connect to 127.0.0.1 port $REFUSED_PORT after * ms: Couldn't connect to server"
	is "${stderr_lines[1]}" "pw: fetch: attempt 2 via $SOCKS_SHOWN: proxy failed: User was rejected by the SOCKS5 server (1 2)."
	like "${stderr_lines[2]}" "pw: fetch: attempt 3 via $BLACKHOLE: proxy failed: Operation timed out after * milliseconds with 0 bytes received"
	is "${stderr_lines[3]}" "pw: fetch: $ORIGIN_URL/ip: every proxy tried failed (3 attempts)"
	[[ $stderr != *wrongpass* ]]
	for id in 1 2 3; do
		is "$(stats $id)" "1 1 0 1 1"
	done
}

@test "failover: --retries bounds the proxies tried, and none is tried twice" {
	add "$REFUSED" "socks5h://127.0.0.1:$REFUSED_PORT" "$T1"
	run -4 --separate-stderr pw fetch --retries 1 -w '%{attempts}' "$ORIGIN_URL/ip"
	is "$output" 1
	is "${stderr_lines[1]}" "pw: fetch: $ORIGIN_URL/ip: every proxy tried failed (1 attempt)"
	is "$(stats 1)" "1 1 0 1 1"
	is "$(stats 2)" "0 0 0 0 0"
	# More retries than proxies: each dead one once.
	pw -q pool rm 3
	run -4 --separate-stderr pw fetch --retries 10 -w '%{attempts}' "$ORIGIN_URL/ip"
	is "$output" 2
	is "${stderr_lines[2]}" "pw: fetch: $ORIGIN_URL/ip: every proxy tried failed (2 attempts)"
	is "$(stats 1)" "2 2 0 2 2"
	is "$(stats 2)" "1 1 0 1 1"
}

@test "no eligible proxy: an empty pool, or all cooling down: exit 3, nothing tried" {
	run -3 --separate-stderr pw fetch -w '%{attempts} %{exitcode}' "$ORIGIN_URL/ip"
	is "$stderr" "pw: fetch: no eligible proxy: 0 in pool, 0 unhealthy, 0 cooling down, 0 expired"
	is "$output" "0 3"
	add "$REFUSED"
	pw config set pool.failure_threshold 1
	run -4 pw fetch -s "$ORIGIN_URL/ip"
	before=$(state_sum)
	run -3 --separate-stderr pw fetch "$ORIGIN_URL/ip"
	is "$stderr" "pw: fetch: no eligible proxy: 1 in pool, 0 unhealthy, 1 cooling down, 0 expired"
	is "$output" ""
	unchanged
}

# ---------------------------------------------------- target, exit codes

@test "target error: exit 5, no failover, the proxy not penalised" {
	add "$SOCKS" "$T1"
	run -5 --separate-stderr pw fetch -w '%{http_code} %{proxy} %{attempts} %{exitcode}' \
	    "http://127.0.0.1:$REFUSED_PORT/"
	is "$output" "000 $SOCKS_SHOWN 1 5"
	is "$stderr" "$(lines \
	    "pw: fetch: attempt 1 via $SOCKS_SHOWN: target failed: Can't complete SOCKS5 connection to 127.0.0.1. (5): the proxy could not reach the target" \
	    "pw: fetch: http://127.0.0.1:$REFUSED_PORT/: Can't complete SOCKS5 connection to 127.0.0.1. (5): the proxy could not reach the target")"
	is "$(stats 1)" "1 1 0 0 0"
	is "$(stats 2)" "0 0 0 0 0"
}

@test "exit 0 for any HTTP status; --fail: 22 on 400 and above, no body" {
	add "$T1"
	for st in 200 204 301 404 500 503; do
		run -0 pw fetch -o /dev/null -w '%{http_code} %{exitcode}' \
		    "$ORIGIN_URL/status/$st"
		is "$output" "$st 0"
	done
	run -0 --separate-stderr pw fetch "$ORIGIN_URL/status/404"
	is "$output" "status 404"
	is "$stderr" ""
	run -22 --separate-stderr pw fetch -f -w '%{http_code} %{exitcode}' \
	    "$ORIGIN_URL/status/404"
	is "$output" "404 22"
	is "$stderr" "pw: fetch: $ORIGIN_URL/status/404: HTTP 404"
	run -22 --separate-stderr pw fetch --fail -i "$ORIGIN_URL/status/500"
	is "${lines[0]}" $'HTTP/1.1 500 Internal Server Error\r'
	[[ $output != *"status 500"* ]]
	run -0 pw fetch -f "$ORIGIN_URL/status/200"
	is "$output" "status 200"
	# The proxy answered every time: no failure recorded.
	is "$(stats 1)" "10 10 10 0 0"
}

# ------------------------------------------------------- bodies, headers

@test "POST: -d, repeated -d joined by &, -d @file without its newlines" {
	add "$T1"
	printf 'x=1\ny=2\r\n' >"$W/form"
	run -0 pw fetch -d 'a=1' -d 'b=two words' -d @"$W/form" "$ORIGIN_URL/echo"
	is "$(json_get method body headers.Content-Type <<<"$output")" "$(lines \
	    POST 'a=1&b=two words&x=1y=2' application/x-www-form-urlencoded)"
}

@test "POST: -d and --data-binary pieces joined by & in command-line order, as curl" {
	add "$T1"
	printf 'x=1\ny=2\r\n' >"$W/form"
	printf 'raw\nbytes' >"$W/raw"
	run -0 pw fetch --data-binary 'b=1' -d 'a=2' --data-binary @"$W/raw" \
	    -d @"$W/form" --data=c=3 --data-binary=d=4 -de=5 "$ORIGIN_URL/echo"
	is "$(json_get method body <<<"$output")" "$(lines POST \
	    $'b=1&a=2&raw\nbytes&x=1y=2&c=3&d=4&e=5')"
}

@test "POST: --data-binary @file and @- send every byte as it is" {
	add "$T1"
	printf "$(printf '\\%03o' $(seq 0 255))" >"$W/bin"
	want=$(base64 -w0 "$W/bin")
	run -0 pw fetch --data-binary @"$W/bin" "$ORIGIN_URL/echo"
	is "$(json_get method body_length body_b64 <<<"$output")" "$(lines POST 256 "$want")"
	run -0 pw fetch --data-binary @- "$ORIGIN_URL/echo" <"$W/bin"
	is "$(json_get body_length body_b64 <<<"$output")" "$(lines 256 "$want")"
	# Through a CONNECT tunnel too, and the text form with its newline.
	run -0 pw fetch --cacert "$ORIGIN_CA" -X PUT --data-binary $'raw\nline\n' \
	    "$ORIGIN_TLS_URL/echo"
	is "$(json_get method body tls <<<"$output")" "$(lines PUT $'raw\nline\n' true)"
}

@test "headers: -H (repeatable), -X and -A arrive intact; the default User-Agent" {
	# (SOCKS carries the bytes as they are; tinyproxy keeps one of two
	# headers with the same name, as it does for curl)
	add "$SOCKS"
	run -0 pw fetch -X PATCH -H 'X-Pw-Test: a  b,c;d="e"' -H 'X-Dup: 1' \
	    -H 'X-Dup: 2' -A 'agent/1.0 (test)' "$ORIGIN_URL/echo?q=1"
	is "$(json_get method query headers.X-Pw-Test headers.X-Dup headers.User-Agent <<<"$output")" \
	    "$(lines PATCH q=1 'a  b,c;d="e"' '1, 2' 'agent/1.0 (test)')"
	run -0 pw fetch "$ORIGIN_URL/echo"
	like "$(json_get headers.User-Agent <<<"$output")" 'pw/[0-9]*'
	# curl's forms: 'Name:' sends none (here libcurl's Accept), 'Name;'
	# sends it empty; any token is a method.
	run -0 pw fetch -X PROPFIND -H 'Accept:' -H 'X-Empty;' "$ORIGIN_URL/echo"
	is "$(json_get method headers.X-Empty <<<"$output")" "$(lines PROPFIND '')"
	[[ "$output" != *'"Accept"'* ]]
}

# ------------------------------------------------------------ streaming

@test "100 MiB to -o: byte for byte, peak RSS under 20 MB" {
	add "$T1"
	/usr/bin/time -f %M -o "$W/rss" pw fetch -o "$W/big" \
	    -w '%{size_download}' "$ORIGIN_URL/bytes/$BIG" >"$W/out"
	is "$(cat "$W/out")" "$BIG"
	is "$(stat -c %s "$W/big")" "$BIG"
	is "$(sha256sum <"$W/big")" "$BIG_SHA  -"
	rss=$(tail -n 1 "$W/rss")
	echo "peak RSS: $rss kB"
	under_asan || [ "$rss" -lt 20000 ]
}

@test "100 MiB to stdout: byte for byte, peak RSS under 20 MB" {
	add "$T1"
	/usr/bin/time -f %M -o "$W/rss" pw fetch "$ORIGIN_URL/bytes/$BIG?chunked=1" |
	    sha256sum >"$W/sum"
	is "$(cat "$W/sum")" "$BIG_SHA  -"
	rss=$(tail -n 1 "$W/rss")
	echo "peak RSS: $rss kB"
	under_asan || [ "$rss" -lt 20000 ]
}

@test "a body reaches a pipe as it arrives, not when a buffer fills" {
	add "$T1"
	# 50,000 bytes, then nothing more until -m ends the transfer: the
	# reader must have all of them long before that (as with curl -N).
	pw fetch -m 4 "$ORIGIN_URL/bytes/100000?stall=50000" 2>/dev/null |
	    { timeout 2.5 head -c 50000 | wc -c >"$W/got"; cat >/dev/null; }
	is "$(cat "$W/got")" 50000
	# -o too: the file has them while the transfer still waits.
	pw fetch -m 5 -o "$W/part" "$ORIGIN_URL/bytes/100000?stall=50000" \
	    2>/dev/null &
	pid=$!
	for _ in $(seq 50); do
		[ "$(stat -c %s "$W/part" 2>/dev/null)" = 50000 ] && break
		sleep 0.05
	done
	is "$(stat -c %s "$W/part")" 50000
	cmp "$W/part" <(origin_bytes 50000)
	kill "$pid"
	wait "$pid" || :
}

@test "a failure after the body began is reported, not retried" {
	add "$T1" "$T2"
	run -5 --separate-stderr pw fetch -o "$W/part" \
	    -w '%{attempts} %{exitcode} %{size_download}' "$ORIGIN_URL/bytes/1000000?abort=500000"
	is "$output" "1 5 500000"
	cmp "$W/part" <(origin_bytes 500000)
	is "$stderr" "$(lines \
	    "pw: fetch: attempt 1 via $T1: target failed: transfer closed with 500000 bytes remaining to read" \
	    "pw: fetch: $ORIGIN_URL/bytes/1000000?abort=500000: transfer closed with 500000 bytes remaining to read")"
	# A body that stops coming: the time limit ends it, not retried.
	run -5 --separate-stderr pw fetch -m 1 -o "$W/part" -w '%{attempts} %{size_download}' \
	    "$ORIGIN_URL/bytes/1000000?stall=300000"
	is "$output" "1 300000"
	is "$(stats 1)" "1 1 0 0 0"
	is "$(stats 2)" "1 1 0 0 0"
}

# ---------------------------------------------------------------- https

@test "https: through tinyproxy (CONNECT) and microsocks (SOCKS5, auth), verified with --cacert" {
	add "$T1" "$SOCKS"
	run -0 --separate-stderr pw fetch --cacert "$ORIGIN_CA" -w '%{proxy}' \
	    "$ORIGIN_TLS_URL/ip"
	is "$output" "$SRC1"$'\n'"$T1"
	is "$stderr" ""
	run -0 --separate-stderr pw fetch --cacert "$ORIGIN_CA" -w '%{proxy}' \
	    "$ORIGIN_TLS_URL/ip"
	is "$output" "$MS_SRC"$'\n'"$SOCKS_SHOWN"
	is "$stderr" ""
	run -0 pw fetch --cacert "$ORIGIN_CA" "$ORIGIN_TLS_URL/echo"
	is "$(json_get tls server_port <<<"$output")" "$(lines true "$ORIGIN_TLS_PORT")"
}

@test "https: OpenSSL's configuration rules TLS (read only for transfers that may use it)" {
	add "$T1"
	# A system policy no server can meet: TLS 1.3 ciphers it does not
	# offer, no TLS 1.2.
	cat >"$W/openssl.cnf" <<-EOF
	openssl_conf = pw_test
	[pw_test]
	ssl_conf = ssl_sect
	[ssl_sect]
	system_default = policy
	[policy]
	MinProtocol = TLSv1.3
	Ciphersuites = TLS_AES_128_CCM_8_SHA256
	EOF
	export OPENSSL_CONF=$W/openssl.cnf
	run -5 --separate-stderr pw fetch --cacert "$ORIGIN_CA" "$ORIGIN_TLS_URL/ip"
	like "${stderr_lines[0]}" "pw: fetch: attempt 1 via $T1: target failed: *"
	# So does a fetch that may be redirected to https, and an https proxy.
	run -5 --separate-stderr pw fetch -L --cacert "$ORIGIN_CA" \
	    "$ORIGIN_URL/status/302?Location=$ORIGIN_TLS_URL/ip"
	like "${stderr_lines[0]}" "pw: fetch: attempt 1 via $T1: target failed: *"
	local tp="https://127.0.0.1:$ORIGIN_TLS_PORT"	# the TLS origin
	run -4 --separate-stderr pw fetch --cacert "$ORIGIN_CA" --proxy "$tp" "$ORIGIN_URL/ip"
	like "${stderr_lines[0]}" "pw: fetch: attempt 1 via $tp: proxy failed: *: TLS to the proxy failed"
	# Plain HTTP has nothing to configure.
	run -0 pw fetch "$ORIGIN_URL/ip"
	is "$output" "$SRC1"
	# Without the policy, each of the three goes through.
	unset OPENSSL_CONF
	run -0 pw fetch --cacert "$ORIGIN_CA" "$ORIGIN_TLS_URL/ip"
	is "$output" "$SRC1"
	run -0 pw fetch -L --cacert "$ORIGIN_CA" \
	    "$ORIGIN_URL/status/302?Location=$ORIGIN_TLS_URL/ip"
	is "$output" "$SRC1"
	run -0 pw fetch --cacert "$ORIGIN_CA" --proxy "$tp" "$ORIGIN_URL/ip"
	is "$output" "127.0.0.1"
}

@test "https: a certificate that does not verify is the target's failure (exit 5); -k passes" {
	add "$T1" "$SOCKS"
	for shown in "$T1" "$SOCKS_SHOWN"; do
		run -5 --separate-stderr pw fetch -w '%{attempts} %{proxy}' "$ORIGIN_TLS_URL/ip"
		is "$output" "1 $shown"
		is "$stderr" "$(lines \
		    "pw: fetch: attempt 1 via $shown: target failed: SSL certificate problem: unable to get local issuer certificate" \
		    "pw: fetch: $ORIGIN_TLS_URL/ip: SSL certificate problem: unable to get local issuer certificate")"
	done
	is "$(stats 1)" "1 1 0 0 0"
	is "$(stats 2)" "1 1 0 0 0"
	run -0 pw fetch -k "$ORIGIN_TLS_URL/ip"
	is "$output" "$SRC1"
	run -0 pw fetch --insecure "$ORIGIN_TLS_URL/ip"
	is "$output" "$MS_SRC"
}

# -------------------------------------------------------- secrets

@test "socks: a wrong password fails the proxy, the next answers; the password shows nowhere" {
	add "socks5h://alice:wrongpass@127.0.0.1:$MS" "$T1"
	all=$BATS_TEST_TMPDIR/all
	run -0 --separate-stderr pw fetch -v -w '%{proxy} %{attempts}' "$ORIGIN_URL/ip"
	printf '%s\n%s\n' "$output" "$stderr" >>"$all"
	is "$output" "$SRC1"$'\n'"$T1 2"
	[[ $stderr == *"pw: fetch: attempt 1 via $SOCKS_SHOWN: proxy failed: User was rejected by the SOCKS5 server (1 2)."* ]]
	is "$(stats 1)" "1 1 0 1 1"
	run -4 --separate-stderr pw fetch --proxy "socks5h://alice:wrongpass@127.0.0.1:$MS" \
	    -w '%{proxy} %{attempts}' --json "$ORIGIN_URL/ip"
	printf '%s\n%s\n' "$output" "$stderr" >>"$all"
	is "$(head -n 1 <<<"$output" | json_get attempts.0.proxy attempts.0.failure)" \
	    "$(lines "$SOCKS_SHOWN" proxy)"
	# The right password (with a space) works, and shows nowhere either.
	run -0 --separate-stderr pw fetch -v --json -x "$SOCKS" "$ORIGIN_URL/ip"
	printf '%s\n%s\n' "$output" "$stderr" >>"$all"
	is "$(json_get proxy attempts.0.proxy attempts.0.failure <<<"$output")" \
	    "$(lines "$SOCKS_SHOWN" "$SOCKS_SHOWN" none)"
	run -0 --separate-stderr pw fetch -v --retries 3 -w '%{proxy}' "$ORIGIN_URL/ip"
	printf '%s\n%s\n' "$output" "$stderr" >>"$all"
	for c in "pool ls" "pool ls --json" "pool show 1" "pool show 2" "pool ls --csv"; do
		# shellcheck disable=SC2086
		pw $c >>"$all" 2>&1
	done
	[ -s "$all" ]
	run -1 grep -e wrongpass -e s3cret -e 'alice' "$all"
	# Sealed in the state file too.
	pw pool ls >/dev/null
	run -1 grep -a -e wrongpass -e s3cret "$PW_STATE"*
	# Unless asked for.
	run -4 --separate-stderr pw --show-secrets fetch -w '%{proxy}' --json \
	    --proxy "socks5h://alice:wrongpass@127.0.0.1:$MS" "$ORIGIN_URL/ip"
	is "$(head -n 1 <<<"$output" | json_get attempts.0.proxy)" \
	    "socks5h://alice:wrongpass@127.0.0.1:$MS"
	is "${stderr_lines[0]}" "pw: fetch: attempt 1 via socks5h://alice:wrongpass@127.0.0.1:$MS: proxy failed: User was rejected by the SOCKS5 server (1 2)."
}

@test "tinyproxy with Basic auth: the right credentials work and show nowhere" {
	add "http://bob:hunter2@127.0.0.1:$TPA"
	run -0 --separate-stderr pw fetch -w '%{proxy}' "$ORIGIN_URL/ip"
	is "$output" "$TPA_SRC"$'\n'"http://***:***@127.0.0.1:$TPA"
	run -0 --separate-stderr pw fetch --cacert "$ORIGIN_CA" -w '%{proxy}' "$ORIGIN_TLS_URL/ip"
	is "$output" "$TPA_SRC"$'\n'"http://***:***@127.0.0.1:$TPA"
	[[ $(pw pool ls --json) != *hunter2* ]]
}

# ------------------------------------------------------------- timeouts

@test "timeout: a proxy that accepts and never answers is the proxy's; the next answers" {
	add "$BLACKHOLE" "$T1"
	run -0 --separate-stderr pw fetch -v -m 1 --connect-timeout 1 \
	    -w '%{proxy} %{attempts}' "$ORIGIN_URL/ip"
	is "$output" "$SRC1"$'\n'"$T1 2"
	like "$stderr" "*pw: fetch: attempt 1 via $BLACKHOLE: proxy failed: Operation timed out after * milliseconds with 0 bytes received*"
	is "$(stats 1)" "1 1 0 1 1"
	# A tunnel that never opens, a SOCKS handshake that never ends.
	run -4 --separate-stderr pw fetch -m 1 --cacert "$ORIGIN_CA" --proxy "$BLACKHOLE" \
	    "$ORIGIN_TLS_URL/ip"
	like "${stderr_lines[0]}" "pw: fetch: attempt 1 via $BLACKHOLE: proxy failed: *"
	run -4 --separate-stderr pw fetch -m 1 --proxy "socks5h://127.0.0.1:$BLACKHOLE_PORT" \
	    "$ORIGIN_URL/ip"
	like "${stderr_lines[0]}" "pw: fetch: attempt 1 via socks5h://127.0.0.1:$BLACKHOLE_PORT: proxy failed: *"
}

@test "timeout: a target that hangs behind a live proxy is the target's: exit 5, not penalised" {
	add "$T1" "$SOCKS"
	# A plain HTTP proxy: it still answers a request of its own.
	run -5 --separate-stderr pw fetch -m 1 -w '%{attempts} %{proxy}' "$ORIGIN_URL/hang"
	is "$output" "1 $T1"
	like "${stderr_lines[0]}" "pw: fetch: attempt 1 via $T1: target failed: Operation timed out after * milliseconds with 0 bytes received: the target did not answer in time (the proxy does)"
	# SOCKS, and CONNECT: the tunnel opened, then silence.
	run -5 --separate-stderr pw fetch -m 1 -w '%{attempts} %{proxy}' "$ORIGIN_URL/hang"
	is "$output" "1 $SOCKS_SHOWN"
	like "${stderr_lines[0]}" "pw: fetch: attempt 1 via $SOCKS_SHOWN: target failed: Operation timed out after *"
	run -5 --separate-stderr pw fetch -m 1 --cacert "$ORIGIN_CA" -w '%{attempts} %{proxy}' \
	    "$ORIGIN_TLS_URL/hang"
	is "$output" "1 $T1"
	like "${stderr_lines[0]}" "pw: fetch: attempt 1 via $T1: target failed: Operation timed out after *"
	is "$(stats 1)" "2 2 0 0 0"
	is "$(stats 2)" "1 1 0 0 0"
}

@test "timeout: /slow under the limit arrives" {
	add "$T1"
	run -0 pw fetch -m 2 -w '%{time_total}' "$ORIGIN_URL/slow/300"
	is "${lines[0]}" "slow 300"
	awk -v t="${lines[1]}" 'BEGIN { exit !(t >= 0.3 && t < 2) }'
}

# -------------------------------------------------------- classification
# Each way an attempt fails, and whose fault it is.

@test "classify: connection refused by the proxy: the proxy's" {
	run -4 --separate-stderr pw fetch -w '%{attempts}' --proxy "$REFUSED" "$ORIGIN_URL/ip"
	is "$output" 1
	like "${stderr_lines[0]}" "pw: fetch: attempt 1 via $REFUSED: proxy failed: Failed to connect to *"
	run -4 --separate-stderr pw fetch --proxy "socks5h://127.0.0.1:$REFUSED_PORT" "$ORIGIN_URL/ip"
	like "${stderr_lines[0]}" "pw: fetch: attempt 1 via socks5h://127.0.0.1:$REFUSED_PORT: proxy failed: Failed to connect to *"
}

@test "classify: proxy auth 407 for a plain-http target: the proxy's, and the next answers" {
	add "http://127.0.0.1:$TPA" "$T1"
	run -0 --separate-stderr pw fetch -v -w '%{http_code} %{proxy} %{attempts}' "$ORIGIN_URL/ip"
	is "$output" "$SRC1"$'\n'"200 $T1 2"
	[[ $stderr == *"pw: fetch: attempt 1 via http://127.0.0.1:$TPA: proxy failed: proxy authentication failed (HTTP 407)"* ]]
	is "$(stats 1)" "1 1 0 1 1"
	# Nothing of the 407 page was written.
	run -4 --separate-stderr pw fetch -i --proxy "http://127.0.0.1:$TPA" "$ORIGIN_URL/ip"
	is "$output" ""
	is "${stderr_lines[0]}" "pw: fetch: attempt 1 via http://127.0.0.1:$TPA: proxy failed: proxy authentication failed (HTTP 407)"
}

@test "classify: proxy auth 407 for an https target (CONNECT): the proxy's, and the next answers" {
	add "http://127.0.0.1:$TPA" "$T1"
	run -0 --separate-stderr pw fetch -v --cacert "$ORIGIN_CA" \
	    -w '%{http_code} %{proxy} %{attempts}' "$ORIGIN_TLS_URL/ip"
	is "$output" "$SRC1"$'\n'"200 $T1 2"
	[[ $stderr == *"pw: fetch: attempt 1 via http://127.0.0.1:$TPA: proxy failed: CONNECT tunnel failed, response 407"* ]]
	is "$(stats 1)" "1 1 0 1 1"
}

@test "classify: a CONNECT refused with 4xx is the proxy's (tinyproxy: 401 bad password, 403 port)" {
	run -4 --separate-stderr pw fetch --cacert "$ORIGIN_CA" \
	    --proxy "http://bob:wrong@127.0.0.1:$TPA" "$ORIGIN_TLS_URL/ip"
	is "${stderr_lines[0]}" "pw: fetch: attempt 1 via http://***:***@127.0.0.1:$TPA: proxy failed: CONNECT tunnel failed, response 401"
	# Only ORIGIN_TLS_PORT is a ConnectPort.
	run -4 --separate-stderr pw fetch --proxy "$T1" "https://127.0.0.1:$ORIGIN_PORT/ip"
	is "${stderr_lines[0]}" "pw: fetch: attempt 1 via $T1: proxy failed: CONNECT tunnel failed, response 403"
}

@test "classify: SOCKS: a rejected login is the proxy's; a target it cannot reach, the target's" {
	run -4 --separate-stderr pw fetch --proxy "socks5h://alice:nope@127.0.0.1:$MS" "$ORIGIN_URL/ip"
	is "${stderr_lines[0]}" "pw: fetch: attempt 1 via $SOCKS_SHOWN: proxy failed: User was rejected by the SOCKS5 server (1 2)."
	run -4 --separate-stderr pw fetch --proxy "socks5h://127.0.0.1:$MS" "$ORIGIN_URL/ip"
	is "${stderr_lines[0]}" "pw: fetch: attempt 1 via socks5h://127.0.0.1:$MS: proxy failed: No authentication method was acceptable."
	# socks5 resolves here: localhost, then a refused port behind the proxy.
	run -5 --separate-stderr pw fetch --proxy "socks5://alice:s3cret%20pw@127.0.0.1:$MS" \
	    "http://localhost:$REFUSED_PORT/"
	like "${stderr_lines[0]}" "pw: fetch: attempt 1 via socks5://***:***@127.0.0.1:$MS: target failed: *: the proxy could not reach the target"
}

@test "classify: TLS to the proxy: an https:// proxy that speaks plain HTTP, or does not verify, is the proxy's" {
	add "https://127.0.0.1:$TP1" "$T2"
	run -0 --separate-stderr pw fetch -v --connect-timeout 1 -w '%{proxy} %{attempts}' \
	    "$ORIGIN_URL/ip"
	is "$output" "$SRC2"$'\n'"$T2 2"
	like "$stderr" "*pw: fetch: attempt 1 via https://127.0.0.1:$TP1: proxy failed: *"
	is "$(stats 1)" "1 1 0 1 1"
	# Reached over TLS from a plain-HTTP fetch, which sets OpenSSL up
	# without its messages: they are there when TLS comes.
	pw -q pool rm 1 2
	add "https://127.0.0.1:$ORIGIN_PORT"
	run -4 --separate-stderr pw fetch "$ORIGIN_URL/ip"
	like "${stderr_lines[0]}" "pw: fetch: attempt 1 via https://127.0.0.1:$ORIGIN_PORT: proxy failed: *error:*:SSL routines::wrong version number: TLS to the proxy failed"
	# The TLS origin as an https proxy: its certificate, unverified.
	for url in "$ORIGIN_URL/ip" "$ORIGIN_TLS_URL/ip"; do
		run -4 --separate-stderr pw fetch --proxy "https://127.0.0.1:$ORIGIN_TLS_PORT" "$url"
		is "${stderr_lines[0]}" "pw: fetch: attempt 1 via https://127.0.0.1:$ORIGIN_TLS_PORT: proxy failed: SSL certificate problem: unable to get local issuer certificate: TLS to the proxy failed"
	done
}

@test "classify: target 5xx: exit 0, not penalised; with --retry-on 503, the proxy's, and failover" {
	add "$T1" "$T2"
	run -0 pw fetch -w '%{http_code} %{attempts}' "$ORIGIN_URL/status/503"
	is "$output" "status 503"$'\n'"503 1"
	is "$(stats 1)" "1 1 1 0 0"
	run -4 --separate-stderr pw fetch --retry-on 429,503 -w '%{http_code} %{attempts}' \
	    "$ORIGIN_URL/status/503"
	is "$output" "000 2"
	is "$stderr" "$(lines \
	    "pw: fetch: attempt 1 via $T2: proxy failed: HTTP 503 (retry-on)" \
	    "pw: fetch: attempt 2 via $T1: proxy failed: HTTP 503 (retry-on)" \
	    "pw: fetch: $ORIGIN_URL/status/503: every proxy tried failed (2 attempts)")"
	is "$(stats 1)" "2 2 1 1 1"
	is "$(stats 2)" "1 1 0 1 1"
	# A status not listed is the response.
	run -0 pw fetch --retry-on 429 -w '%{http_code}' "$ORIGIN_URL/status/503"
	is "$output" "status 503"$'\n'503
}

@test "classify: the target's name does not resolve through socks5h: the target's" {
	# Only where the resolver is glibc's files+dns, which refuses BADNAME
	# without a query; another resolver might ask the network.
	grep -Eq '^hosts:[[:space:]]+files[[:space:]]+dns[[:space:]]*$' /etc/nsswitch.conf ||
	    skip "hosts: not 'files dns'"
	add "$SOCKS" "$T1"
	run -5 --separate-stderr pw fetch -w '%{attempts} %{proxy}' "http://$BADNAME/"
	is "$output" "1 $SOCKS_SHOWN"
	is "${stderr_lines[0]}" "pw: fetch: attempt 1 via $SOCKS_SHOWN: target failed: Can't complete SOCKS5 connection to $BADNAME. (1): the proxy could not resolve or reach the target"
	is "$(stats 1)" "1 1 0 0 0"
	# socks5 resolves it here, and cannot: the target's as well.
	run -5 --separate-stderr pw fetch --proxy "socks5://alice:s3cret%20pw@127.0.0.1:$MS" \
	    "http://$BADNAME/"
	is "${stderr_lines[0]}" "pw: fetch: attempt 1 via socks5://***:***@127.0.0.1:$MS: target failed: Could not resolve host: $BADNAME: the target's name does not resolve"
}

@test "classify: something that is no HTTP proxy at an http:// URL is the proxy's" {
	run -4 --separate-stderr pw fetch -m 1 --proxy "http://127.0.0.1:$MS" "$ORIGIN_URL/ip"
	is "${stderr_lines[0]}" "pw: fetch: attempt 1 via http://127.0.0.1:$MS: proxy failed: Received HTTP/0.9 when not allowed"
}

# ---------------------------------------------------------------- --json

@test "--json: status, headers, a base64 body, the proxy, attempts with errors, elapsed" {
	add "$REFUSED" "$T1"
	run -0 --separate-stderr pw fetch --json "$ORIGIN_URL/bytes/256"
	is "$stderr" ""
	doc=$output
	is "$(json_get status headers.content-length body_encoding proxy proxy_id <<<"$doc")" \
	    "$(lines 200 256 base64 "$T1" 2)"
	is "$(json_get body <<<"$doc" | base64 -d | od -An -tx1)" "$(origin_bytes 256 | od -An -tx1)"
	# Text only when a strict UTF-8 decoder would take it.
	run -0 pw fetch --json "$ORIGIN_URL/hex/636166c3a9"
	is "$(json_get body body_encoding <<<"$output")" "$(lines café text)"
	run -0 pw fetch --json "$ORIGIN_URL/hex/636166eda080"
	is "$(json_get body_encoding <<<"$output")" base64
	is "$(json_get body <<<"$output" | base64 -d | od -An -tx1 | tr -d ' \n')" 636166eda080
	is "$(json_get attempts.0.proxy attempts.0.proxy_id attempts.0.failure attempts.0.status \
	    attempts.1.failure attempts.1.error attempts.1.status <<<"$doc")" \
	    "$(lines "$REFUSED" 1 proxy 0 none null 200)"
	like "$(json_get attempts.0.error <<<"$doc")" "Failed to connect to 127.0.0.1 port $REFUSED_PORT after * ms: Couldn't connect to server"
	/usr/bin/python3 -c '
import json, sys
d = json.loads(sys.argv[1])
assert sorted(d) == ["attempts", "body", "body_encoding", "elapsed_ms", "headers",
    "proxy", "proxy_id", "status"], sorted(d)
assert len(d["attempts"]) == 2
assert abs(d["elapsed_ms"] - sum(a["ms"] for a in d["attempts"])) < 0.2
assert all(a["ms"] >= 0 for a in d["attempts"])' "$doc"
	# A text body stays text.
	run -0 pw fetch --json -d 'a=1' "$ORIGIN_URL/echo"
	is "$(json_get body_encoding <<<"$output")" text
	is "$(json_get body <<<"$output" | json_get method body)" "$(lines POST a=1)"
}

@test "--json: a repeated header is one name with the values joined; a byte that is no UTF-8 is U+FFFD" {
	# Through microsocks: tinyproxy keeps only one of a repeated header.
	run -0 --separate-stderr pw fetch --json \
	    --proxy "socks5://alice:s3cret%20pw@127.0.0.1:$MS" \
	    "$ORIGIN_URL/headers?Set-Cookie=a%3D1&X-Name=caf%E9&Set-Cookie=b%3D2"
	is "$(grep -o '"set-cookie"' <<<"$output" | wc -l)" 1
	is "$(json_get headers.set-cookie headers.x-name <<<"$output")" \
	    "$(lines 'a=1, b=2' $'caf\xef\xbf\xbd')"
}

@test "--json: printed when the fetch fails too, with the attempts" {
	add "$REFUSED"
	run -4 --separate-stderr pw fetch --json "$ORIGIN_URL/ip"
	is "$(json_get status proxy proxy_id attempts.0.failure <<<"$output")" \
	    "$(lines 0 null 0 proxy)"
	is "${stderr_lines[1]}" "pw: fetch: $ORIGIN_URL/ip: every proxy tried failed (1 attempt)"
}

# ------------------------------------------------------- curl's options

@test "-i writes the headers before the body; -I makes a HEAD request" {
	add "$T1"
	run -0 pw fetch -i "$ORIGIN_URL/status/201"
	is "${lines[0]}" $'HTTP/1.1 201 Created\r'
	[[ $output == *$'\r\nVia: 1.1 tinyproxy-'"$TP1"* ]]
	[[ $output == *$'\r\n\r\nstatus 201' ]]
	run -0 pw fetch -I "$ORIGIN_URL/bytes/5"
	is "${lines[0]}" $'HTTP/1.1 200 OK\r'
	[[ $output == *$'\r\nContent-Length: 5\r\n'* ]]
	[[ $output == *$'\r\n\r\n' ]] || [[ $output == *$'\r' ]]
	run -0 pw fetch -I -X GET -o /dev/null -w '%{size_download}' "$ORIGIN_URL/bytes/5"
	is "$output" 0
}

@test "-o writes the body to a file, stdout empty; -s keeps failed attempts quiet" {
	add "$REFUSED" "$T1"
	run -0 --separate-stderr pw fetch -v -s -o "$W/ip" "$ORIGIN_URL/ip"
	is "$output" ""
	is "$(cat "$W/ip")" "$SRC1"
	[[ $stderr != *attempt* ]]
	run -0 pw fetch -o - "$ORIGIN_URL/ip"
	is "$output" "$SRC1"
	pw -q pool rm 2
	run -4 --separate-stderr pw fetch -s "$ORIGIN_URL/ip"
	is "$stderr" "pw: fetch: $ORIGIN_URL/ip: every proxy tried failed (1 attempt)"
}

@test "-L follows /redirect/3; --max-redirs 1 stops it: the target's error" {
	add "$T1"
	run -0 pw fetch -L -o "$W/r" -w '%{http_code} %{num_redirects} %{url_effective}' \
	    "$ORIGIN_URL/redirect/3"
	is "$output" "200 3 $ORIGIN_URL/redirect/0"
	is "$(json_get path <"$W/r")" /redirect/0
	run -0 pw fetch -o /dev/null -w '%{http_code} %{num_redirects}' "$ORIGIN_URL/redirect/3"
	is "$output" "302 0"
	# As curl: over --max-redirs is exit status 47, the target's failure.
	run -47 --separate-stderr pw fetch -L --max-redirs 1 -o /dev/null \
	    -w '%{http_code} %{num_redirects} %{attempts} %{exitcode}' "$ORIGIN_URL/redirect/3"
	is "$output" "302 1 1 47"
	is "$stderr" "$(lines \
	    "pw: fetch: attempt 1 via $T1: target failed: Maximum (1) redirects followed" \
	    "pw: fetch: $ORIGIN_URL/redirect/3: Maximum (1) redirects followed")"
	is "$(stats 1)" "3 3 2 0 0"
	run -47 --separate-stderr pw fetch -s -L --max-redirs 0 "$ORIGIN_URL/redirect/1"
	is "$output" ""
	is "$stderr" "pw: fetch: $ORIGIN_URL/redirect/1: Maximum (0) redirects followed"
}

@test "-i with -L: every response's headers in turn; over --max-redirs, those that came" {
	add "$T1"
	# want STATUS CTYPE LOCATION LENGTH: a header block, as a glob, to H.
	H=
	want() {
		H+="HTTP/1.1 $1"$'\r\n'"Via: 1.1 tinyproxy-$TP1 (tinyproxy/*)"$'\r\n'
		H+="Server: pw-origin"$'\r\n'"Date: *"$'\r\n'"Content-Type: $2"$'\r\n'
		[ -z "$3" ] || H+="Location: $3"$'\r\n'
		H+="Content-Length: $4"$'\r\n\r\n'
	}
	pw fetch -i -L "$ORIGIN_URL/redirect/2" >"$W/out"
	want '302 Found' text/plain /redirect/1 24
	want '302 Found' text/plain /redirect/0 24
	want '200 OK' application/json '' '*'
	like "$(cat "$W/out")" "$H"'{*"path": "/redirect/0"*}'
	# The headers of the two responses libcurl took, then the error.
	run -47 --separate-stderr pw fetch -i -L --max-redirs 1 -o "$W/h" \
	    "$ORIGIN_URL/redirect/3"
	H=
	want '302 Found' text/plain /redirect/2 24
	want '302 Found' text/plain /redirect/1 24
	like "$(cat "$W/h"; echo .)" "$H."
	is "$output" ""
	is "${stderr_lines[1]}" "pw: fetch: $ORIGIN_URL/redirect/3: Maximum (1) redirects followed"
	# On stdout alike (bats drops the last newline).
	run -47 --separate-stderr pw fetch -i -L --max-redirs 1 "$ORIGIN_URL/redirect/3"
	like "$output"$'\n' "$H"
	# Without -i, nothing: the -o file is not made.
	run -47 --separate-stderr pw fetch -L --max-redirs 1 -o "$W/none" "$ORIGIN_URL/redirect/3"
	is "$output" ""
	[ ! -e "$W/none" ]
}

@test "-w: every variable, escapes, %%" {
	add "$REFUSED" "$T1"
	run -0 pw fetch -o /dev/null -w '%{http_code}|%{response_code}|%{proxy}|%{proxy_id}|%{attempts}|%{size_download}|%{url_effective}|%{content_type}|%{num_redirects}|%{exitcode}|%%|\t|\\|\x|%{time_total}|%{time_connect}|%{time_starttransfer}\n' \
	    "$ORIGIN_URL/bytes/1000"
	IFS='|' read -r -a f <<<"$output"
	# As curl: an escape other than \n, \r and \t stays as written.
	is "$(lines "${f[@]:0:14}")" "$(lines 200 200 "$T1" 2 2 1000 \
	    "$ORIGIN_URL/bytes/1000" application/octet-stream 0 0 % $'\t' '\\' '\x')"
	for t in "${f[@]:14:3}"; do
		[[ $t =~ ^[0-9]+\.[0-9]{6}$ ]]
	done
}

# le A B: A <= B, as decimal numbers.
le() {
	awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 <= b + 0) }' ||
	    { echo "not $1 <= $2"; return 1; }
}

# us SECONDS: -w's "S.UUUUUU" in microseconds.
us() {
	echo $((${1%.*} * 1000000 + 10#${1#*.}))
}

@test "-w: curl's scheme, http_version, method, addresses, ports, connects; names in any case" {
	add "$T1"
	run -0 --separate-stderr pw fetch -o /dev/null -w '%{scheme}|%{http_version}|%{method}|%{remote_ip}|%{remote_port}|%{local_ip}|%{local_port}|%{num_connects}|%{size_upload}|%{speed_upload}|%{errormsg}|%{HTTP_Code}|%{Num_Redirects}' \
	    "$ORIGIN_URL/bytes/1000"
	is "$stderr" ""
	IFS='|' read -r -a f <<<"$output"
	# libcurl's name for the scheme (upper case before curl 8).
	is "${f[0],,}" http
	# As curl through a proxy: the address and port are the proxy's.
	is "$(lines "${f[@]:1:5}" "${f[@]:7}")" "$(lines 1.1 GET 127.0.0.1 "$TP1" \
	    127.0.0.1 1 0 0 '' 200 0)"
	[[ ${f[6]} =~ ^[1-9][0-9]*$ ]]
	[ "${f[6]}" -le 65535 ]
	[ "${f[6]}" != "$TP1" ]
	# The method libcurl sent, and the body's size.
	run -0 pw fetch -o /dev/null -d 'a=1&b=2' -w '%{method} %{size_upload}' "$ORIGIN_URL/echo"
	is "$output" "POST 7"
	run -0 pw fetch -o /dev/null -X PUT --data-binary 12345 -w '%{method} %{size_upload}' \
	    "$ORIGIN_URL/echo"
	is "$output" "PUT 5"
	run -0 pw fetch -I -w '%{method} %{size_upload} %{size_download}' "$ORIGIN_URL/bytes/5"
	is "${lines[-1]}" "HEAD 0 0"
	# -L: tinyproxy closes after each answer; a CONNECT tunnel stays.
	run -0 pw fetch -L -o /dev/null -w '%{num_redirects} %{num_connects} %{method}' \
	    "$ORIGIN_URL/redirect/3"
	is "$output" "3 4 GET"
	run -0 pw fetch -L --cacert "$ORIGIN_CA" -o /dev/null \
	    -w '%{num_redirects} %{num_connects} %{method}' "$ORIGIN_TLS_URL/redirect/3"
	is "$output" "3 1 GET"
	# Through SOCKS to https: the SOCKS server's port, TLS 1.1 inside.
	add "$SOCKS"
	run -0 --separate-stderr pw fetch --strategy least-used --cacert "$ORIGIN_CA" -o /dev/null \
	    -w '%{scheme} %{remote_ip} %{remote_port} %{num_connects} %{http_version} %{proxy}' \
	    "$ORIGIN_TLS_URL/ip"
	is "${output,,}" "https 127.0.0.1 $MS 1 1.1 ${SOCKS_SHOWN,,}"
}

@test "-w: size_header and size_download are what -i writes; size_request is curl's for the same request" {
	add "$T1"
	for args in "" "-L" "-d a=1&b=2"; do
		url=$ORIGIN_URL/bytes/1000
		[ "$args" != -L ] || url=$ORIGIN_URL/redirect/2
		# shellcheck disable=SC2086
		run -0 --separate-stderr pw fetch -i -A t/1 $args -o "$W/out" \
		    -w '%{size_header} %{size_download} %{size_request}' "$url"
		read -r sh sd sr <<<"$output"
		[ "$sh" -gt 100 ]
		[ "$sd" -gt 0 ]
		is "$(stat -c %s "$W/out")" $((sh + sd))
		# The headers end where the body begins.
		is "$(head -c "$sh" "$W/out" | tail -c 4 | od -An -c | tr -d ' ')" '\r\n\r\n'
		[ "$args" = -L ] || is "$sd" 1000
		# The request's bytes, as curl counts those of the same request.
		# Not with -L: tinyproxy closes each connection after its
		# response, and a libcurl that sent the next request on it
		# before it saw the close sends it again (and counts it twice).
		# shellcheck disable=SC2086
		[ "$args" = -L ] ||
		    is "$sr" "$(curl -s -o /dev/null -x "$T1" -A t/1 $args -w '%{size_request}' "$url")"
	done
	# -L: the three requests (of the same size) together, or more
	# (one sent again, as above).
	run -0 pw fetch -L -A t/1 -o /dev/null -w '%{size_request}' "$ORIGIN_URL/redirect/2"
	sr=$output
	run -0 pw fetch -A t/1 -o /dev/null -w '%{size_request}' "$ORIGIN_URL/redirect/0"
	[ "$sr" -ge $((3 * output)) ]
	is $((sr % output)) 0
}

@test "-w: time_* to the microsecond, in order; speed_* are size over time_total, as libcurl's" {
	add "$T1"
	run -0 --separate-stderr pw fetch -o /dev/null -d 'x=1234567' -w '%{time_namelookup} %{time_connect} %{time_appconnect} %{time_pretransfer} %{time_starttransfer} %{time_total} %{time_redirect} %{speed_download} %{size_download} %{speed_upload} %{size_upload}' \
	    "$ORIGIN_URL/bytes/100000"
	read -r tn tc ta tp ts tt tr sd size su usize <<<"$output"
	for t in "$tn" "$tc" "$ta" "$tp" "$ts" "$tt" "$tr"; do
		[[ $t =~ ^[0-9]+\.[0-9]{6}$ ]]
	done
	# No TLS, no redirect.
	is "$ta $tr" "0.000000 0.000000"
	le "$tn" "$tc"
	le "$tc" "$tp"
	le "$tp" "$ts"
	le "$ts" "$tt"
	is "$size $usize" "100000 9"
	is "$sd $su" "$((size * 1000000 / $(us "$tt"))) $((usize * 1000000 / $(us "$tt")))"
	# TLS through a CONNECT tunnel: after the connect, before the request.
	run -0 --separate-stderr pw fetch --cacert "$ORIGIN_CA" -o /dev/null \
	    -w '%{time_connect} %{time_appconnect} %{time_pretransfer}' "$ORIGIN_TLS_URL/ip"
	read -r tc ta tp <<<"$output"
	[ "$ta" != 0.000000 ]
	le "$tc" "$ta"
	le "$ta" "$tp"
	# The redirects' time, before the last request began.
	run -0 --separate-stderr pw fetch -L -o /dev/null \
	    -w '%{time_redirect} %{time_total}' "$ORIGIN_URL/redirect/2?delay=100"
	read -r tr tt <<<"$output"
	le 0.2 "$tr"
	le "$tr" "$tt"
}

@test "-w: %header{NAME}: the first field of that name in the last response, trimmed; none: empty" {
	# SOCKS: the origin's headers as they were sent.
	add "$SOCKS"
	run -0 --separate-stderr pw fetch -o /dev/null \
	    -w '[%header{x-a}][%header{X-B}][%header{none}][%header{CONTENT-TYPE}][%header{}][%header{x-a]' \
	    "$ORIGIN_URL/headers?X-A=one&x-a=two&X-B=%20sp%09"
	is "$output" "[one][sp][][application/json][][%header{x-a]"
	# -L: the final response's, not a redirect's.
	run -0 pw fetch -L -o /dev/null -w '[%header{location}][%header{content-type}]' \
	    "$ORIGIN_URL/redirect/2"
	is "$output" "[][application/json]"
	# Over --max-redirs: the last redirect's.
	run -47 --separate-stderr pw fetch -L --max-redirs 1 -o /dev/null \
	    -w '%header{location}|%{errormsg}|%{exitcode}' "$ORIGIN_URL/redirect/3"
	is "$output" "/redirect/1|Maximum (1) redirects followed|47"
	# No response: nothing.
	run -4 --separate-stderr pw fetch -x "$REFUSED" -w '[%header{content-type}]' "$ORIGIN_URL/ip"
	is "$output" "[]"
}

@test "-w: %{stderr} and %{stdout} switch where the rest goes" {
	add "$T1"
	run -0 --separate-stderr pw fetch -o /dev/null -w '1%{stderr}2\n%{http_code}%{stdout}3\n' \
	    "$ORIGIN_URL/ip"
	is "$output" 13
	is "$stderr" "$(lines 2 200)"
}

@test "-w: with failover, curl's variables are the last attempt's; errormsg is why it failed" {
	add "$REFUSED" "$T1"
	run -0 --separate-stderr pw fetch -v -o /dev/null \
	    -w '%{attempts} %{remote_port} %{num_connects} [%{errormsg}] %{exitcode}' "$ORIGIN_URL/ip"
	is "$output" "2 $TP1 1 [] 0"
	# Every attempt failed: the last one's address, headers and error.
	pw -q pool rm 1
	add "$T2"
	run -4 --separate-stderr pw fetch --retry-on 503 \
	    -w '%{attempts} %{remote_port}|%header{via}|%{errormsg}|%{exitcode}' \
	    "$ORIGIN_URL/status/503"
	last=${stderr_lines[1]#*attempt 2 via http://127.0.0.1:}
	last=${last%%:*}
	[ "$last" = "$TP1" ] || [ "$last" = "$TP2" ]
	like "$output" "2 $last|1.1 tinyproxy-$last (tinyproxy/*)|HTTP 503 (retry-on)|4"
	run -4 --separate-stderr pw fetch -x "$REFUSED" -w '%{errormsg}' "$ORIGIN_URL/ip"
	like "$output" "Failed to connect to 127.0.0.1 port $REFUSED_PORT after * ms: *"
	# No proxy tried: what pw says.
	pw -q pool rm 2 3
	run -3 --separate-stderr pw fetch -w '%{attempts} %{errormsg}' "$ORIGIN_URL/ip"
	is "$output" "0 ${stderr#pw: fetch: }"
	[[ $output == "0 no eligible proxy"* ]]
}

@test "-w: %{json}: every variable in one object, by name" {
	add "$T1"
	run -0 --separate-stderr pw fetch -o /dev/null -w '%{json}' "$ORIGIN_URL/bytes/1000"
	is "$(jq -r 'keys_unsorted | join(" ")' <<<"$output")" "attempts content_type errormsg exitcode http_code http_version local_ip local_port method num_connects num_redirects proxy proxy_id remote_ip remote_port response_code scheme size_download size_header size_request size_upload speed_download speed_upload time_appconnect time_connect time_namelookup time_pretransfer time_redirect time_starttransfer time_total url_effective"
	is "$(jq -c '[.attempts, .content_type, .errormsg, .exitcode, .http_code, .http_version, .method, .proxy, .proxy_id, .remote_ip, .remote_port, .response_code, .size_download, .url_effective, (.time_total | type), (.local_port | type)]' <<<"$output")" \
	    "[1,\"application/octet-stream\",null,0,200,\"1.1\",\"GET\",\"$T1\",1,\"127.0.0.1\",$TP1,200,1000,\"$ORIGIN_URL/bytes/1000\",\"number\",\"number\"]"
	# Times as -w writes them: numbers to the microsecond.
	[[ $output =~ \"time_appconnect\":0\.000000, ]]
	# A fetch that failed: the error; no proxy answered.
	run -4 --separate-stderr pw fetch -x "$REFUSED" -w '%{json}\n' "$ORIGIN_URL/ip"
	is "$(jq -c '[.exitcode, .http_code, .proxy, (.errormsg | startswith("Failed to connect"))]' <<<"$output")" \
	    "[4,0,null,true]"
}

@test "-w: no password in clear: url_effective masked, proxies too, unless --show-secrets" {
	add "$SOCKS"
	url="http://u:t0psecret@127.0.0.1:$ORIGIN_PORT"
	run -0 --separate-stderr pw fetch -L -o /dev/null \
	    -w '%{url_effective} %{proxy}\n%{json}' "$url/redirect/1"
	is "${lines[0]}" "http://***:***@127.0.0.1:$ORIGIN_PORT/redirect/0 $SOCKS_SHOWN"
	is "$(jq -r '.url_effective, .proxy' <<<"${lines[1]}")" \
	    "$(lines "http://***:***@127.0.0.1:$ORIGIN_PORT/redirect/0" "$SOCKS_SHOWN")"
	[[ $output$stderr != *t0psecret* && $output$stderr != *s3cret* ]]
	run -0 --separate-stderr pw --show-secrets fetch -o /dev/null \
	    -w '%{url_effective} %{proxy}' "$url/ip"
	is "$output" "$url/ip $SOCKS"
}

@test "-w: an unknown variable is a usage error: exit 2, nothing fetched, state unchanged" {
	add "$T1"
	before=$(state_sum)
	run -2 --separate-stderr pw fetch -w '%{http_code} %{nope}' "$ORIGIN_URL/ip"
	is "$stderr" "pw: fetch: -w: unknown variable '%{nope}'"
	is "$output" ""
	unchanged
}

@test "--compressed: asks for gzip and writes the body decoded" {
	add "$T1"
	run -0 pw fetch --compressed "$ORIGIN_URL/gzip"
	is "$(json_get gzipped method <<<"$output")" "$(lines true GET)"
	run -0 pw fetch "$ORIGIN_URL/gzip"
	is "$(json_get gzipped <<<"$output")" false
}

@test "--proxy: that proxy, not the pool: one attempt, nothing recorded" {
	add "$T1" "$T2"
	before=$(state_sum)
	run -0 --separate-stderr pw fetch --proxy "$T3" -w '%{proxy} %{proxy_id} %{attempts}' \
	    "$ORIGIN_URL/ip"
	is "$output" "$SRC3"$'\n'"$T3 0 1"
	run -0 pw fetch -x "$SOCKS" -w '%{proxy}' "$ORIGIN_URL/ip"
	is "$output" "$MS_SRC"$'\n'"$SOCKS_SHOWN"
	run -4 --separate-stderr pw fetch --retries 3 -x "$REFUSED" -w '%{attempts}' "$ORIGIN_URL/ip"
	is "$output" 1
	unchanged
	# An empty pool is no matter.
	pw -q pool clear --yes
	run -0 pw fetch -x "$T1" "$ORIGIN_URL/ip"
	is "$output" "$SRC1"
}

@test "--session: one proxy for every fetch of a session" {
	add "$T1" "$T2" "$T3"
	run -0 pw fetch --session job1 "$ORIGIN_URL/ip"
	first=$output
	for n in 1 2 3 4; do
		run -0 pw fetch --session job1 "$ORIGIN_URL/ip"
		is "$output" "$first"
	done
	run -0 pw pool sessions
	[[ $output == *job1* ]]
}

@test "--country: only proxies of that country; none: exit 3" {
	pw -q pool add --country DE "$T1"
	pw -q pool add --country FR "$T2" "$T3"
	for n in 1 2 3 4; do
		run -0 pw fetch --country fr "$ORIGIN_URL/ip"
		[ "$output" = "$SRC2" ] || [ "$output" = "$SRC3" ]
	done
	run -0 pw fetch --country DE "$ORIGIN_URL/ip"
	is "$output" "$SRC1"
	before=$(state_sum)
	run -3 --separate-stderr pw fetch --country US "$ORIGIN_URL/ip"
	like "$stderr" "pw: fetch: no eligible proxy*"
	unchanged
}

@test "--strategy: chooses by it; least-used goes to the one never used" {
	add "$T1" "$T2" "$T3"
	run -0 pw fetch --strategy round-robin "$ORIGIN_URL/ip"
	run -0 pw fetch --strategy round-robin "$ORIGIN_URL/ip"
	run -0 pw fetch --strategy least-used "$ORIGIN_URL/ip"
	is "$output" "$SRC3"
	before=$(state_sum)
	run -2 --separate-stderr pw fetch --strategy nope "$ORIGIN_URL/ip"
	like "$stderr" "pw: fetch: 'nope': unknown strategy*"
	unchanged
}

@test "keep-alive: -L over 3 redirects through one CONNECT tunnel" {
	start_tinyproxy
	add "$TINYPROXY_URL"
	log=$BATS_TEST_TMPDIR/peers/tinyproxy.$TINYPROXY_PORT.log
	run -0 pw fetch -L --cacert "$ORIGIN_CA" -o "$W/r" -w '%{num_redirects}' \
	    "$ORIGIN_TLS_URL/redirect/3"
	is "$output" 3
	is "$(json_get path client <"$W/r")" "$(lines /redirect/0 "$TINYPROXY_SRC")"
	is "$(grep -c 'Request (file descriptor [0-9]*): CONNECT ' "$log")" 1
}

# ------------------------------------------------------------- bad input

@test "fetch.rate_per_host: over the cap, --no-wait exits 75 and changes nothing; other hosts are free" {
	add "$T1"
	pw config set fetch.rate_per_host 2/1h
	pw fetch -s -o /dev/null "$ORIGIN_URL/ip"
	pw fetch -s -o /dev/null "$ORIGIN_URL/ip"
	before=$(state_sum)
	run -75 --separate-stderr pw fetch --no-wait "$ORIGIN_URL/ip"
	like "$stderr" "pw: fetch: 127.0.0.1: fetch.rate_per_host (2/1h) reached; the next request may go in *s"
	is "$output" ""
	unchanged
	is "$(stats 1)" "2 2 2 0 0"
	# The host is what counts: localhost is another one.
	pw fetch -s --no-wait -o /dev/null "http://localhost:$ORIGIN_PORT/ip"
	# 0 lifts the cap, for one command through the environment.
	PW_FETCH__RATE_PER_HOST=0 pw fetch -s --no-wait -o /dev/null "$ORIGIN_URL/ip"
}

@test "fetch.rate_per_host: held across processes; without --no-wait pw fetch waits its turn" {
	add "$T1"
	pw config set fetch.rate_per_host 3/1h
	for i in 1 2 3 4 5 6; do
		pw fetch -s --no-wait -o /dev/null "$ORIGIN_URL/ip" \
		    2>/dev/null & pids+=($!)
	done
	ok=0 busy=0
	for p in "${pids[@]}"; do
		if wait "$p"; then ok=$((ok + 1)); else
			[ $? -eq 75 ] && busy=$((busy + 1))
		fi
	done
	is "$ok $busy" "3 3"
	# A short window: the second request waits for it, then goes.
	pw config set fetch.rate_per_host 1/1s
	pw fetch -s -o /dev/null "$ORIGIN_URL/ip"
	run --separate-stderr pw -v fetch -s -o /dev/null "$ORIGIN_URL/ip"
	is "$status" 0
	like "$stderr" "*127.0.0.1: waiting *s for fetch.rate_per_host (1/1s)*"
}

@test "fetch.rate_per_proxy: a proxy over its cap is passed over; all over it: wait, or exit 75 with --no-wait" {
	add "$T1" "$T2" "$T3"
	pw config set fetch.rate_per_proxy 1/1h
	# Random would pick one twice in 78% of runs; the cap never lets it.
	for i in 1 2 3; do
		pw fetch -s --strategy random -o /dev/null -w '%{proxy_id}\n' "$ORIGIN_URL/ip"
	done >"$W/ids"
	is "$(sort -u "$W/ids" | tr '\n' ' ')" "1 2 3 "
	before=$(state_sum)
	run -75 --separate-stderr pw fetch --no-wait "$ORIGIN_URL/ip"
	like "$stderr" "pw: fetch: every eligible proxy has had its fetch.rate_per_proxy; the next request may go in *.* s"
	unchanged
	# A short window: the next one waits for it, then goes.
	pw config set fetch.rate_per_proxy 1/1s
	pw pool rm 2 3 >/dev/null
	pw fetch -s -o /dev/null "$ORIGIN_URL/ip"
	run --separate-stderr pw -v fetch -s -o /dev/null "$ORIGIN_URL/ip"
	is "$status" 0
	like "$stderr" "*waiting *s for fetch.rate_per_proxy*"
	# A sticky session keeps its proxy, and waits for it too.
	pw config set fetch.rate_per_proxy 1/1h
	add "$T2"
	pw fetch -s --session s1 -o /dev/null "$ORIGIN_URL/ip" || true
	run -75 --separate-stderr pw fetch --no-wait --session s1 "$ORIGIN_URL/ip"
	like "$stderr" "pw: fetch: the session's proxy has had its fetch.rate_per_proxy; *"
}

@test "-o: the file is made at the first byte; a fetch that fails leaves it as it was" {
	echo precious >"$W/keep"
	# No proxy (3), every proxy failed (4), -f on an error status (22).
	run -3 --separate-stderr pw fetch -o "$W/keep" "$ORIGIN_URL/ip"
	is "$(cat "$W/keep")" precious
	add "$REFUSED"
	run -4 --separate-stderr pw fetch -s -o "$W/keep" "$ORIGIN_URL/ip"
	is "$(cat "$W/keep")" precious
	add "$T1"
	run -22 --separate-stderr pw fetch -f -o "$W/keep" "$ORIGIN_URL/status/404"
	is "$(cat "$W/keep")" precious
	[ ! -e "$W/new" ]
	# An empty body that succeeded makes an empty file, as curl does.
	run -0 pw fetch -o "$W/new" "$ORIGIN_URL/status/204"
	[ -f "$W/new" ] && [ ! -s "$W/new" ]
	run -0 pw fetch -o "$W/keep" "$ORIGIN_URL/status/200"
	is "$(cat "$W/keep")" "status 200"
	# --json goes to the file too.
	run -0 pw fetch --json -o "$W/doc" "$ORIGIN_URL/status/200"
	is "$output" ""
	is "$(json_get status body <"$W/doc")" "$(lines 200 "status 200")"
}

@test "a reader that goes away is a write error, told; the attempt is recorded" {
	add "$T1"
	run --separate-stderr bash -c 'pw fetch "$1" | head -c 10 >/dev/null;
	    echo "${PIPESTATUS[0]}"' - "$ORIGIN_URL/bytes/10000000"
	is "$output" 1
	is "$stderr" "pw: fetch: cannot write output"
	is "$(stats 1)" "1 1 0 0 0"
	run -1 --separate-stderr pw fetch -o /dev/full \
	    -w '%{remote_port} %{size_download} %{exitcode} %{errormsg}' "$ORIGIN_URL/ip"
	is "$stderr" "pw: fetch: cannot write output"
	# -w still tells of the transfer that was cut short.
	is "$output" "$TP1 $((${#SRC1} + 1)) 1 cannot write output"
	is "$(stats 1)" "2 2 0 0 0"
}

@test "usage errors take no turn of fetch.rate_per_host; -w %{exitcode} is the exit status" {
	add "$T1"
	pw config set fetch.rate_per_host 1/1h
	before=$(state_sum)
	# (--no-wait: a turn taken would make the next one wait an hour.)
	run -2 --separate-stderr pw fetch --no-wait --proxy bogus://x "$ORIGIN_URL/ip"
	run -2 --separate-stderr pw fetch --no-wait --strategy nope "$ORIGIN_URL/ip"
	run -2 --separate-stderr pw fetch --no-wait --strategy sticky "$ORIGIN_URL/ip"
	is "$stderr" "pw: fetch: strategy sticky needs a session (--session ID)"
	for s in '' "$(printf 'a%.0s' {1..257})" $'a\nb'; do
		run -2 --separate-stderr pw fetch --no-wait --session "$s" \
		    "$ORIGIN_URL/ip"
		is "$stderr" "pw: fetch: session: want 1 to 256 bytes of text without control characters"
	done
	run -2 --separate-stderr pw fetch -I -d a=1 "$ORIGIN_URL/ip"
	is "$stderr" "pw: fetch: --head: a HEAD request sends no body (--data, --data-binary)"
	unchanged
	run -0 pw fetch -o /dev/null -w '%{exitcode}' "$ORIGIN_URL/ip"
	is "$output" 0
	run -75 --separate-stderr pw fetch --no-wait -w '%{exitcode}' "$ORIGIN_URL/ip"
	is "$output" 75
}

@test "bad input: one line on stderr, the documented exit code, the state file unchanged" {
	add "$T1"
	before=$(state_sum)
	U=$ORIGIN_URL/ip
	bad() {
		local code=$1 msg=$2
		shift 2
		run -"$code" --separate-stderr pw fetch "$@"
		is "$stderr" "pw: fetch: $msg"
		is "$output" ""
		unchanged
	}
	bad 2 "unknown option '--nope'" --nope "$U"
	bad 2 "missing argument (usage: pw fetch [options] URL)"
	bad 2 "unexpected argument '$U' (usage: pw fetch [options] URL)" "$U" "$U"
	bad 2 "'ftp://127.0.0.1/': want an http:// or https:// URL" ftp://127.0.0.1/
	bad 2 "'127.0.0.1/ip': want an http:// or https:// URL" 127.0.0.1/ip
	bad 2 "'http://127.0.0.1:99999/': bad URL: Port number was not a decimal number between 0 and 65535" \
	    http://127.0.0.1:99999/
	bad 2 "'http://[::1/': bad URL: Bad IPv6 address" 'http://[::1/'
	# a password in a refused URL is not repeated
	bad 2 "'ftp://***:***@127.0.0.1/': want an http:// or https:// URL" \
	    ftp://u:s3cret@127.0.0.1/
	bad 2 "'http://***:***@127.0.0.1:99999/': bad URL: Port number was not a decimal number between 0 and 65535" \
	    http://u:s3cret@127.0.0.1:99999/
	bad 2 "--retries: '0': want an integer from 1 to 100" --retries 0 "$U"
	bad 2 "--retries: 'x': want an integer from 1 to 100" --retries x "$U"
	bad 2 "--retry-on: 'junk': want HTTP statuses like 429,503" --retry-on junk "$U"
	bad 2 "--retry-on: '503,': want HTTP statuses like 429,503" --retry-on 503, "$U"
	bad 2 "--retry-on: '99': want HTTP statuses like 429,503" --retry-on 99 "$U"
	bad 2 "--max-time: 'junk': want seconds above 0" -m junk "$U"
	bad 2 "--max-time: '0': want seconds above 0" --max-time 0 "$U"
	bad 2 "--connect-timeout: '-1': want seconds above 0" --connect-timeout -1 "$U"
	bad 2 "--max-redirs: '-1': want an integer from 0 to 1000" --max-redirs -1 "$U"
	bad 2 "--country: 'XYZ': not an ISO 3166-1 alpha-2 country code" --country XYZ "$U"
	bad 2 "--proxy: 'bogus://x': unsupported scheme 'bogus' (use http, https, socks4, socks4a, socks5 or socks5h)" \
	    --proxy bogus://x "$U"
	bad 2 "-w: unknown variable '%{nope}'" -w '%{nope}' "$U"
	# A request is sent as given, so what would break it is refused.
	bad 2 "--request: 'BAD METHOD': want a method, a token of letters, digits and !#\$%&'*+-.^_\`|~" \
	    -X 'BAD METHOD' "$U"
	bad 2 "--request: '': want a method, a token of letters, digits and !#\$%&'*+-.^_\`|~" -X '' "$U"
	bad 2 "--request: 'GET / HTTP/1.1\r\nX-Injected:': want a method, a token of letters, digits and !#\$%&'*+-.^_\`|~" \
	    -X $'GET / HTTP/1.1\r\nX-Injected:' "$U"
	bad 2 "--header: 'no colon': want 'Name: value', 'Name:' or 'Name;' on one line" -H 'no colon' "$U"
	bad 2 "--header: 'Bad Name: x': want 'Name: value', 'Name:' or 'Name;' on one line" -H 'Bad Name: x' "$U"
	bad 2 "--header: 'X-A: 1\r\nX-B: 2': want 'Name: value', 'Name:' or 'Name;' on one line" \
	    -H $'X-A: 1\r\nX-B: 2' "$U"
	bad 2 "--user-agent: 'x\r\nX-Injected: 1': want one line" -A $'x\r\nX-Injected: 1' "$U"
	bad 2 "'$U\r\nX-Injected: 1': want a URL without control characters" "$U"$'\r\nX-Injected: 1'
	bad 2 "'http://***:***@127.0.0.1/a\x09b': want a URL without control characters" \
	    $'http://u:s3cret@127.0.0.1/a\tb'
	bad 2 "$W/none: No such file or directory" --data-binary @"$W/none" "$U"
	bad 2 "$W/none: No such file or directory" -d @"$W/none" "$U"
	bad 1 "$W/no/dir: No such file or directory" -o "$W/no/dir" "$U"
	is "$(stats 1)" "0 0 0 0 0"
}
