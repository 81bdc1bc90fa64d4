#!/usr/bin/env bats
# config.bats -- pw config get / set / unset / list: typed keys,
# validation, and the precedence flag > PW_* environment > state > default.

bats_require_minimum_version 1.5.0

load helper

setup() {
	setup_pw
}

T=$'\t'

# The valid keys as an error message lists them: "a, b, c".
valid_keys() {
	pw config list | cut -f1 | paste -sd, | sed 's/,/, /g'
}

# row KEY: the "config list" line of KEY.
row() {
	pw config list | grep "^$1$T"
}

# A state file with one stored setting, and its digest.
stored() {
	pw config set fetch.retries 5
	before=$(state_sum)
}

# -------------------------------------------------------------- list

@test "config list: every key with value, origin; defaults at first" {
	run -0 --separate-stderr pw config list
	is "$stderr" ""
	[ "${#lines[@]}" -ge 11 ]
	local line
	for line in "strategy${T}round-robin${T}default" \
	    "pool.failure_threshold${T}3${T}default" \
	    "pool.cooldown${T}5m${T}default" "session.ttl${T}30m${T}default" \
	    "fetch.timeout${T}30${T}default" \
	    "fetch.connect_timeout${T}10${T}default" \
	    "fetch.retries${T}3${T}default" \
	    "health.concurrency${T}100${T}default" \
	    "health.failure_threshold${T}3${T}default" \
	    "cache.ttl${T}0${T}default" \
	    "serve.listen${T}127.0.0.1:8000${T}default"; do
		[[ $'\n'"$output"$'\n' == *$'\n'"$line"$'\n'* ]]
	done
	# Every line is key, value, origin; every origin is "default".
	run -0 pw config list
	is "$(printf '%s\n' "$output" | cut -f3 | sort -u)" default
	is "$(printf '%s\n' "$output" | awk -F'\t' 'NF != 3' )" ""
	# Read-only: no state file appears.
	[ ! -e "$PW_STATE" ]
}

