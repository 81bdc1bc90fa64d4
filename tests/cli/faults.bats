#!/usr/bin/env bats
# faults.bats -- pw when things go wrong around it: a state directory that
# fills up in the middle of a warm, a read-only file system, a state file
# cut in half or replaced by garbage, proxies and origins that misbehave
# (tests/helpers/badpeer.py), slow clients of pw serve and of its gateway,
# and pw serve killed with SIGKILL under load. Each fault gets a one-line
# error, the documented exit status, and leaves the state file sound.
#
# The file-system tests mount a small tmpfs: they need root, as CI has.

bats_require_minimum_version 1.5.0

load helper
load ../helpers/peers

setup_file() {
	start_origin
	start_tinyproxy
	export TP=$TINYPROXY_URL
}

teardown_file() {
	stop_peers
}

setup() {
	setup_pw
	export PW_SECRET_KEY=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
	MNT=
}

teardown() {
	stop_peers
	if [ -n "$MNT" ] && mountpoint -q "$MNT"; then
		umount "$MNT"
	fi
}

# small_fs SIZE: a tmpfs of SIZE at $MNT, the state file in it.
small_fs() {
	[ "$(id -u)" -eq 0 ] || {
		echo "faults.bats: the file-system tests need root (mount)" >&2
		return 1
	}
	MNT=$BATS_TEST_TMPDIR/mnt
	mkdir "$MNT"
	mount -t tmpfs -o "size=$1,mode=0700" tmpfs "$MNT"
	export PW_STATE=$MNT/state.db
}

# big_list N FILE: N proxies with credentials, one a line.
big_list() {
	/usr/bin/python3 -c 'import sys
for i in range(int(sys.argv[1])):
    print("http://user%d:pass%d@10.%d.%d.%d:%d" % (i, i, (i >> 16) & 255,
          (i >> 8) & 255, i & 255, 1024 + i % 60000))' "$1" >"$2"
}

integrity() {
	sqlite3 "${1:-$PW_STATE}" 'PRAGMA integrity_check'
}

count() {
	sqlite3 "$PW_STATE" 'SELECT count(*) FROM proxies'
}

# ------------------------------------------------------- a full disk

@test "disk full in the middle of cache warm: one line, exit 1, the batches before it kept, the file sound" {
	small_fs 2m
	pw -q pool add http://early.example:1
	pw -q config set cache.batch 500
	local before
	before=$(pw pool show 1 --json)
	big_list 200000 "$BATS_TEST_TMPDIR/big.txt"
	run -1 --separate-stderr pw cache warm "$BATS_TEST_TMPDIR/big.txt"
	is "$output" ""
	is "$stderr" "pw: $PW_STATE: disk full"
	# the file system is full, the database is not damaged
	[ "$(df --output=avail "$MNT" | tail -n 1 | tr -d " ")" -lt 128 ]
	is "$(integrity)" ok
	# what was there is there, and whole batches of the list
	is "$(pw pool show 1 --json)" "$before"
	local n
	n=$(count)
	[ "$n" -gt 1 ]
	[ "$n" -lt 200001 ]
	is $(((n - 1) % 500)) 0
	# pw goes on reading it, and says the same when it cannot write
	run -0 pw pool ls --plain
	is "${#lines[@]}" "$n"
	run -1 --separate-stderr pw cache warm "$BATS_TEST_TMPDIR/big.txt"
	is "$stderr" "pw: $PW_STATE: disk full"
	is "$(integrity)" ok
	is "$(count)" "$n"
	# room again: pw writes as before
	mount -o remount,size=8m "$MNT"
	head -n 100 "$BATS_TEST_TMPDIR/big.txt" >"$BATS_TEST_TMPDIR/small.txt"
	echo http://late.example:2 >>"$BATS_TEST_TMPDIR/small.txt"
	run -0 pw -q cache warm "$BATS_TEST_TMPDIR/small.txt"
	is "$(count)" $((n + 1))
	is "$(integrity)" ok
}

