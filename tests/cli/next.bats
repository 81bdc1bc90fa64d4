#!/usr/bin/env bats
# next.bats -- pw pool next, pw pool report and pw pool sessions: every
# option, every strategy and every way to choose one, plugins, sticky
# sessions, geo, eligibility and cooldown, refusals that change nothing,
# and many processes picking from one state file at once.

bats_require_minimum_version 1.5.0

load helper

setup() {
	setup_pw
	export PW_NOW=1700000000	# 2023-11-14T22:13:20Z
	P=$PW_BUILD/plugins
	W=$BATS_TEST_TMPDIR/work
	mkdir -p "$W"
}

T=$'\t'
NOPROXY='no eligible proxy'
STRATEGIES='round-robin random weighted least-used performance sticky geo'

# Three proxies on loopback, and the state digest after adding them.
three() {
	pw -q pool add http://127.0.0.1:3101 http://127.0.0.1:3102 \
	    http://127.0.0.1:3103
	before=$(state_sum)
}

# unchanged: the state file is as it was when $before was taken.
unchanged() {
	is "$(state_sum)" "$before"
}

# field ID NAME: one column of `pw pool ls --json` for proxy ID.
field() {
	pw pool ls --json | jq -r ".[] | select(.id == $1) | .$2"
}

# ---------------------------------------------------------- pool next

@test "next: round-robin by default, one URL a line, nothing on stderr" {
	three
	for port in 3101 3102 3103 3101 3102; do
		run -0 --separate-stderr pw pool next
		is "$output" "http://127.0.0.1:$port"
		is "$stderr" ""
	done
}

@test "next: the chosen proxy is marked started and last used" {
	three
	run -0 pw pool next
	PW_NOW=1700000042 run -0 pw pool next
	run -0 pw pool ls --csv
	is "$(sed -n '1p' <<<"$output" | cut -d, -f1,14,23)" \
	    "id,started,last_used"
	is "$(sed -n '2,$p' <<<"$output" | cut -d, -f1,14,23)" "$(lines \
	    1,1,1700000000 2,1,1700000042 3,0,)"
}

@test "next: the URL carries the credentials in clear, for curl -x" {
	run -0 pw -q pool add 'http://us%40r:p%3Ass@127.0.0.1:3128' \
	    'socks5://u:pw@127.0.0.1:1080'
	run -0 --separate-stderr pw pool next
	is "$output" 'http://us%40r:p%3Ass@127.0.0.1:3128'
	is "$stderr" ""
	run -0 --separate-stderr pw pool next --format json
	is "$(jq -r .url <<<"$output")" 'socks5://u:pw@127.0.0.1:1080'
	is "$(jq -r .credentials <<<"$output")" true
	# ... and only here: the listing masks them.
	run -0 pw pool ls --csv
	is "$(cut -d, -f2 <<<"$output")" "$(lines url \
	    'http://***:***@127.0.0.1:3128' 'socks5://***:***@127.0.0.1:1080')"
}

@test "next --format json: one object with every field of the proxy" {
	pw -q pool add --country DE --region berlin --source list1 \
	    --weight 2 http://127.0.0.1:3101
	run -0 --separate-stderr pw pool next --format json
	is "$output" '{"id":1,"url":"http://127.0.0.1:3101","scheme":"http","host":"127.0.0.1","port":3101,"credentials":false,"status":"unknown","country":"DE","region":"berlin","source":"list1","anonymity":null,"weight":2.0,"latency_ms":null,"started":1,"completed":0,"succeeded":0,"failed":0,"consec_fail":0,"added_at":"2023-11-14T22:13:20Z","updated_at":"2023-11-14T22:13:20Z","expires_at":null,"last_checked":null,"last_used":"2023-11-14T22:13:20Z","cooldown_until":null}'
	is "$stderr" ""
	run -0 --separate-stderr pw pool next -f json
	is "$(jq -c '[.id, .started]' <<<"$output")" '[1,2]'
	run -0 --separate-stderr pw pool next --format=url
	is "$output" http://127.0.0.1:3101
	run -0 --separate-stderr pw pool next -f url
	is "$output" http://127.0.0.1:3101
}

@test "next --format: anything but url or json is exit 2, nothing changed" {
	three
	for f in xml URL '' jsonl csv; do
		run -2 --separate-stderr pw pool next --format "$f"
		is "$output" ""
		is "$stderr" "pw: pool next: --format: '$f': want url or json"
	done
	run -2 --separate-stderr pw pool next -f
	is "$stderr" "pw: pool next: option '-f' needs a value"
	unchanged
}

@test "next -h and pw help pool next: the same usage, exit 0" {
	run -0 --separate-stderr pw pool next -h
	is "${lines[0]}" "usage: pw pool next [options]"
	is "$stderr" ""
	help=$output
	run -0 --separate-stderr pw help pool next
	is "$output" "$help"
	for opt in --strategy --strategy-plugin --session --country \
	    --region --scheme --source --status --anonymity --max-latency \
	    --exclude --format; do
		[[ "$help" == *"$opt "* ]] || { echo "no $opt in help"; false; }
	done
	run -0 --separate-stderr pw pool report -h
	is "${lines[0]}" \
	    "usage: pw pool report ID|URL ok|fail [--latency MS]"
	run -0 --separate-stderr pw pool sessions -h
	is "${lines[0]}" "usage: pw pool sessions [options]"
}

@test "next: arguments and options it does not know are exit 2" {
	three
	run -2 --separate-stderr pw pool next extra
	is "$stderr" "pw: pool next: unexpected argument 'extra' (usage: pw pool next [options])"
	run -2 --separate-stderr pw pool next --bogus
	is "$stderr" "pw: pool next: unknown option '--bogus'"
	run -2 --separate-stderr pw pool next --strategy
	is "$stderr" "pw: pool next: option '--strategy' needs a value"
	unchanged
}

# --------------------------------------------------- choosing a strategy