@test "config list --json: type, default and description of every key" {
	run -0 --separate-stderr pw config list --jsonl
	[[ $'\n'"$output"$'\n' == *$'\n''{"key":"fetch.retries","value":"3","origin":"default","type":"int","default":"3","description":"proxies pw fetch tries before giving up"}'$'\n'* ]]
	[[ $'\n'"$output"$'\n' == *$'\n''{"key":"fetch.timeout","value":"30","origin":"default","type":"duration","default":"30","description":"whole-request timeout of pw fetch, seconds"}'$'\n'* ]]
	[[ $'\n'"$output"$'\n' == *$'\n''{"key":"serve.listen","value":"127.0.0.1:8000","origin":"default","type":"string","default":"127.0.0.1:8000","description":"address pw serve listens on"}'$'\n'* ]]
	local n=${#lines[@]}
	run -0 --separate-stderr pw config list --csv
	is "${lines[0]}" "key,value,origin,type,default,description"
	is "${#lines[@]}" "$((n + 1))"
}

# ---------------------------------------------------------- get, set

@test "config get: the default when nothing is set" {
	run -0 --separate-stderr pw config get fetch.retries
	is "$output" 3
	is "$stderr" ""
	run -0 --separate-stderr pw config get serve.listen
	is "$output" 127.0.0.1:8000
	run -0 --separate-stderr pw config get pool.cooldown
	is "$output" 5m
	[ ! -e "$PW_STATE" ]
}

@test "config set: stores the value; get and list show it from state" {
	run -0 --separate-stderr pw config set fetch.retries 5
	is "$output" ""
	is "$stderr" ""
	run -0 --separate-stderr pw config get fetch.retries
	is "$output" 5
	is "$(row fetch.retries)" "fetch.retries${T}5${T}state"
	run -0 sqlite3 "$PW_STATE" "SELECT key, value FROM config"
	is "$output" "fetch.retries|5"
	# Set again: replaced, not added.
	run -0 pw config set fetch.retries 6
	run -0 sqlite3 "$PW_STATE" "SELECT key, value FROM config"
	is "$output" "fetch.retries|6"
}

@test "config set: typed values are stored in their canonical form" {
	while IFS='|' read -r key value want; do
		run -0 --separate-stderr pw config set "$key" "$value"
		is "$stderr" ""
		run -0 --separate-stderr pw config get "$key"
		is "$output" "$want"
	done <<-'EOF'
	fetch.retries|+7|7
	fetch.retries|100|100
	fetch.retries|1|1
	health.concurrency|10000|10000
	fetch.timeout|90|90
	fetch.timeout|90s|90s
	fetch.timeout|15m|15m
	fetch.timeout|1h|1h
	pool.cooldown|0|0
	pool.cooldown|30d|30d
	pool.cooldown|2h|2h
	strategy|RANDOM|random
	strategy|Least-Used|least-used
	serve.listen|[::1]:9000|[::1]:9000
	serve.listen|0.0.0.0:80|0.0.0.0:80
	fetch.rate_per_host|10/s|10/s
	fetch.rate_per_host|100/1m|100/1m
	fetch.rate_per_host|5/10s|5/10s
	fetch.rate_per_host|0|0
	ratelimit.backend|Redis|redis
	ratelimit.fail_mode|CLOSED|closed
	ratelimit.redis_url|redis://[::1]:6380/2|redis://[::1]:6380/2
	ratelimit.trusted_proxies|10.0.0.0/8, ::1|10.0.0.0/8, ::1
	EOF
}

@test "config unset: back to the default; unsetting twice is fine" {
	stored
	run -0 --separate-stderr pw config unset fetch.retries
	is "$output" ""
	is "$stderr" ""
	run -0 --separate-stderr pw config get fetch.retries
	is "$output" 3
	is "$(row fetch.retries)" "fetch.retries${T}3${T}default"
	run -0 sqlite3 "$PW_STATE" "SELECT count(*) FROM config"
	is "$output" 0
	run -0 --separate-stderr pw config unset fetch.retries
	is "$stderr" ""
}

# -------------------------------------------------------- validation

@test "config: an unknown key lists the valid keys, exit 2, no change" {
	stored
	local keys
	keys=$(valid_keys)
	[[ "$keys" == "strategy, "*", serve.listen"* ]]
	while IFS='|' read -r verb key; do
		# shellcheck disable=SC2086
		run -2 --separate-stderr pw config $verb
		is "$output" ""
		is "$stderr" "pw: config ${verb%% *}: '$key': unknown config key (valid: $keys)"
		is "$(state_sum)" "$before"
	done <<-'EOF'
	get nope|nope
	set nope 1|nope
	unset nope|nope
	get FETCH.RETRIES|FETCH.RETRIES
	set fetch.retrie 4|fetch.retrie
	set fetch 4|fetch
	EOF
}

@test "config set: an out-of-range or mistyped value gives the range" {
	stored
	while IFS='|' read -r key value want; do
		run -2 --separate-stderr pw config set -- "$key" "$value"
		is "$output" ""
		is "$stderr" "pw: config set: $key: '$value': $want"
		is "$(state_sum)" "$before"
	done <<-'EOF'
	fetch.retries|0|want an integer from 1 to 100
	fetch.retries|101|want an integer from 1 to 100
	fetch.retries|-1|want an integer from 1 to 100
	fetch.retries|3.5|want an integer from 1 to 100
	fetch.retries|three|want an integer from 1 to 100
	fetch.retries||want an integer from 1 to 100
	fetch.retries| 3|want an integer from 1 to 100
	fetch.retries|3 |want an integer from 1 to 100
	fetch.retries|99999999999999999999|want an integer from 1 to 100
	health.concurrency|10001|want an integer from 1 to 10000
	fetch.timeout|0|want a duration from 1s to 3600s (like 90, 90s, 15m, 2h, 7d)
	fetch.timeout|3601|want a duration from 1s to 3600s (like 90, 90s, 15m, 2h, 7d)
	fetch.timeout|2h|want a duration from 1s to 3600s (like 90, 90s, 15m, 2h, 7d)
	fetch.timeout|10x|want a duration from 1s to 3600s (like 90, 90s, 15m, 2h, 7d)
	fetch.timeout|10ms|want a duration from 1s to 3600s (like 90, 90s, 15m, 2h, 7d)
	fetch.timeout|-5|want a duration from 1s to 3600s (like 90, 90s, 15m, 2h, 7d)
	fetch.timeout|m|want a duration from 1s to 3600s (like 90, 90s, 15m, 2h, 7d)
	pool.cooldown|31d|want a duration from 0s to 2592000s (like 90, 90s, 15m, 2h, 7d)
	strategy|Not A Strategy!|want one of: round-robin random weighted least-used performance sticky geo
	fetch.rate_per_host|10|want N/DURATION, like 10/s, 100/1m or 5/10s (0: no cap)
	fetch.rate_per_host|0/s|want N/DURATION, like 10/s, 100/1m or 5/10s (0: no cap)
	fetch.rate_per_host|10/x|want N/DURATION, like 10/s, 100/1m or 5/10s (0: no cap)
	fetch.rate_per_host|10/2d|want N/DURATION, like 10/s, 100/1m or 5/10s (0: no cap)
	fetch.rate_per_host|/s|want N/DURATION, like 10/s, 100/1m or 5/10s (0: no cap)
	ratelimit.backend|disk|want one of: memory sqlite redis
	EOF
	run -2 --separate-stderr pw config set serve.listen $'127.0.0.1:80\n'
	is "$stderr" "pw: config set: serve.listen: value contains a control character"
	is "$(state_sum)" "$before"
	# Not echoed: these may hold a password.
	for v in http://h redis://h:0 'redis://:s3cret@h:99999' redis://h/x; do
		run -2 --separate-stderr pw config set ratelimit.redis_url "$v"
		is "$stderr" "pw: config set: ratelimit.redis_url: want redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]"
	done
	run -2 --separate-stderr pw config set ratelimit.trusted_proxies '10.0.0.0/33'
	is "$stderr" "pw: config set: ratelimit.trusted_proxies: want addresses or networks like 10.0.0.0/8, comma-separated"
	is "$(state_sum)" "$before"
}

@test "config: a Redis password is not stored, and masked where settings are listed unless --show-secrets" {
	stored
	run -2 --separate-stderr pw config set ratelimit.redis_url 'redis://:s3cret@127.0.0.1:6379/0'
	is "$stderr" "pw: config set: ratelimit.redis_url: a password is not kept in the state file; give this URL in \$PW_RATELIMIT__REDIS_URL"
	is "$(state_sum)" "$before"
	export PW_RATELIMIT__REDIS_URL='redis://pw:s3cret@127.0.0.1:6379/0'
	run -0 pw config list
	[[ $output != *s3cret* ]]
	[[ $output == *'redis://***@127.0.0.1:6379/0'* ]]
	run -0 pw config list --json
	[[ $output != *s3cret* ]]
	run -0 pw --show-secrets config list
	[[ $output == *'redis://pw:s3cret@127.0.0.1:6379/0'* ]]
	# Asked for by name, it is shown as it is.
	run -0 pw config get ratelimit.redis_url
	is "$output" "redis://pw:s3cret@127.0.0.1:6379/0"
	# A URL without a password is kept as it is.
	unset PW_RATELIMIT__REDIS_URL
	pw config set ratelimit.redis_url redis://127.0.0.1:6390/1
	is "$(pw config get ratelimit.redis_url)" "redis://127.0.0.1:6390/1"
}

@test "environment: PW_RATELIMIT_CONFIG is ratelimit.config, below PW_RATELIMIT__CONFIG" {
	is "$(PW_RATELIMIT_CONFIG=/etc/a.json pw config get ratelimit.config)" /etc/a.json
	is "$(PW_RATELIMIT_CONFIG=/etc/a.json PW_RATELIMIT__CONFIG=/etc/b.json pw config get ratelimit.config)" /etc/b.json
	run -0 --separate-stderr env PW_RATELIMIT_CONFIG=/etc/a.json pw config list
	[[ $output == *$'ratelimit.config\t/etc/a.json\tenv'* ]]
}

# -------------------------------------------------------- precedence

@test "precedence: flag > PW_* environment > state > default" {
	is "$(row fetch.retries)" "fetch.retries${T}3${T}default"
	pw config set fetch.retries 5
	is "$(row fetch.retries)" "fetch.retries${T}5${T}state"
	run -0 --separate-stderr env PW_FETCH__RETRIES=6 pw config get fetch.retries
	is "$output" 6
	export PW_FETCH__RETRIES=6
	is "$(row fetch.retries)" "fetch.retries${T}6${T}env"
	run -0 --separate-stderr pw -c fetch.retries=7 config get fetch.retries
	is "$output" 7
	run -0 --separate-stderr pw -c fetch.retries=7 config list
	[[ $'\n'"$output"$'\n' == *$'\n'"fetch.retries${T}7${T}flag"$'\n'* ]]
	# Taking each layer away uncovers the one below.
	unset PW_FETCH__RETRIES
	is "$(row fetch.retries)" "fetch.retries${T}5${T}state"
	pw config unset fetch.retries
	is "$(row fetch.retries)" "fetch.retries${T}3${T}default"
	# A flag beats a default with nothing in between.
	run -0 --separate-stderr pw -c fetch.retries=8 config list
	[[ $'\n'"$output"$'\n' == *$'\n'"fetch.retries${T}8${T}flag"$'\n'* ]]
}

@test "precedence: config set stores even when env or a flag overrides" {
	export PW_FETCH__RETRIES=6
	run -0 --separate-stderr pw config set fetch.retries 5
	is "$output" ""
	is "$stderr" ""
	is "$(row fetch.retries)" "fetch.retries${T}6${T}env"
	run -0 sqlite3 "$PW_STATE" "SELECT value FROM config
	    WHERE key = 'fetch.retries'"
	is "$output" 5
}

@test "environment: nested keys use __; values are checked and canonical" {
	while IFS='|' read -r var value key want; do
		run -0 --separate-stderr env "$var=$value" pw config get "$key"
		is "$output" "$want"
		is "$stderr" ""
		run -0 env "$var=$value" pw config list
		[[ $'\n'"$output"$'\n' == *$'\n'"$key${T}$want${T}env"$'\n'* ]]
	done <<-'EOF'
	PW_FETCH__TIMEOUT|12|fetch.timeout|12
	PW_FETCH__CONNECT_TIMEOUT|5s|fetch.connect_timeout|5s
	PW_HEALTH__CONCURRENCY|+250|health.concurrency|250
	PW_POOL__FAILURE_THRESHOLD|9|pool.failure_threshold|9
	PW_SERVE__LISTEN|127.0.0.1:9|serve.listen|127.0.0.1:9
	PW_STRATEGY|RANDOM|strategy|random
	EOF
	# A single underscore, or lower case, is not the variable.
	for var in PW_FETCH_TIMEOUT pw_fetch__timeout PW_fetch__timeout; do
		run -0 --separate-stderr env "$var=12" pw config get fetch.timeout
		is "$output" 30
	done
	# An empty value is a value, and a bad one.
	run -2 --separate-stderr env PW_FETCH__TIMEOUT= pw config get fetch.timeout
	is "$stderr" "pw: PW_FETCH__TIMEOUT: fetch.timeout: '': want a duration from 1s to 3600s (like 90, 90s, 15m, 2h, 7d)"
}

@test "environment: a bad PW_* value is exit 2 and changes nothing" {
	stored
	pw -q pool add http://a.example:1
	before=$(state_sum)
	while IFS='|' read -r var value msg; do
		for cmd in "config get fetch.retries" "config set fetch.retries 4" \
		    "pool add http://b.example:2" "pool ls"; do
			# shellcheck disable=SC2086
			run -2 --separate-stderr env "$var=$value" pw $cmd
			is "$output" ""
			is "$stderr" "pw: $var: $msg"
			is "$(state_sum)" "$before"
		done
	done <<-'EOF'
	PW_FETCH__TIMEOUT|abc|fetch.timeout: 'abc': want a duration from 1s to 3600s (like 90, 90s, 15m, 2h, 7d)
	PW_FETCH__RETRIES|0|fetch.retries: '0': want an integer from 1 to 100
	PW_HEALTH__CONCURRENCY|1e3|health.concurrency: '1e3': want an integer from 1 to 10000
	EOF
}

@test "precedence: a flag does not hide a bad environment value" {
	run -2 --separate-stderr env PW_FETCH__RETRIES=0 pw -c fetch.retries=4 \
	    config get fetch.retries
	is "$output" ""
	is "$stderr" "pw: PW_FETCH__RETRIES: fetch.retries: '0': want an integer from 1 to 100"
}

@test "config: a hand-edited unknown key in the state file is ignored" {
	stored
	sqlite3 "$PW_STATE" "INSERT INTO config VALUES('from.newer.pw', 'x')"
	run -0 --separate-stderr pw config get fetch.retries
	is "$output" 5
	is "$stderr" ""
	run -0 --separate-stderr pw config list
	[[ "$output" != *from.newer.pw* ]]
	# And kept: pw does not delete what it does not know.
	run -0 pw config set fetch.retries 6
	run -0 sqlite3 "$PW_STATE" "SELECT value FROM config
	    WHERE key = 'from.newer.pw'"
	is "$output" x
}