@test "disk full under pw serve: requests answer, the outcomes wait in memory and reach the file when there is room" {
	small_fs 2m
	pw -q pool add "$TP"
	start_serve -v --allow-private
	# fill the file system to the last byte beside the state file
	dd if=/dev/zero of="$MNT/filler" bs=64k 2>/dev/null || :
	local i
	for i in 1 2 3; do
		run -0 curl -sS -o /dev/null -w '%{http_code}' -X POST \
		    -H 'Content-Type: application/json' \
		    --data-binary "{\"url\": \"$ORIGIN_URL/ip\"}" \
		    "$SERVE_URL/api/v1/request"
		is "$output" 200
	done
	sleep 1.5
	kill -0 "$SERVE_PID"
	run -0 curl -sS "$SERVE_URL/api/v1/proxies/1"
	is "$(jq -r .data.stats.succeeded <<<"$output")" 3
	is "$(integrity)" ok
	grep -q "warning: serve: writing outcomes: $PW_STATE: disk full" \
	    "$SERVE_LOG"
	is "$(pw pool ls --json | jq '.[0].succeeded')" 0
	rm "$MNT/filler"
	eventually succeeded_is 1 3
	is "$(integrity)" ok
}

# succeeded_is ID N: for eventually.
succeeded_is() {
	[ "$(pw pool ls --json | jq ".[] | select(.id == $1) | .succeeded")" = "$2" ]
}

# ----------------------------------------------- a read-only file system

@test "a read-only file system: reading commands work, writing ones say so, exit 1, nothing changes" {
	small_fs 4m
	pw -q pool add http://a.example:1 "http://u:S3cr3t@b.example:2"
	pw -q config set fetch.retries 2
	mount -o remount,ro "$MNT"
	local sum args
	sum=$(state_sum)
	run -0 --separate-stderr pw pool ls --plain
	is "${#lines[@]}" 2
	is "$stderr" ""
	run -0 pw pool show 2
	run -0 pw cache stats
	run -0 pw cache export
	is "${#lines[@]}" 2
	run -0 pw config get fetch.retries
	is "$output" 2
	while IFS= read -r args; do
		# shellcheck disable=SC2086
		run -1 --separate-stderr pw $args
		is "$output" ""
		is "$stderr" "pw: $PW_STATE: state file is read-only"
	done <<-EOF
	pool add http://c.example:3
	pool rm 1
	pool next
	config set fetch.retries 5
	cache warm $BATS_TEST_TMPDIR/none.txt
	cache prune
	fetch $ORIGIN_URL/ip
	health -u $ORIGIN_URL/
	serve --listen 127.0.0.1:0
	EOF
	is "$(state_sum)" "$sum"
	is "$(integrity)" ok
}

# ------------------------------------------- a state file cut or replaced

# refused_all WHY: every command that opens the state file fails with
# exit 1 and "pw: $PW_STATE: WHY", prints nothing, and leaves its bytes
# as they were; nothing listens and nothing is fetched.
refused_all() {
	local why=$1 sum args
	sum=$(file_sum "$PW_STATE")
	echo http://new.example:3 >"$BATS_TEST_TMPDIR/one.txt"
	while IFS= read -r args; do
		# shellcheck disable=SC2086
		run -1 --separate-stderr timeout 10 pw $args
		is "$output" ""
		is "$stderr" "pw: $PW_STATE: $why"
		is "$(file_sum "$PW_STATE")" "$sum"
	done <<-EOF
	pool next
	fetch $ORIGIN_URL/ip
	health -u $ORIGIN_URL/
	cache stats
	cache export
	cache prune
	cache warm $BATS_TEST_TMPDIR/one.txt
	serve --listen 127.0.0.1:0
	serve --gateway 127.0.0.1:0
	EOF
	is "$(ls "$(dirname "$PW_STATE")" | grep -c 'state.db-')" 0
	is "$(cat "$BATS_TEST_TMPDIR/peers"/origin*.log 2>/dev/null)" ""
}

