#!/usr/bin/env bats
# serve_ops.bats -- pw serve as a long-lived process beside others on the
# same state file: its view of the pool in memory (selections beside
# pw pool add/rm, pw health and pw config in other processes, cooldown,
# the strategies), outcomes written in batches (seen by pw pool ls within
# a second or two, and at SIGTERM), SIGHUP, the background pruning and
# health checks, and the settings that drive them.

bats_require_minimum_version 1.5.0

load helper
load ../helpers/peers

setup_file() {
	start_origin
	refused_port >/dev/null
	export REFUSED_PORT
	start_tinyproxy
	export TP=$TINYPROXY_URL
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

# next [QUERY]: the id GET /api/v1/proxies/next chose (or its error code).
next() {
	api GET "/api/v1/proxies/next${1:+?$1}"
	if [ "$STATUS" = 200 ]; then
		j '.data.id'
	else
		j '.error.code'
	fi
}

# request URL: POST /api/v1/request; STATUS and BODY.
request() {
	api POST /api/v1/request -H 'Content-Type: application/json' \
	    --data-binary "{\"url\": \"$1\"}"
}

# field ID JQ: a field of proxy ID as another process sees it.
field() {
	pw pool ls --json | jq -r ".[] | select(.id == $1) | $2"
}

# field_is ID JQ VALUE: for eventually.
field_is() {
	[ "$(field "$1" "$2")" = "$3" ]
}

# stop_serve: SIGTERM, and the exit status is 0.
stop_serve() {
	local rc=0
	kill -TERM "$SERVE_PID"
	wait "$SERVE_PID" || rc=$?
	is "$rc" 0
}

# ------------------------------------------------------- batched writes

@test "outcomes of requests through pw serve reach pw pool ls of another process within a second or two" {
	pw -q pool add "$TP"
	start_serve --allow-private -v
	for _ in 1 2 3; do
		request "$ORIGIN_URL/ip"
		is "$STATUS" 200
	done
	# the API has them at once, the file within the flush interval
	api GET /api/v1/proxies/1
	is "$(j '.data.stats.succeeded')" 3
	is "$(j '.data.stats.started')" 3
	eventually field_is 1 .succeeded 3
	is "$(field 1 .started)" 3
	is "$(field 1 .completed)" 3
	[ "$(field 1 .latency_ms)" != null ]
	# ... and then the hits counter of pw cache stats
	run -0 pw cache stats --json
	is "$(jq -r '.hits' <<<"$output")" 3
	stop_serve
}

@test "SIGTERM writes the outcomes still in memory before exiting 0" {
	pw -q pool add "$TP"
	# no flush but the last one: whatever reaches the file, SIGTERM wrote
	pw config set serve.flush_interval 1h
	start_serve --allow-private -v
	for _ in 1 2 3 4; do
		request "$ORIGIN_URL/ip"
		is "$STATUS" 200
	done
	sleep 0.5
	is "$(field 1 .succeeded)" 0
	stop_serve
	is "$(field 1 .succeeded)" 4
	is "$(field 1 .started)" 4
	is "$(sqlite3 "$PW_STATE" 'PRAGMA integrity_check')" ok
}

@test "SIGINT writes them too" {
	pw -q pool add "$TP"
	pw config set serve.flush_interval 1h
	start_serve --allow-private -v
	request "$ORIGIN_URL/ip"
	is "$STATUS" 200
	local rc=0
	kill -INT "$SERVE_PID"
	wait "$SERVE_PID" || rc=$?
	is "$rc" 0
	is "$(field 1 .succeeded)" 1
}

@test "outcomes counted by another process meanwhile are added to, not overwritten" {
	# The counts add up exactly; the failure run follows the order the
	# file sees: the server's batch comes after the report here.
	pw -q pool add "$TP"
	pw config set serve.flush_interval 1h
	start_serve --allow-private -v
	request "$ORIGIN_URL/ip"
	request "$ORIGIN_URL/ip"
	# another process reports on the same proxy before the flush
	pw pool report 1 --ok --latency-ms 10
	pw pool report 1 --fail
	stop_serve
	is "$(field 1 .succeeded)" 3
	is "$(field 1 .failed)" 1
	is "$(field 1 .completed)" 4
	is "$(field 1 .consec_fail)" 0
}

# ----------------------------------------------- changes by other processes

@test "a proxy added by pw pool add in another process becomes selectable" {
	pw -q pool add http://10.0.0.1:3128
	start_serve --allow-private -v
	is "$(next)" 1
	is "$(next)" 1
	pw -q pool add http://10.0.0.2:3128
	# round-robin: the new one is next in turn
	is "$(next)" 2
	is "$(next)" 1
	api GET /api/v1/health
	is "$(j '.data.pool.total')" 2
}

@test "a proxy removed by pw pool rm in another process is no longer selected" {
	pw -q pool add http://10.0.0.1:3128 http://10.0.0.2:3128
	start_serve --allow-private -v
	is "$(next)" 1
	pw -q pool rm 2
	for _ in 1 2 3; do
		is "$(next)" 1
	done
	pw -q pool rm 1
	api GET /api/v1/proxies/next
	is "$STATUS" 503
	is "$(j '.error.message')" "no eligible proxy: 0 in pool, 0 unhealthy, 0 cooling down, 0 expired"
}

@test "health results of pw health in another process are seen: an unhealthy proxy is not chosen" {
	pw -q pool add "$TP" "http://127.0.0.1:$REFUSED_PORT"
	pw config set health.failure_threshold 1
	start_serve --allow-private -v
	run -0 pw health -q -u "$ORIGIN_URL/"
	for _ in 1 2 3 4; do
		is "$(next)" 1
	done
	api GET /api/v1/status
	is "$(j '.data.pool.unhealthy')" 1
	is "$(j '.data.pool.healthy')" 1
}

@test "pw config set in another process takes effect for the next request" {
	pw -q pool add http://10.0.0.1:3128 http://10.0.0.2:3128 \
	    http://10.0.0.3:3128
	# one worker: its settings were read before the change
	start_serve --allow-private -v --threads 1
	is "$(next)" 1
	pw config set strategy least-used
	api GET /api/v1/status
	is "$(j '.data.strategy')" least-used
	# least-used: the two never used, in id order, then any
	is "$(next)" 2
	is "$(next)" 3
}

@test "PUT /config and POST/DELETE /proxies are seen by the very next request" {
	start_serve --allow-private -v
	api POST /api/v1/proxies -H 'Content-Type: application/json' \
	    --data-binary '{"url": "http://10.0.0.1:3128"}'
	is "$STATUS" 201
	is "$(next)" 1
	api POST /api/v1/proxies -H 'Content-Type: application/json' \
	    --data-binary '{"url": "http://10.0.0.2:3128", "country": "DE"}'
	is "$(next country=DE)" 2
	api DELETE /api/v1/proxies/2
	is "$STATUS" 204
	is "$(next country=DE)" PROXY_POOL_EMPTY
	api PUT /api/v1/config -H 'Content-Type: application/json' \
	    --data-binary '{"geo.fallback": true}'
	is "$STATUS" 200
	is "$(next country=DE)" 1
}

@test "a write through the API is seen by a request right behind it on the same connection" {
	start_serve --allow-private -v --threads 1
	# two requests on one connection, far closer than the 5 ms between
	# checks of the file: the write itself makes the view reload
	run -0 curl -sS -H 'Content-Type: application/json' \
	    --data-binary '{"url": "http://10.0.0.7:3128"}' \
	    "$SERVE_URL/api/v1/proxies" --next \
	    "$SERVE_URL/api/v1/proxies/next"
	is "$(jq -rs '.[1].data.url' <<<"$output")" http://10.0.0.7:3128
	run -0 curl -sS -X DELETE "$SERVE_URL/api/v1/proxies/1" --next \
	    "$SERVE_URL/api/v1/proxies/next"
	is "$(jq -r '.error.code' <<<"$output")" PROXY_POOL_EMPTY
}

# ------------------------------------------------------ cooldown, strategies

@test "cooldown after failures holds in the server, and reaches the file" {
	pw -q pool add "http://127.0.0.1:$REFUSED_PORT" "$TP"
	pw config set pool.failure_threshold 2
	pw config set fetch.retries 1
	start_serve --allow-private -v
	# round-robin: 1 fails (1st failure), 2 works, 1 fails (2nd: cooldown)
	request "$ORIGIN_URL/ip"
	is "$STATUS" 502
	request "$ORIGIN_URL/ip"
	is "$STATUS" 200
	request "$ORIGIN_URL/ip"
	is "$STATUS" 502
	for _ in 1 2 3 4; do
		request "$ORIGIN_URL/ip"
		is "$STATUS" 200
		is "$(j '.data.proxy_id')" 2
		is "$(next)" 2
	done
	api GET /api/v1/proxies/1
	is "$(j '.data.stats.consec_fail')" 2
	[ "$(j '.data.cooldown_until')" != null ]
	api GET /api/v1/health
	is "$(j '.data.status')" degraded
	eventually field_is 1 .consec_fail 2
	[ "$(field 1 .cooldown_until)" != null ]
	# another process agrees: only proxy 2 is eligible
	run -0 pw pool next --format json
	is "$(jq -r '.id' <<<"$output")" 2
}

@test "a success clears the failure run and the cooldown, in the view and the file" {
	pw -q pool add "$TP"
	pw config set pool.failure_threshold 1
	start_serve --allow-private -v
	pw pool report 1 --fail
	api GET /api/v1/proxies/next
	is "$STATUS" 503
	is "$(j '.error.message')" "no eligible proxy: 1 in pool, 0 unhealthy, 1 cooling down, 0 expired"
	pw pool report 1 --ok
	is "$(next)" 1
	request "$ORIGIN_URL/ip"
	is "$STATUS" 200
	eventually field_is 1 .succeeded 2
	is "$(field 1 .cooldown_until)" null
	is "$(field 1 .consec_fail)" 0
}

@test "round-robin turns through the pool and shares its cursor with the CLI" {
	pw -q pool add http://10.0.0.1:3128 http://10.0.0.2:3128 \
	    http://10.0.0.3:3128
	start_serve --allow-private -v
	is "$(next)" 1
	is "$(next)" 2
	# the cursor reaches the file with the outcomes
	cursor_is() {
		[ "$(sqlite3 "$PW_STATE" "SELECT value FROM rotation WHERE name LIKE 'cursor:round-robin|%'")" = "$1" ]
	}
	eventually cursor_is 2
	run -0 pw pool next --format json
	is "$(jq -r '.id' <<<"$output")" 3
	is "$(next)" 1
}

@test "the strategies choose as in the CLI: country, least-used, weighted, random, performance, sticky" {
	pw -q pool add --country DE http://10.0.0.1:3128 http://10.0.0.2:3128
	pw -q pool add --country FR --weight 0 http://10.0.0.3:3128
	pw -q pool add --weight 0 http://10.0.0.4:3128
	start_serve --allow-private -v
	for _ in 1 2 3; do
		is "$(next country=FR)" 3
	done
	is "$(next 'country=DE&strategy=least-used')" 1
	is "$(next 'country=DE&strategy=least-used')" 2
	# weight 0 is never drawn; 1 and 2 (no weight) are
	for _ in $(seq 12); do
		id=$(next strategy=weighted)
		[ "$id" = 1 ] || [ "$id" = 2 ]
	done
	for _ in $(seq 12); do
		id=$(next 'strategy=random&country=DE')
		[ "$id" = 1 ] || [ "$id" = 2 ]
	done
	# performance: the only measured one (the fallback tries the others
	# first, so set none)
	pw config set strategy.fallback none
	pw pool report 4 --ok --latency-ms 50
	# Seen within PW_VIEW_CHECK_MS, or once a check in flight ends (a
	# request does not wait for another thread's): under make sanitize
	# on a loaded machine, the first request after may not see it yet.
	performs() { [ "$(next strategy=performance)" = 4 ]; }
	eventually performs
	for _ in 1 2 3; do
		is "$(next strategy=performance)" 4
	done
	local s
	s=$(next 'strategy=sticky&session=abc')
	for _ in 1 2 3; do
		is "$(next 'strategy=sticky&session=abc')" "$s"
	done
	# the session reaches the file, and the CLI follows it
	session_is() {
		[ "$(sqlite3 "$PW_STATE" "SELECT proxy_id || ' ' || requests FROM sessions WHERE id = 'abc'")" = "$1" ]
	}
	eventually session_is "$s 4"
	run -0 pw pool next --strategy sticky --session abc --format json
	is "$(jq -r '.id' <<<"$output")" "$s"
}

@test "a sticky session made by the CLI is followed by the server" {
	pw -q pool add http://10.0.0.1:3128 http://10.0.0.2:3128
	start_serve --allow-private -v
	run -0 pw pool next --format json
	run -0 pw pool next --strategy sticky --session cli --format json
	is "$(jq -r '.id' <<<"$output")" 2
	for _ in 1 2; do
		is "$(next 'strategy=sticky&session=cli')" 2
	done
}

@test "expired proxies are never chosen, before any pruning" {
	echo http://10.0.0.1:3128 | PW_NOW=1000000000 pw -q cache warm --ttl 10 -
	pw -q pool add http://10.0.0.2:3128
	pw config set serve.prune_interval 0
	start_serve --allow-private -v
	for _ in 1 2 3; do
		is "$(next)" 2
	done
	api GET /api/v1/status
	is "$(j '.data.pool.expired')" 1
}

# ------------------------------------------------------------ background

@test "expired proxies are pruned in the background every serve.prune_interval" {
	echo http://10.0.0.1:3128 | PW_NOW=1000000000 pw -q cache warm --ttl 10 -
	pw -q pool add http://10.0.0.2:3128
	pw config set serve.prune_interval 1s
	start_serve --allow-private -v
	gone() {
		[ "$(pw pool ls --json | jq -r '[.[].id] | join(" ")')" = 2 ]
	}
	eventually gone
	run -0 pw cache stats --json
	is "$(jq -r '.evictions.ttl' <<<"$output")" 1
	api GET /api/v1/health
	is "$(j '.data.pool.total')" 1
	grep -q 'serve: pruned 1 expired proxy' "$SERVE_LOG"
}

@test "serve.health_interval checks the pool in the background; 0 never" {
	pw -q pool add "$TP" "http://127.0.0.1:$REFUSED_PORT"
	pw config set health.url "$ORIGIN_URL/"
	pw config set health.timeout 2
	start_serve --allow-private -v
	sleep 1.5
	is "$(field 1 .status)" unknown
	pw config set serve.health_interval 1s
	eventually field_is 2 .status degraded
	is "$(field 1 .status)" healthy
	[ "$(field 1 .last_checked)" != null ]
	api GET /api/v1/status
	is "$(j '.data.pool.healthy')" 1
	is "$(j '.data.pool.degraded')" 1
	stop_serve
}

@test "a background health check without a judge is logged, and the server serves on" {
	pw -q pool add http://10.0.0.1:3128
	pw config set serve.health_interval 1s
	start_serve --allow-private -v
	logged() {
		grep -q 'pw: warning: serve: health: no judge URL' "$SERVE_LOG"
	}
	eventually logged
	is "$(next)" 1
	is "$(field 1 .status)" unknown
	stop_serve
}

@test "a health check from cron holding the lock is not doubled: the server skips its run" {
	pw -q pool add "$TP"
	pw config set health.url "$ORIGIN_URL/slow/3000"
	pw config set health.timeout 5
	pw health -q >/dev/null 2>&1 &
	local hpid=$!
	sleep 0.5
	pw config set serve.health_interval 1s
	start_serve --allow-private -v
	skipped() {
		grep -q 'serve: health: .*skipped' "$SERVE_LOG"
	}
	eventually skipped
	wait "$hpid" || true
	stop_serve
}

# ------------------------------------------------------------------ SIGHUP

@test "SIGHUP reads the settings again without dropping a request in flight" {
	pw -q pool add "$TP"
	start_serve --allow-private -v
	curl -sS -o "$BATS_TEST_TMPDIR/slow" -w '%{http_code}' -X POST \
	    -H 'Content-Type: application/json' \
	    --data-binary "{\"url\": \"$ORIGIN_URL/slow/1000\"}" \
	    "$SERVE_URL/api/v1/request" >"$BATS_TEST_TMPDIR/slow.code" &
	local cpid=$!
	sleep 0.3
	sqlite3 "$PW_STATE" "INSERT INTO config(key, value) VALUES('strategy', 'random')"
	kill -HUP "$SERVE_PID"
	wait "$cpid"
	is "$(cat "$BATS_TEST_TMPDIR/slow.code")" 200
	is "$(jq -r '.data.body' "$BATS_TEST_TMPDIR/slow")" "slow 1000"
	grep -q 'pw: serve: SIGHUP: settings read again' "$SERVE_LOG"
	pid_alive "$SERVE_PID"
	api GET /api/v1/status
	is "$(j '.data.strategy')" random
	api GET /api/v1/config
	is "$(j '.data.strategy.origin')" state
	stop_serve
}

# ----------------------------------------------------------- the settings

@test "serve.flush_interval, serve.prune_interval, serve.health_interval: bad values are refused, nothing stored" {
	pw config set serve.flush_interval 2
	local before
	before=$(state_sum)
	run -2 --separate-stderr pw config set serve.flush_interval 0
	is "$stderr" "pw: config set: serve.flush_interval: '0': want a duration from 1s to 3600s (like 90, 90s, 15m, 2h, 7d)"
	run -2 --separate-stderr pw config set serve.flush_interval 2h
	is "$stderr" "pw: config set: serve.flush_interval: '2h': want a duration from 1s to 3600s (like 90, 90s, 15m, 2h, 7d)"
	run -2 --separate-stderr pw config set serve.prune_interval soon
	[[ $stderr == "pw: config set: serve.prune_interval: 'soon': "* ]]
	run -2 --separate-stderr pw config set serve.health_interval 1x
	[[ $stderr == "pw: config set: serve.health_interval: '1x': "* ]]
	run -2 --separate-stderr pw config set serve.health_interval 31d
	[[ $stderr == "pw: config set: serve.health_interval: '31d': "* ]]
	is "$(state_sum)" "$before"
	run -2 --separate-stderr env PW_SERVE__FLUSH_INTERVAL=0 pw serve
	[[ $stderr == "pw: PW_SERVE__FLUSH_INTERVAL: "* ]]
	is "$(state_sum)" "$before"
}

@test "the defaults: flush every second, prune every minute, no health checks" {
	run -0 pw config get serve.flush_interval
	is "$output" 1
	run -0 pw config get serve.prune_interval
	is "$output" 1m
	run -0 pw config get serve.health_interval
	is "$output" 0
}

# ------------------------------------------------------------------ systemd

@test "make install puts the systemd units in place with the binary's path; uninstall removes them" {
	local root=$BATS_TEST_DIRNAME/../.. d=$BATS_TEST_TMPDIR/dest
	make -s -C "$root" install B="$PW_BUILD" DESTDIR="$d" PREFIX=/usr \
	    >/dev/null
	local u
	for u in pw-serve.service pw-health.service pw-health.timer \
	    pw-warm.service pw-warm.timer; do
		[ -f "$d/usr/lib/systemd/system/$u" ]
		! grep -q '@BINDIR@' "$d/usr/lib/systemd/system/$u"
	done
	is "$(grep '^ExecStart=' "$d/usr/lib/systemd/system/pw-serve.service")" \
	    "ExecStart=/usr/bin/pw serve"
	is "$(grep '^ExecStart=' "$d/usr/lib/systemd/system/pw-health.service")" \
	    "ExecStart=/usr/bin/pw -q health"
	is "$(grep '^ExecStart=' "$d/usr/lib/systemd/system/pw-warm.service")" \
	    "ExecStart=/usr/bin/pw -q cache warm --sources"
	[ ! -e "$d/usr/share/pw/systemd" ]
	make -s -C "$root" uninstall DESTDIR="$d" PREFIX=/usr >/dev/null
	is "$(find "$d" -type f | wc -l)" 0
}

@test "the systemd units pass systemd-analyze verify without a word, and name what they run" {
	command -v systemd-analyze >/dev/null || skip "no systemd-analyze"
	local src=$BATS_TEST_DIRNAME/../../share/systemd d=$BATS_TEST_TMPDIR/units u
	mkdir -p "$d"
	for u in "$src"/*; do
		sed "s|@BINDIR@|$PW_BUILD|g" "$u" >"$d/${u##*/}"
	done
	run -0 systemd-analyze verify --man=no "$d"/pw-serve.service \
	    "$d"/pw-health.service "$d"/pw-health.timer "$d"/pw-warm.service \
	    "$d"/pw-warm.timer
	is "$output" ""
	# hardened, sharing one user and state directory
	for u in pw-serve.service pw-health.service pw-warm.service; do
		grep -qx 'DynamicUser=yes' "$d/$u"
		grep -qx 'User=pw' "$d/$u"
		grep -qx 'StateDirectory=pw' "$d/$u"
		grep -qx 'ProtectSystem=strict' "$d/$u"
		grep -qx 'NoNewPrivileges=yes' "$d/$u"
		grep -qx 'Environment=PW_STATE=%S/pw/state.db' "$d/$u"
	done
	grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' "$d/pw-serve.service"
	grep -qx 'SuccessExitStatus=75' "$d/pw-health.service"
}

# ------------------------------------------------------------------ errors

@test "pw serve on a file that is not a state file: exit 1, one line, the file untouched, nothing listening" {
	echo "not a database" >"$PW_STATE"
	local before port
	before=$(file_sum "$PW_STATE")
	port=$(free_port)
	run -1 --separate-stderr pw serve --listen "127.0.0.1:$port"
	is "$stderr" "pw: $PW_STATE: not a pw state file (not an SQLite database)"
	is "$output" ""
	is "$(file_sum "$PW_STATE")" "$before"
	[ ! -e "$PW_STATE-wal" ]
	! _peers_connects 127.0.0.1 "$port"
}

@test "pw serve on a state file of a newer pw: exit 1, untouched" {
	pw -q pool add http://10.0.0.1:3128
	sqlite3 "$PW_STATE" 'PRAGMA user_version = 99'
	local before
	before=$(state_sum)
	run -1 --separate-stderr pw serve --listen "127.0.0.1:$(free_port)"
	[[ $stderr == "pw: $PW_STATE: state file has schema version 99, newer than this pw knows"* ]]
	is "$(state_sum)" "$before"
}