# pick_as LABEL CMD...: run a pick with -v; the strategy that picked
# must be LABEL (the verbose line names it).
pick_as() {
	local want=$1
	shift
	run -0 --separate-stderr "$@"
	[[ "$output" == http://127.0.0.1:31* ]] || { echo "$output"; false; }
	[[ "${stderr##*$'\n'}" == "pw: $want: proxy "[0-9]* ]] || {
		echo "want $want, got: $stderr"
		false
	}
}

# Latency for every proxy, so performance has data.
measured() {
	three
	pw pool report 1 --ok --latency-ms 100
	pw pool report 2 --ok --latency-ms 200
	pw pool report 3 --ok --latency-ms 300
}

@test "strategy: each by --strategy (and -s)" {
	measured
	for s in round-robin random weighted least-used performance; do
		pick_as "$s" pw -v pool next --strategy "$s"
		pick_as "$s" pw -v pool next -s "$s"
	done
	# sticky and geo name the inner strategy that picks.
	pick_as round-robin pw -v pool next --strategy sticky --session s
	first=${stderr##* }
	run -0 --separate-stderr pw -v pool next --strategy sticky --session s
	is "$stderr" "pw: session s: proxy $first"
	pw -q pool set 3 --country NL
	pick_as round-robin pw -v pool next --strategy geo --country NL
	is "$output" http://127.0.0.1:3103
}

@test "strategy: each by pw config set strategy" {
	measured
	for s in round-robin random weighted least-used performance; do
		run -0 pw config set strategy "$s"
		pick_as "$s" pw -v pool next
	done
	run -0 pw config set strategy sticky
	pick_as round-robin pw -v pool next --session s
	pw -q pool set 2 --region x
	run -0 pw config set strategy geo
	pick_as round-robin pw -v pool next --region x
	is "$output" http://127.0.0.1:3102
	# The inner strategies are settings too.
	run -0 pw config set session.strategy least-used
	run -0 pw config set strategy sticky
	pick_as least-used pw -v pool next --session new
	# --session alone is sticky too, whatever the strategy setting.
	run -0 pw config set strategy round-robin
	pick_as least-used pw -v pool next --session newer
	run -0 pw config set geo.strategy random
	run -0 pw config set geo.fallback true
	run -0 pw config set strategy geo
	pick_as random pw -v pool next --country FR
	is "${stderr%%$'\n'*}" "pw: geo: no eligible proxy in FR, falling back to any"
}

@test "strategy: each by -c strategy= and by \$PW_STRATEGY" {
	measured
	for s in round-robin random weighted least-used performance; do
		pick_as "$s" pw -v -c strategy="$s" pool next
		PW_STRATEGY=$s pick_as "$s" pw -v pool next
	done
	pick_as round-robin pw -v -c strategy=sticky pool next --session a
	pw -q pool set 3 --country US --region x
	PW_STRATEGY=geo PW_GEO__STRATEGY=least-used \
	    pick_as least-used pw -v pool next --region x --country US
	is "$output" http://127.0.0.1:3103
	pick_as random pw -v -c strategy=geo -c geo.strategy=random pool next \
	    --region x
}

@test "strategy: --strategy beats -c, which beats \$PW_STRATEGY, which beats config set" {
	measured
	run -0 pw config set strategy weighted
	pick_as weighted pw -v pool next
	export PW_STRATEGY=least-used
	pick_as least-used pw -v pool next
	pick_as random pw -v -c strategy=random pool next
	pick_as performance pw -v -c strategy=random pool next \
	    --strategy performance
}

@test "strategy: an unknown one is exit 2 however it is given, nothing changed" {
	three
	msg="'nope': unknown strategy (want one of: $STRATEGIES, or a plugin's name)"
	run -2 --separate-stderr pw pool next --strategy nope
	is "$output" ""
	is "$stderr" "pw: pool next: $msg"
	run -2 --separate-stderr pw -c strategy=nope pool next
	is "$stderr" "pw: pool next: $msg"
	PW_STRATEGY=nope run -2 --separate-stderr pw pool next
	is "$stderr" "pw: pool next: $msg"
	run -2 --separate-stderr pw config set strategy nope
	is "$stderr" "pw: config set: strategy: $msg"
	# Not even a name: refused where the value comes in.
	run -2 --separate-stderr pw -c 'strategy=Not A Name' pool next
	is "$stderr" "pw: -c: strategy: 'Not A Name': want one of: $STRATEGIES"
	PW_STRATEGY='a b' run -2 --separate-stderr pw pool next
	is "$stderr" "pw: PW_STRATEGY: strategy: 'a b': want one of: $STRATEGIES"
	run -2 --separate-stderr pw pool next --strategy Random
	is "$stderr" "pw: pool next: 'Random': unknown strategy (want one of: $STRATEGIES, or a plugin's name)"
	unchanged
}

@test "strategy: sticky without --session, geo without --country or --region: exit 2" {
	three
	run -2 --separate-stderr pw pool next --strategy sticky
	is "$output" ""
	is "$stderr" "pw: pool next: strategy sticky needs a session (--session ID)"
	run -2 --separate-stderr pw -c strategy=sticky pool next --country DE
	is "$stderr" "pw: pool next: strategy sticky needs a session (--session ID)"
	run -2 --separate-stderr pw pool next --strategy geo
	is "$stderr" "pw: pool next: strategy geo needs a country or region (--country CC, --region R)"
	run -2 --separate-stderr pw pool next --strategy geo --session x
	is "$stderr" "pw: pool next: strategy geo needs a country or region (--country CC, --region R)"
	unchanged
}

# -------------------------------------------------------- bad options

@test "next: bad --country, --scheme, --status, --anonymity: exit 2, nothing changed" {
	three
	for cc in XX DEU D 1A ''; do
		run -2 --separate-stderr pw pool next --country "$cc"
		is "$output" ""
		is "$stderr" "pw: pool next: --country: '$cc': not an ISO 3166-1 alpha-2 country code"
	done
	run -2 --separate-stderr pw pool next --scheme ftp
	is "$stderr" "pw: pool next: --scheme: 'ftp': want http, https, socks4, socks4a, socks5 or socks5h"
	run -2 --separate-stderr pw pool next --status sick
	is "$stderr" "pw: pool next: --status: 'sick': want unknown, healthy, degraded, unhealthy or pending"
	run -2 --separate-stderr pw pool next --anonymity high
	is "$stderr" "pw: pool next: --anonymity: 'high': want transparent, anonymous or elite"
	unchanged
}

@test "next: bad --max-latency, --exclude, --session: exit 2, nothing changed" {
	three
	for ms in 0 -5 abc 1e10 '' 5ms; do
		run -2 --separate-stderr pw pool next --max-latency "$ms"
		is "$output" ""
		is "$stderr" "pw: pool next: --max-latency: '$ms': want milliseconds above 0"
	done
	for id in 0 -1 abc 1.5 ''; do
		run -2 --separate-stderr pw pool next -x "$id"
		is "$stderr" "pw: pool next: --exclude: '$id': want a proxy id"
	done
	run -2 --separate-stderr pw pool next --exclude 1 --exclude x
	is "$stderr" "pw: pool next: --exclude: 'x': want a proxy id"
	for s in '' "$(printf 'a%.0s' {1..257})" $'a\nb' $'caf\xe9'; do
		run -2 --separate-stderr pw pool next --session "$s"
		is "$stderr" "pw: pool next: --session: want 1 to 256 bytes of text without control characters"
	done
	unchanged
	# 256 characters are fine.
	run -0 pw pool next --session "$(printf 'a%.0s' {1..256})"
}

# ---------------------------------------------------------- filters

@test "next: filters by country, region, scheme, source, status, latency" {
	pw -q pool add --country DE --region berlin --source a \
	    http://127.0.0.1:3101
	pw -q pool add --country US --region ny --source b \
	    socks5://127.0.0.1:3102
	pw -q pool add --country de --region hamburg --source b \
	    http://127.0.0.1:3103
	pw pool report 1 --ok --latency-ms 500
	pw pool report 3 --ok --latency-ms 50
	for i in 1 2 3 4; do
		run -0 pw pool next --country DE
		[[ "$output" == http://127.0.0.1:310[13] ]]
		run -0 pw pool next --country de --region hamburg
		is "$output" http://127.0.0.1:3103
		run -0 pw pool next --scheme socks5
		is "$output" socks5://127.0.0.1:3102
		run -0 pw pool next --source b --scheme http
		is "$output" http://127.0.0.1:3103
		run -0 pw pool next --max-latency 100
		is "$output" http://127.0.0.1:3103
		run -0 pw pool next --status unknown --region ny
		is "$output" socks5://127.0.0.1:3102
	done
	# round-robin within the filter, on its own cursor
	run -0 pw pool next --country DE --strategy round-robin --source a
	is "$output" http://127.0.0.1:3101
	# Filters compose with any strategy.
	for s in random weighted least-used performance; do
		run -0 pw pool next --strategy "$s" --country US
		is "$output" socks5://127.0.0.1:3102
	done
	run -0 pw pool next --strategy performance --country DE \
	    --max-latency 499.5
	is "$output" http://127.0.0.1:3103
}

@test "next: a filter that matches nothing is exit 3, with the counts" {
	three
	pw -q pool set 1 --country DE
	before=$(state_sum)
	run -3 --separate-stderr pw pool next --country FR
	is "$output" ""
	is "$stderr" "pw: pool next: $NOPROXY: 3 in pool, 0 matching, 0 unhealthy, 0 cooling down, 0 expired"
	run -3 --separate-stderr pw pool next --status healthy
	is "$stderr" "pw: pool next: $NOPROXY: 3 in pool, 0 matching, 0 unhealthy, 0 cooling down, 0 expired"
	run -3 --separate-stderr pw pool next --anonymity elite
	is "$stderr" "pw: pool next: $NOPROXY: 3 in pool, 0 matching, 0 unhealthy, 0 cooling down, 0 expired"
	run -3 --separate-stderr pw pool next --max-latency 10
	is "$stderr" "pw: pool next: $NOPROXY: 3 in pool, 0 matching, 0 unhealthy, 0 cooling down, 0 expired"
	run -3 --separate-stderr pw pool next --country DE -x 1
	is "$stderr" "pw: pool next: $NOPROXY: 3 in pool, 1 matching, 0 unhealthy, 0 cooling down, 0 expired, 1 excluded"
	unchanged
}

@test "next --exclude: never the excluded ones; all excluded is exit 3" {
	three
	for i in 1 2 3 4 5 6; do
		run -0 pw pool next -x 2 --exclude 3
		is "$output" http://127.0.0.1:3101
	done
	for s in round-robin random weighted least-used; do
		for i in 1 2 3 4 5; do
			run -0 pw pool next --strategy "$s" -x 1
			[[ "$output" != *:3101 ]]
		done
	done
	run -0 pw pool next --session s -x 1 -x 3
	is "$output" http://127.0.0.1:3102
	run -0 pw pool ls --csv
	before=$(state_sum)
	run -3 --separate-stderr pw pool next -x 1 -x 2 -x 3
	is "$output" ""
	is "$stderr" "pw: pool next: $NOPROXY: 3 in pool, 0 unhealthy, 0 cooling down, 0 expired, 3 excluded"
	run -3 --separate-stderr pw pool next -x 1 -x 2 -x 3 --strategy random
	is "$stderr" "pw: pool next: $NOPROXY: 3 in pool, 0 unhealthy, 0 cooling down, 0 expired, 3 excluded"
	unchanged
}

# ------------------------------------------------------ no eligible proxy

@test "no eligible proxy: exit 3 with the exact message, nothing changed" {
	run -3 --separate-stderr pw pool next
	is "$output" ""
	is "$stderr" "pw: pool next: $NOPROXY: 0 in pool, 0 unhealthy, 0 cooling down, 0 expired"
	pw -q pool add http://127.0.0.1:3101 http://127.0.0.1:3102 \
	    http://127.0.0.1:3103 http://127.0.0.1:3104 http://127.0.0.1:3105
	# No pw command sets these yet (health checks and imports with a
	# lifetime come later): write them as those would.
	sqlite3 "$PW_STATE" "UPDATE proxies SET status = 'unhealthy' WHERE id = 1;
	    UPDATE proxies SET expires_at = $PW_NOW WHERE id IN (2, 3)"
	for i in 1 2 3; do
		pw pool report 4 --fail
	done
	before=$(state_sum)
	run -3 --separate-stderr pw pool next -x 5
	is "$output" ""
	is "$stderr" "pw: pool next: $NOPROXY: 5 in pool, 1 unhealthy, 1 cooling down, 2 expired, 1 excluded"
	for s in random weighted least-used performance sticky; do
		run -3 --separate-stderr pw pool next -x 5 --strategy "$s" \
		    --session s
		is "$stderr" "pw: pool next: $NOPROXY: 5 in pool, 1 unhealthy, 1 cooling down, 2 expired, 1 excluded"
	done
	unchanged
	# Only 5 is eligible.
	for i in 1 2 3; do
		run -0 pw pool next
		is "$output" http://127.0.0.1:3105
	done
	# One second before its expiry, a proxy is still eligible.
	PW_NOW=$((PW_NOW - 1)) run -0 pw pool next -x 5 -x 4
	[[ "$output" == http://127.0.0.1:310[23] ]]
}

# ------------------------------------------------------------- sticky

@test "sticky: the same proxy for a session, whatever else picks" {
	pw -q pool add http://127.0.0.1:3101 http://127.0.0.1:3102 \
	    http://127.0.0.1:3103 http://127.0.0.1:3104
	run -0 pw pool next --session alpha
	is "$output" http://127.0.0.1:3101
	run -0 pw pool next --session beta --strategy sticky
	is "$output" http://127.0.0.1:3102
	for i in $(seq 20); do
		run -0 pw pool next --strategy random
		run -0 pw pool next --session alpha
		is "$output" http://127.0.0.1:3101
		run -0 pw pool next --session beta --strategy least-used
		is "$output" http://127.0.0.1:3102
	done
	run -0 --separate-stderr pw pool sessions
	is "$output" "$(lines \
	    "alpha${T}1${T}http://127.0.0.1:3101${T}21${T}0${T}2023-11-14T22:43:20Z" \
	    "beta${T}2${T}http://127.0.0.1:3102${T}21${T}0${T}2023-11-14T22:43:20Z")"
	is "$stderr" ""
}

@test "sticky: the session fails over when its proxy cools down" {
	three
	run -0 pw pool next --session s
	is "$output" http://127.0.0.1:3101
	for i in 1 2 3; do
		run -0 pw pool report 1 --fail
	done
	run -0 --separate-stderr pw -v pool next --session s
	is "$output" http://127.0.0.1:3102
	is "$stderr" "$(lines "pw: session s: proxy 1 is no longer eligible, choosing another" \
	    "pw: round-robin: proxy 2")"
	run -0 pw pool next --session s
	is "$output" http://127.0.0.1:3102
	run -0 pw pool sessions --csv
	is "$output" "$(lines \
	    session,proxy_id,url,requests,failovers,created_at,last_used,expires_at \
	    s,2,http://127.0.0.1:3102,3,1,1700000000,1700000000,1700001800)"
	# Excluded for this request: another, and the session follows it.
	run -0 pw pool next --session s -x 2
	is "$output" http://127.0.0.1:3103
	run -0 pw pool next --session s
	is "$output" http://127.0.0.1:3103
}

@test "sticky: a session idle for session.ttl gets a new proxy and is cleaned up" {
	three
	run -0 pw pool next --session s
	is "$output" http://127.0.0.1:3101
	PW_NOW=$((PW_NOW + 1799)) run -0 pw pool next --session s
	is "$output" http://127.0.0.1:3101
	# Each use keeps it alive for another 30 minutes.
	t=$((PW_NOW + 1799 + 1800))
	PW_NOW=$((t - 1)) run -0 pw pool sessions --csv
	is "${lines[1]}" s,1,http://127.0.0.1:3101,2,0,1700000000,1700001799,1700003599
	PW_NOW=$t run -0 --separate-stderr pw pool sessions
	is "$output" ""
	PW_NOW=$t run -0 pw pool next --session s
	is "$output" http://127.0.0.1:3102
	PW_NOW=$t run -0 pw pool sessions --csv
	# A new session: its counts start again.
	is "${lines[1]}" s,2,http://127.0.0.1:3102,1,0,$t,$t,$((t + 1800))
	# Expired sessions are removed from the file as sessions are used.
	PW_NOW=$t run -0 pw pool next --session other
	PW_NOW=$((t + 1800)) run -0 pw pool next --session third
	run -0 sqlite3 "$PW_STATE" "SELECT id FROM sessions ORDER BY id"
	is "$output" third
	# session.ttl is a setting.
	run -0 pw config set session.ttl 10
	PW_NOW=$((t + 1800)) run -0 pw pool next --session short
	PW_NOW=$((t + 1809)) run -0 pw pool sessions --csv
	is "${lines[1]}" short,2,http://127.0.0.1:3102,1,0,1700005399,1700005399,1700005409
	PW_NOW=$((t + 1810)) run -0 pw pool sessions
	is "$output" "third${T}1${T}http://127.0.0.1:3101${T}1${T}0${T}2023-11-15T00:13:19Z"
}

@test "sessions: masked credentials unless --show-secrets, in every format" {
	run -0 pw -q pool add 'http://us%40r:p%3Ass@127.0.0.1:3128'
	run -0 pw pool next --session web
	is "$output" 'http://us%40r:p%3Ass@127.0.0.1:3128'
	run -0 --separate-stderr pw pool sessions
	is "$output" "web${T}1${T}http://***:***@127.0.0.1:3128${T}1${T}0${T}2023-11-14T22:43:20Z"
	is "$stderr" ""
	run -0 pw pool sessions --plain
	is "$output" "web${T}1${T}http://***:***@127.0.0.1:3128${T}1${T}0${T}2023-11-14T22:43:20Z"
	run -0 pw pool sessions --json
	is "$output" '[{"session":"web","proxy_id":1,"url":"http://***:***@127.0.0.1:3128","requests":1,"failovers":0,"created_at":"2023-11-14T22:13:20Z","last_used":"2023-11-14T22:13:20Z","expires_at":"2023-11-14T22:43:20Z"}]'
	run -0 pw pool sessions --jsonl
	is "$output" '{"session":"web","proxy_id":1,"url":"http://***:***@127.0.0.1:3128","requests":1,"failovers":0,"created_at":"2023-11-14T22:13:20Z","last_used":"2023-11-14T22:13:20Z","expires_at":"2023-11-14T22:43:20Z"}'
	run -0 pw pool sessions --csv
	is "$output" "$(lines \
	    session,proxy_id,url,requests,failovers,created_at,last_used,expires_at \
	    'web,1,http://***:***@127.0.0.1:3128,1,0,1700000000,1700000000,1700001800')"
	run -0 pw pool sessions --table
	is "$output" "$(lines \
	    'SESSION  PROXY_ID  URL                            REQUESTS  FAILOVERS  EXPIRES_AT' \
	    'web             1  http://***:***@127.0.0.1:3128         1          0  2023-11-14T22:43:20Z')"
	run -0 pw pool sessions --show-secrets
	is "$output" "web${T}1${T}http://us%40r:p%3Ass@127.0.0.1:3128${T}1${T}0${T}2023-11-14T22:43:20Z"
	run -0 pw pool sessions --show-secrets --json
	is "$(jq -r '.[0].url' <<<"$output")" 'http://us%40r:p%3Ass@127.0.0.1:3128'
	# No password anywhere in the file.
	run -1 grep -c 'p:ss' "$PW_STATE"
}

@test "sessions: the table lines up session ids of any script, by the columns they take" {
	three
	for s in café 東京 e$'\xcc\x81' plain; do
		run -0 pw pool next --session "$s"
	done
	run -0 --separate-stderr pw pool sessions --table
	is "$output" "$(lines \
	    'SESSION  PROXY_ID  URL                    REQUESTS  FAILOVERS  EXPIRES_AT' \
	    'café            1  http://127.0.0.1:3101         1          0  2023-11-14T22:43:20Z' \
	    "e"$'\xcc\x81'"               3  http://127.0.0.1:3103         1          0  2023-11-14T22:43:20Z" \
	    'plain           1  http://127.0.0.1:3101         1          0  2023-11-14T22:43:20Z' \
	    '東京            2  http://127.0.0.1:3102         1          0  2023-11-14T22:43:20Z')"
	is "$stderr" ""
	# The same in pw pool ls, whose sources and regions are UTF-8 too.
	pw -q pool set 2 --source 'Zürich'
	run -0 pw pool ls --table
	is "${lines[0]}" "ID  URL                    STATUS   COUNTRY  SOURCE  LATENCY_MS  SUCCEEDED  FAILED"
	is "${lines[2]}" " 2  http://127.0.0.1:3102  unknown  -        Zürich           -          0       0"
}

@test "sessions: none is no output; arguments are exit 2" {
	run -0 --separate-stderr pw pool sessions
	is "$output" ""
	is "$stderr" ""
	run -0 pw pool sessions --json
	is "$output" "[]"
	three
	run -2 --separate-stderr pw pool sessions extra
	is "$stderr" "pw: pool sessions: unexpected argument 'extra' (usage: pw pool sessions [options])"
	run -2 --separate-stderr pw pool sessions --session x
	is "$stderr" "pw: pool sessions: unknown option '--session'"
	unchanged
}

# ---------------------------------------------------------------- geo

@test "geo: only the country or region asked for; exit 3 when none matches" {
	pw -q pool add --country DE http://127.0.0.1:3101 \
	    http://127.0.0.1:3103
	pw -q pool add --country US --region ca http://127.0.0.1:3102
	for i in $(seq 10); do
		run -0 pw pool next --strategy geo --country DE
		[[ "$output" == http://127.0.0.1:310[13] ]]
		run -0 pw pool next --strategy geo --region ca
		is "$output" http://127.0.0.1:3102
	done
	before=$(state_sum)
	run -3 --separate-stderr pw pool next --strategy geo --country FR
	is "$output" ""
	is "$stderr" "pw: pool next: $NOPROXY: 3 in pool, 0 matching, 0 unhealthy, 0 cooling down, 0 expired"
	run -3 --separate-stderr pw pool next --strategy geo --country DE \
	    --region ca
	is "$stderr" "pw: pool next: $NOPROXY: 3 in pool, 0 matching, 0 unhealthy, 0 cooling down, 0 expired"
	unchanged
}

@test "geo: a region matches in any case, as a country does, with one cursor" {
	pw -q pool add --country DE --region Berlin http://127.0.0.1:3101 \
	    http://127.0.0.1:3102
	pw -q pool add --country DE --region Hamburg http://127.0.0.1:3103
	run -0 pw pool ls --region BERLIN --plain
	is "$(cut -f1 <<<"$output")" "$(lines 1 2)"
	run -0 pw pool ls --region hamburg --country de --plain
	is "$(cut -f1 <<<"$output")" 3
	# One selection in every spelling: the round-robin goes on.
	out=
	for r in berlin Berlin BERLIN bErLiN; do
		run -0 pw pool next --region "$r"
		out+="${output##*:} "
	done
	is "$out" "3101 3102 3101 3102 "
	run -0 pw pool next --strategy geo --region HAMBURG
	is "$output" http://127.0.0.1:3103
	# Stored as given.
	is "$(field 1 region)" Berlin
	run -3 pw pool next --region berlinx
}

@test "geo: with geo.fallback, any region when none matches, and -v says so" {
	pw -q pool add --country DE http://127.0.0.1:3101
	pw -q pool add --country US http://127.0.0.1:3102
	run -0 pw config set geo.fallback true
	run -0 --separate-stderr pw -v pool next --strategy geo --country FR
	is "$output" http://127.0.0.1:3101
	is "$stderr" "$(lines "pw: geo: no eligible proxy in FR, falling back to any" \
	    "pw: round-robin: proxy 1")"
	run -0 --separate-stderr pw -v pool next --country FR --region x
	is "$output" http://127.0.0.1:3102
	is "${stderr%%$'\n'*}" "pw: geo: no eligible proxy in FR/x, falling back to any"
	# A match is still used when there is one.
	for i in 1 2 3; do
		run -0 pw pool next --strategy geo --country US
		is "$output" http://127.0.0.1:3102
	done
	# -c turns it off for one command.
	run -3 --separate-stderr pw -c geo.fallback=false pool next --country FR
	is "$stderr" "pw: pool next: $NOPROXY: 2 in pool, 0 matching, 0 unhealthy, 0 cooling down, 0 expired"
	PW_GEO__FALLBACK=no run -3 pw pool next --country FR
}

# ------------------------------------------------- strategies, in effect

@test "round-robin: the cursor is shared by every process, and wraps" {
	three
	out=
	for i in $(seq 7); do
		run -0 pw pool next --strategy round-robin
		out+="${output##*:} "
	done
	is "$out" "3101 3102 3103 3101 3102 3103 3101 "
	# Removing the proxy under the cursor keeps the order.
	pw -q pool rm 1
	run -0 pw pool next
	is "$output" http://127.0.0.1:3102
}

@test "least-used: the fewest started, lowest id first; a newcomer catches up" {
	three
	for want in 3101 3102 3103 3101 3102 3103; do
		run -0 pw pool next --strategy least-used
		is "$output" "http://127.0.0.1:$want"
	done
	pw -q pool add http://127.0.0.1:3104
	for want in 3104 3104 3101 3102 3103 3104; do
		run -0 pw pool next --strategy least-used
		is "$output" "http://127.0.0.1:$want"
	done
	# A new window (strategy.window, 1h) starts every count at zero.
	run -0 pw pool next --strategy least-used
	is "$output" http://127.0.0.1:3101
	PW_NOW=$((PW_NOW + 3600)) run -0 pw pool next --strategy least-used
	is "$output" http://127.0.0.1:3101
	PW_NOW=$((PW_NOW + 3600)) run -0 pw pool next --strategy least-used
	is "$output" http://127.0.0.1:3102
}

@test "weighted: zero weight never; the weight decides; none usable is uniform" {
	pw -q pool add --weight 0 http://127.0.0.1:3101
	pw -q pool add --weight 1 http://127.0.0.1:3102
	pw -q pool add --weight 0 http://127.0.0.1:3103
	for i in $(seq 10); do
		run -0 pw pool next --strategy weighted
		is "$output" http://127.0.0.1:3102
	done
	# Nothing usable: uniform, and -v says so.
	pw -q pool set 2 --weight 0
	run -0 --separate-stderr pw -v pool next --strategy weighted
	is "${stderr%%$'\n'*}" "pw: weighted: no usable weight, picking uniformly"
	# pool set --weight moves it.
	pw -q pool set 3 --weight 5
	for i in $(seq 5); do
		run -0 pw pool next --strategy weighted
		is "$output" http://127.0.0.1:3103
	done
}

@test "performance: unmeasured first by the fallback, then by latency" {
	three
	pw pool report 1 --ok --latency-ms 100
	run -0 --separate-stderr pw -v pool next --strategy performance
	is "$output" http://127.0.0.1:3102
	is "$stderr" "$(lines "pw: performance: trying a proxy without latency data" \
	    "pw: performance: proxy 2")"
	run -0 pw pool next --strategy performance
	is "$output" http://127.0.0.1:3103
	# No fallback: only measured ones; none measured is exit 3.
	run -0 pw config set strategy.fallback none
	for i in $(seq 5); do
		run -0 pw pool next --strategy performance
		is "$output" http://127.0.0.1:3101
	done
	before=$(state_sum)
	run -3 --separate-stderr pw pool next --strategy performance -x 1
	is "$output" ""
	is "$stderr" "pw: pool next: performance: no eligible proxy has latency data yet (set strategy.fallback, or report outcomes with latency)"
	unchanged
	run -2 --separate-stderr pw config set strategy.fallback sticky
	is "$stderr" "pw: config set: strategy.fallback: 'sticky': want one of: none round-robin random weighted least-used"
	unchanged
}

# ------------------------------------------------------------- report

@test "report: counters and the latency EMA (strategy.alpha)" {
	three
	run -0 --separate-stderr pw pool report 1 --ok --latency-ms 100
	is "$output" ""
	is "$stderr" ""
	run -0 pw pool report 1 --ok --latency-ms 200
	run -0 pw pool report http://127.0.0.1:3101 --fail
	run -0 pw pool report 1 --ok
	run -0 pw pool show 1 --json
	is "$(jq -c '[.latency_ms, .completed, .succeeded, .failed, .consec_fail, .started]' <<<"$output")" \
	    '[130,4,3,1,0,0]'
	run -0 pw config set strategy.alpha 0.5
	run -0 pw pool report 1 --ok --latency-ms 0
	is "$(field 1 latency_ms)" 65
	PW_STRATEGY__ALPHA=0.9 run -0 pw pool report 1 --ok --latency-ms 165
	is "$(field 1 latency_ms)" 155
	run -0 pw -c strategy.alpha=0.1 pool report 1 --ok --latency-ms 255
	is "$(field 1 latency_ms)" 165
	is "$(field 1 updated_at)" 2023-11-14T22:13:20Z
}

@test "report: --ok, --fail and --latency-ms are checked; nothing changes" {
	three
	pw -q pool add 'http://u:secret@127.0.0.1:3199'
	before=$(state_sum)
	run -2 --separate-stderr pw pool report 1
	is "$output" ""
	is "$stderr" "pw: pool report: give one of --ok or --fail"
	run -2 --separate-stderr pw pool report 1 --ok --fail
	is "$stderr" "pw: pool report: give one of --ok or --fail"
	run -2 --separate-stderr pw pool report 1 --fail --latency-ms 5
	is "$stderr" "pw: pool report: --latency-ms goes with --ok"
	for ms in -1 abc 3600001 '' 1e99 5ms; do
		run -2 --separate-stderr pw pool report 1 --ok --latency-ms "$ms"
		is "$stderr" "pw: pool report: --latency-ms: '$ms': want milliseconds from 0 to 3600000"
	done
	run -2 --separate-stderr pw pool report --ok
	is "$stderr" "pw: pool report: missing argument (usage: pw pool report ID|URL ok|fail [--latency MS])"
	run -2 --separate-stderr pw pool report 1 ok 2
	is "$stderr" "pw: pool report: unexpected argument '2' (usage: pw pool report ID|URL ok|fail [--latency MS])"
	run -1 --separate-stderr pw pool report 9 --ok
	is "$stderr" "pw: pool report: 9: no such proxy"
	run -1 --separate-stderr pw pool report 0 --fail
	is "$stderr" "pw: pool report: 0: no such proxy"
	run -1 --separate-stderr pw pool report http://127.0.0.1:9 --ok
	is "$stderr" "pw: pool report: http://127.0.0.1:9: no such proxy"
	run -1 --separate-stderr pw pool report 'http://u:secret@127.0.0.1:9' --ok
	is "$stderr" "pw: pool report: http://***:***@127.0.0.1:9: no such proxy"
	run -1 --separate-stderr pw pool report 'http://v:secret@127.0.0.1:3199' --ok
	is "$stderr" "pw: pool report: http://***:***@127.0.0.1:3199: no such proxy"
	run -2 --separate-stderr pw pool report 'http://[::1' --ok
	[[ "$stderr" == "pw: pool report: "* ]]
	unchanged
	# The limits themselves are fine.
	run -0 pw pool report 1 --ok --latency-ms 0
	run -0 pw pool report 2 --ok --latency-ms 3600000
	# The same user with another password is the same proxy.
	run -0 pw pool report 'http://u:other@127.0.0.1:3199' --fail
	is "$(field 4 failed)" 1
}

@test "report: consecutive failures cool a proxy down; next skips it until the cooldown ends" {
	three
	run -0 pw pool report 2 --fail
	run -0 pw pool report 2 --fail
	is "$(field 2 cooldown_until)" null
	run -0 pw pool report 2 --fail
	is "$(field 2 consec_fail)" 3
	is "$(field 2 cooldown_until)" 2023-11-14T22:18:20Z
	for want in 3101 3103 3101 3103; do
		run -0 pw pool next
		is "$output" "http://127.0.0.1:$want"
	done
	before=$(state_sum)
	run -3 --separate-stderr pw pool next -x 1 -x 3
	is "$stderr" "pw: pool next: $NOPROXY: 3 in pool, 0 unhealthy, 1 cooling down, 0 expired, 2 excluded"
	PW_NOW=$((PW_NOW + 299)) run -3 pw pool next -x 1 -x 3
	unchanged
	# pool.cooldown is 5 minutes.
	PW_NOW=$((PW_NOW + 300)) run -0 pw pool next -x 1 -x 3
	is "$output" http://127.0.0.1:3102
	# A success ends a cooldown at once and clears the run.
	for i in 1 2 3; do pw pool report 3 --fail; done
	run -3 pw pool next -x 1 -x 2
	run -0 pw pool report 3 --ok
	is "$(field 3 consec_fail)" 0
	is "$(field 3 cooldown_until)" null
	run -0 pw pool next -x 1 -x 2
	is "$output" http://127.0.0.1:3103
}

@test "report: pool.failure_threshold and pool.cooldown are settings" {
	three
	run -0 pw config set pool.failure_threshold 1
	run -0 pw config set pool.cooldown 1m
	run -0 pw pool report 1 --fail
	is "$(field 1 cooldown_until)" 2023-11-14T22:14:20Z
	run -3 pw pool next -x 2 -x 3
	PW_NOW=$((PW_NOW + 60)) run -0 pw pool next -x 2 -x 3
	is "$output" http://127.0.0.1:3101
	PW_POOL__FAILURE_THRESHOLD=2 run -0 pw pool report 2 --fail
	is "$(field 2 cooldown_until)" null
	run -0 pw -c pool.failure_threshold=5 pool report 2 --fail
	is "$(field 2 cooldown_until)" null
	run -0 pw pool report 2 --fail
	is "$(field 2 cooldown_until)" 2023-11-14T22:14:20Z
}

# ------------------------------------------------------------ plugins

@test "plugin: the sample by --strategy-plugin" {
	three
	pw pool report 1 --fail
	pw pool report 2 --ok
	pw pool report 3 --fail
	for i in 1 2 3; do
		run -0 --separate-stderr pw -v pool next \
		    --strategy-plugin "$P/fewest-failures.so"
		is "$output" http://127.0.0.1:3102
		is "$stderr" "pw: fewest-failures: proxy 2"
	done
	is "$(field 2 started)" 3
	# With its own name as --strategy too; filters apply first.
	run -0 pw pool next --strategy-plugin "$P/fewest-failures.so" \
	    --strategy fewest-failures -x 2
	is "$output" http://127.0.0.1:3101
	# A session keeps what the plugin chose.
	run -0 pw pool next --strategy-plugin "$P/fewest-failures.so" \
	    --session p
	is "$output" http://127.0.0.1:3102
}

@test "plugin: by strategy.plugins and config set strategy" {
	three
	pw pool report 1 --fail
	before=$(state_sum)
	# Not loaded, not known.
	run -2 --separate-stderr pw config set strategy fewest-failures
	is "$stderr" "pw: config set: strategy: 'fewest-failures': unknown strategy (want one of: $STRATEGIES, or a plugin's name)"
	unchanged
	# A list: each loaded in turn until one has the name.
	run -0 pw config set strategy.plugins \
	    "$P/out-of-range.so:$P/fewest-failures.so"
	run -0 pw config set strategy fewest-failures
	run -0 --separate-stderr pw -v pool next
	is "$output" http://127.0.0.1:3102
	is "$stderr" "pw: fewest-failures: proxy 2"
	run -0 pw pool next --strategy fewest-failures
	is "$output" http://127.0.0.1:3102
	# By -c and by the environment, too.
	run -0 pw config unset strategy
	run -0 pw config unset strategy.plugins
	run -0 pw -c strategy.plugins="$P/fewest-failures.so" \
	    -c strategy=fewest-failures pool next
	is "$output" http://127.0.0.1:3102
	PW_STRATEGY__PLUGINS=$P/fewest-failures.so run -0 pw pool next \
	    --strategy fewest-failures
	is "$output" http://127.0.0.1:3102
	# A built-in name never loads the plugins.
	PW_STRATEGY__PLUGINS=$P/bad-abi.so run -0 pw pool next
}

@test "plugin: bad ones are refused with a clear message, nothing changed" {
	three
	run -2 --separate-stderr pw pool next --strategy-plugin "$P/bad-abi.so"
	is "$output" ""
	is "$stderr" "pw: pool next: $P/bad-abi.so: plugin ABI version 42, this pw needs 1"
	run -2 --separate-stderr pw pool next --strategy-plugin "$P/no-symbol.so"
	is "$stderr" "pw: pool next: $P/no-symbol.so: not a pw strategy plugin (no pw_strategy_plugin symbol)"
	run -2 --separate-stderr pw pool next --strategy-plugin "$P/missing.so"
	is "$stderr" "pw: pool next: $P/missing.so: cannot load plugin: $P/missing.so: cannot open shared object file: No such file or directory"
	run -2 --separate-stderr pw pool next --strategy-plugin missing.so
	is "$stderr" "pw: pool next: missing.so: plugin path must contain a '/' (say ./missing.so)"
	echo 'not an ELF file' >"$W/text.so"
	run -2 --separate-stderr pw pool next --strategy-plugin "$W/text.so"
	[[ "$stderr" == "pw: pool next: $W/text.so: cannot load plugin: "* ]]
	run -2 --separate-stderr pw pool next --strategy-plugin \
	    "$P/fewest-failures.so" --strategy random
	is "$stderr" "pw: pool next: --strategy random and a plugin named fewest-failures: use one"
	# A plugin that returns an index it was not given.
	run -1 --separate-stderr pw pool next --strategy-plugin "$P/out-of-range.so"
	is "$output" ""
	is "$stderr" "pw: pool next: out-of-range: chose index 3 of 3 candidates"
	# The same through strategy.plugins.
	PW_STRATEGY__PLUGINS=$P/bad-abi.so run -2 --separate-stderr \
	    pw pool next --strategy fewest-failures
	is "$stderr" "pw: pool next: strategy.plugins: $P/bad-abi.so: plugin ABI version 42, this pw needs 1"
	run -2 --separate-stderr pw -c strategy.plugins="$P/no-symbol.so" \
	    pool next --strategy x
	is "$stderr" "pw: pool next: strategy.plugins: $P/no-symbol.so: not a pw strategy plugin (no pw_strategy_plugin symbol)"
	run -2 --separate-stderr pw -c strategy.plugins="$P/fewest-failures.so" \
	    pool next --strategy fewest
	is "$stderr" "pw: pool next: 'fewest': unknown strategy (want one of: $STRATEGIES, or a plugin's name)"
	unchanged
}

# -------------------------------------------------------- concurrency

# add_n N: N proxies on 127.0.0.1, ports 20001 and up.
add_n() {
	local i urls=()
	for i in $(seq "$1"); do
		urls+=("http://127.0.0.1:$((20000 + i))")
	done
	pw -q pool add "${urls[@]}"
}

# workers N K ARGS...: N processes at once, each running K times
# `pw pool next ARGS`; worker w's URLs go to $W/w.out, its errors and
# failed exit codes to $W/w.err.
workers() {
	local n=$1 k=$2 w
	shift 2
	for w in $(seq "$n"); do
		(
			for i in $(seq "$k"); do
				pw pool next "$@" >>"$W/$w.out" \
				    2>>"$W/$w.err" || echo "exit $?" >>"$W/$w.err"
			done
		) &
	done
	wait
}

# no_errors: every worker's stderr is empty.
no_errors() {
	local f bad=0
	for f in "$W"/*.err; do
		if [ -s "$f" ]; then
			echo "${f##*/}:"
			cat "$f"
			bad=1
		fi
	done
	return "$bad"
}

# tally: "distinct min max total" of the URLs the workers printed.
tally() {
	awk '{ n[$0]++; t++ }
	    END { min = -1; for (u in n) { d++;
		if (min < 0 || n[u] < min) min = n[u]; if (n[u] > max) max = n[u] }
	    print d, min, max, t }' "$W"/*.out
}

# started: "sum min max" of the started counters in the state file.
started() {
	pw pool ls --json | jq -r '[.[].started] | "\(add) \(min) \(max)"'
}

@test "concurrency: 32 processes x 100 round-robin picks over 64 proxies: each exactly 50 times" {
	add_n 64
	workers 32 100 --strategy round-robin
	no_errors
	# K = 3200, N = 64: floor(K/N) = ceil(K/N) = 50.
	run -0 tally
	is "$output" "64 50 50 3200"
	run -0 started
	is "$output" "3200 50 50"
	run -0 sqlite3 "$PW_STATE" "PRAGMA integrity_check"
	is "$output" ok
}

@test "concurrency: 16 processes x 10 default picks over 7 proxies: floor or ceil" {
	add_n 7
	workers 16 10
	no_errors
	# K = 160, N = 7: 22 or 23 each.
	run -0 tally
	is "$output" "7 22 23 160"
	run -0 started
	is "$output" "160 22 23"
}

@test "concurrency: 32 processes with one sticky session all get one proxy" {
	add_n 16
	workers 32 5 --session shared --strategy sticky
	no_errors
	run -0 tally
	is "$output" "1 160 160 160"
	run -0 pw pool sessions --csv
	is "${lines[1]%%,17*}" "shared,1,http://127.0.0.1:20001,160,0"
	run -0 started
	is "$output" "160 0 160"
}

@test "concurrency: sessions of their own stay put while others pick" {
	add_n 8
	for w in $(seq 8); do
		(
			for i in $(seq 5); do
				pw pool next --session "s$w" >>"$W/s$w.out" \
				    2>>"$W/s$w.err" || echo "exit $?" >>"$W/s$w.err"
				pw pool next --strategy random >/dev/null \
				    2>>"$W/s$w.err" || echo "exit $?" >>"$W/s$w.err"
			done
		) &
	done
	wait
	no_errors
	for w in $(seq 8); do
		run -0 sort -u "$W/s$w.out"
		is "${#lines[@]}" 1
	done
	run -0 pw pool sessions --json
	is "$(jq -r '[.[].requests] | unique | join(",")' <<<"$output")" 5
	is "$(jq -r 'length' <<<"$output")" 8
	run -0 started
	is "${output%% *}" 80
}

@test "concurrency: 32 processes x 20 least-used picks over 64 proxies: spread within 20% (exactly 10 each)" {
	add_n 64
	workers 32 20 --strategy least-used
	no_errors
	run -0 tally
	is "$output" "64 10 10 640"
	run -0 started
	is "$output" "640 10 10"
}