# A state file of 3000 proxies, checkpointed, alone in its directory.
make_big_state() {
	export PW_STATE=$BATS_TEST_TMPDIR/st/state.db
	mkdir -p "$BATS_TEST_TMPDIR/st"
	big_list 3000 "$BATS_TEST_TMPDIR/list.txt"
	pw -q cache warm "$BATS_TEST_TMPDIR/list.txt"
	run -0 sqlite3 "$PW_STATE" 'PRAGMA wal_checkpoint(TRUNCATE)'
	rm -f "$PW_STATE-wal" "$PW_STATE-shm"
}

@test "a state file cut to half its size: every command refuses it, exit 1, its bytes kept" {
	make_big_state
	local n
	n=$(stat -c %s "$PW_STATE")
	[ "$n" -gt 100000 ]
	head -c $((n / 2)) "$PW_STATE" >"$BATS_TEST_TMPDIR/half"
	mv "$BATS_TEST_TMPDIR/half" "$PW_STATE"
	refused_all "state file is corrupt: database disk image is malformed"
}

@test "a state file replaced by garbage of the same size: refused, exit 1, not overwritten" {
	make_big_state
	head -c "$(stat -c %s "$PW_STATE")" /dev/urandom >"$BATS_TEST_TMPDIR/g"
	mv "$BATS_TEST_TMPDIR/g" "$PW_STATE"
	refused_all "not a pw state file (not an SQLite database)"
}

# ---------------------------------------- proxies and origins that misbehave

# stats ID: started completed succeeded failed of proxy ID.
stats() {
	pw pool ls --json |
	    jq -r ".[] | select(.id == $1) | \"\(.started) \(.completed) \(.succeeded) \(.failed)\""
}

@test "a proxy that answers something else than HTTP: its failure, the next proxy serves" {
	start_badpeer malformed
	pw -q pool add "$BADPEER_URL" "$TP"
	# least-used, both unused: the first added is asked first
	run -0 --separate-stderr pw -v fetch --strategy least-used "$ORIGIN_URL/ip"
	is "$output" "$TINYPROXY_SRC"
	is "$stderr" "pw: least-used: proxy 1
pw: least-used: proxy 2
pw: fetch: attempt 1 via $BADPEER_URL: proxy failed: Received HTTP/0.9 when not allowed"
	is "$(stats 1)" "1 1 0 1"
	is "$(stats 2)" "1 1 1 0"
	# alone, every proxy failed: exit 4
	run -4 --separate-stderr pw fetch -x "$BADPEER_URL" "$ORIGIN_URL/ip"
	is "$output" ""
	is "${stderr##*$'\n'}" "pw: fetch: $ORIGIN_URL/ip: every proxy tried failed (1 attempt)"
}

@test "a proxy that closes in the middle of its status line: its failure, exit 4" {
	start_badpeer close-head
	pw -q pool add "$BADPEER_URL"
	run -4 --separate-stderr pw fetch "$ORIGIN_URL/ip"
	is "$output" ""
	is "$stderr" "pw: fetch: attempt 1 via $BADPEER_URL: proxy failed: Empty reply from server
pw: fetch: $ORIGIN_URL/ip: every proxy tried failed (1 attempt)"
	is "$(stats 1)" "1 1 0 1"
}

@test "a response that never ends stops at --max-time: exit 5, the proxy not blamed" {
	start_badpeer endless
	pw -q pool add "$TP"
	local t0=$SECONDS
	run -5 --separate-stderr pw fetch -s -m 2 -o "$BATS_TEST_TMPDIR/out" \
	    "$BADPEER_URL/"
	[ $((SECONDS - t0)) -le 5 ]
	is "$output" ""
	[[ $stderr == "pw: fetch: $BADPEER_URL/: Operation timed out after "*" milliseconds with "*" bytes received" ]]
	[ "$(stat -c %s "$BATS_TEST_TMPDIR/out")" -gt 65536 ]
	is "$(stats 1)" "1 1 0 0"
	is "$(pw pool ls --json | jq -r '.[0].consec_fail')" 0
}

@test "a 10 GiB header line is cut off early, with bounded memory: exit 5, a clear reason" {
	start_badpeer huge-header
	pw -q pool add "$BADPEER_URL"
	local t0=$SECONDS
	run -5 --separate-stderr /usr/bin/time -f 'maxrss %M' \
	    pw fetch -m 30 "$ORIGIN_URL/ip"
	[ $((SECONDS - t0)) -le 5 ]
	is "$output" ""
	is "$(sed -n 1,2p <<<"$stderr")" "pw: fetch: attempt 1 via $BADPEER_URL: target failed: a response header line over libcurl's limit (100 KiB)
pw: fetch: $ORIGIN_URL/ip: a response header line over libcurl's limit (100 KiB)"
	# a few megabytes, never the header
	local rss
	rss=$(sed -n 's/^maxrss //p' <<<"$stderr")
	[ "$rss" -lt 65536 ]
	# through tinyproxy from a huge-header origin: tinyproxy's 503
	run -0 --separate-stderr pw fetch -x "$TP" -w '%{http_code}' -o /dev/null \
	    "$BADPEER_URL/"
	is "$output" 503
}

@test "a response cut short by the origin: exit 5, the proxy not blamed; the same from a proxy blames it" {
	pw -q pool add "$TP"
	run -5 --separate-stderr pw fetch -o /dev/null "$ORIGIN_URL/bytes/100000?abort=1000"
	is "$stderr" "pw: fetch: attempt 1 via $TP: target failed: transfer closed with 99000 bytes remaining to read
pw: fetch: $ORIGIN_URL/bytes/100000?abort=1000: transfer closed with 99000 bytes remaining to read"
	is "$(stats 1)" "1 1 0 0"
	start_badpeer close-body
	run -5 --separate-stderr pw fetch -o /dev/null "$BADPEER_URL/"
	is "${stderr##*$'\n'}" "pw: fetch: $BADPEER_URL/: transfer closed with 99000 bytes remaining to read"
	is "$(stats 1)" "2 2 0 0"
}

@test "pw health copes with each bad proxy: each unhealthy, the good one healthy, in bounded time" {
	local m
	for m in malformed endless huge-header close-head close-body; do
		start_badpeer "$m"
		pw -q pool add "$BADPEER_URL"
	done
	pw -q pool add "$TP"
	local t0=$SECONDS
	# a failed check makes a proxy degraded, three in a row unhealthy
	for _ in 1 2 3; do
		run -0 --separate-stderr pw health --json -m 2 -u "$ORIGIN_URL/ip"
		[ $((SECONDS - t0)) -le 15 ]
	done
	is "$(jq -r 'sort_by(.id) | map(.ok) | join(" ")' <<<"$output")" \
	    "false false false false false true"
	is "$(jq -r 'sort_by(.id) | .[].error' <<<"$output" |
	    sed 's/ after [0-9]* milliseconds with [0-9]* bytes/ after N ms/')" \
	    "Received HTTP/0.9 when not allowed
Operation timed out after N ms received
a response header line over libcurl's limit (100 KiB)
Empty reply from server
transfer closed with 99000 bytes remaining to read
null"
	is "$(pw pool ls --json | jq -r 'map(.status) | join(" ")')" \
	    "unhealthy unhealthy unhealthy unhealthy unhealthy healthy"
	run -0 pw pool next
	is "$output" "$TP"
}

# ------------------------------------------------------------ slow clients

# fast_requests URL N: N requests to URL one after another, each answered
# within a second; prints their status codes on one line.
fast_requests() {
	local i codes=
	for i in $(seq "$2"); do
		codes+="$(curl -sS -m 1 -o /dev/null -w '%{http_code}' "$1") "
		sleep 0.3
	done
	echo "${codes% }"
}

@test "pw serve: clients sending a byte a second are closed at --read-timeout, head or body, while others are served" {
	pw -q pool add "$TP"
	PW_RATELIMIT__ENABLED=false start_serve -v --allow-private --read-timeout 2
	local i out=$BATS_TEST_TMPDIR/slow pids=()
	for i in $(seq 10); do
		slow_client "$SERVE_PORT" --give-up 8 >"$out.head.$i" &
		pids+=($!)
	done
	slow_client "$SERVE_PORT" --give-up 8 --data "$(printf 'POST /api/v1/proxies HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n%500s' '')" >"$out.body" &
	pids+=($!)
	run -0 fast_requests "$SERVE_URL/api/v1/status" 8
	is "$output" "200 200 200 200 200 200 200 200"
	for i in "${pids[@]}"; do wait "$i"; done
	for i in $(seq 10); do
		[[ $(cat "$out.head.$i") =~ ^closed\ after\ [0-9]+\ bytes\ in\ ([0-9]+)\ s$ ]]
		[ "${BASH_REMATCH[1]}" -ge 2 ] && [ "${BASH_REMATCH[1]}" -le 4 ]
	done
	[[ $(cat "$out.body") =~ ^closed\ after\ ([0-9]+)\ bytes\ in\ ([0-9]+)\ s$ ]]
	[ "${BASH_REMATCH[1]}" -gt 90 ] && [ "${BASH_REMATCH[1]}" -lt 200 ]
	[ "${BASH_REMATCH[2]}" -ge 2 ] && [ "${BASH_REMATCH[2]}" -le 4 ]
	is "$(grep -c 'serve: a client sent no whole request in 2s: closed' "$SERVE_LOG")" 11
	# nothing was stored by the cut request, and the server serves on
	is "$(pw pool ls --plain | wc -l)" 1
	run -0 curl -sS -o /dev/null -w '%{http_code}' "$SERVE_URL/api/v1/status"
	is "$output" 200
}

@test "pw serve: a request that takes long to answer is not cut by --read-timeout; a keep-alive client is not either" {
	pw -q pool add "$TP"
	start_serve -v --allow-private --read-timeout 1
	run -0 curl -sS -m 10 -X POST -H 'Content-Type: application/json' \
	    --data-binary \
	    "{\"url\": \"$ORIGIN_URL/slow/2500\"}" "$SERVE_URL/api/v1/request"
	is "$(jq -r .data.body <<<"$output")" "slow 2500"
	# one connection, a second request 1.5 s after the first
	run -0 /usr/bin/python3 -c 'import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
for i in range(2):
    s.sendall(b"GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    print(s.recv(65536).split(b"\r\n")[0].decode())
    time.sleep(1.5)' "$SERVE_PORT"
	is "$output" "HTTP/1.1 200 OK
HTTP/1.1 200 OK"
}

@test "pw serve --read-timeout: bad values are refused, exit 2" {
	run -2 --separate-stderr pw serve --read-timeout 0
	is "$stderr" "pw: serve: --read-timeout: '0': want a duration from 1s to 600s (like 90, 90s, 15m)"
	run -2 --separate-stderr pw serve --read-timeout 11m
	is "$stderr" "pw: serve: --read-timeout: '11m': want a duration from 1s to 600s (like 90, 90s, 15m)"
	is "$(state_sum)" absent
}

@test "the gateway: clients sending a byte a second are closed at the handshake timeout, while others are served" {
	pw -q pool add "$TP"
	start_gateway --gateway-handshake-timeout 2
	local i out=$BATS_TEST_TMPDIR/slow pids=()
	for i in $(seq 10); do
		slow_client "$GW_PORT" --give-up 8 --data "$(printf 'GET %s/ip HTTP/1.1\r\nHost: x\r\nX-Slow: %500s' "$ORIGIN_URL" '')" >"$out.http.$i" &
		pids+=($!)
	done
	# SOCKS5: a greeting, then its request a byte at a time
	slow_client "$GW_PORT" --give-up 8 --data-hex "050100050100017f000001$(printf %04x "$ORIGIN_PORT")" >"$out.socks" &
	pids+=($!)
	local codes=
	for i in $(seq 8); do
		codes+="$(curl -sS -m 1 -x "$GW_URL" -o /dev/null -w '%{http_code}' "$ORIGIN_URL/ip") "
		sleep 0.3
	done
	is "$codes" "200 200 200 200 200 200 200 200 "
	for i in "${pids[@]}"; do wait "$i"; done
	for i in $(seq 10); do
		[[ $(cat "$out.http.$i") =~ ^closed\ after\ [0-9]+\ bytes\ in\ ([0-9]+)\ s$ ]]
		[ "${BASH_REMATCH[1]}" -ge 2 ] && [ "${BASH_REMATCH[1]}" -le 4 ]
	done
	[[ $(cat "$out.socks") =~ ^closed\ after\ [0-9]+\ bytes\ in\ ([0-9]+)\ s$ ]]
	[ "${BASH_REMATCH[1]}" -ge 2 ] && [ "${BASH_REMATCH[1]}" -le 4 ]
}

# ---------------------------------------------------- SIGKILL under load

@test "pw serve killed with SIGKILL under load, then started again: the file sound, no outcome older than serve.flush_interval lost" {
	pw -q pool add "$TP"
	pw -q config set serve.flush_interval 1
	PW_RATELIMIT__ENABLED=false start_serve -v --allow-private
	local c pids=() ok=$BATS_TEST_TMPDIR/ok killed
	# Four clients; each writes the time of every answer it got.
	for c in 1 2 3 4; do
		(
			while code=$(curl -s -o /dev/null -w '%{http_code}' \
			    -X POST -H 'Content-Type: application/json' \
			    --data-binary "{\"url\": \"$ORIGIN_URL/ip\"}" \
			    "$SERVE_URL/api/v1/request") && [ "$code" = 200 ]; do
				echo "$EPOCHREALTIME"
			done >"$ok.$c"
		) &
		pids+=($!)
	done
	sleep 4
	kill -KILL "$SERVE_PID"
	killed=$EPOCHREALTIME
	for c in "${pids[@]}"; do wait "$c"; done
	local total old
	total=$(cat "$ok".* | wc -l)
	# answered more than a flush interval (and half a second) before
	old=$(cat "$ok".* | awk -v k="$killed" '$1 < k - 1.5' | wc -l)
	[ "$old" -gt 5 ]
	is "$(integrity)" ok
	run -0 pw pool ls --json
	local succeeded completed
	succeeded=$(jq '.[0].succeeded' <<<"$output")
	completed=$(jq '.[0].completed' <<<"$output")
	echo "total $total old $old succeeded $succeeded" >&2
	[ "$succeeded" -ge "$old" ]
	[ "$succeeded" -le "$total" ]
	is "$completed" "$succeeded"
	is "$(jq '.[0].failed' <<<"$output")" 0
	# started again on the same file: it serves, and counts on from there
	stop_peers
	start_serve -v --allow-private
	run -0 curl -sS -o /dev/null -w '%{http_code}' -X POST \
	    -H 'Content-Type: application/json' \
	    --data-binary "{\"url\": \"$ORIGIN_URL/ip\"}" "$SERVE_URL/api/v1/request"
	is "$output" 200
	eventually succeeded_is 1 $((succeeded + 1))
	kill -TERM "$SERVE_PID"
	wait "$SERVE_PID"
	is "$(integrity)" ok
}
