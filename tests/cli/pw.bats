#!/usr/bin/env bats
# pw.bats -- what every command shares: version, help, command lookup,
# option parsing, output formats, -c overrides and exit statuses.

bats_require_minimum_version 1.5.0

load helper

setup() {
	setup_pw
	export PW_NOW=1700000000	# 2023-11-14T22:13:20Z
}

T=$'\t'

# on_tty CMD: run a shell command with stdout on a terminal (script(1)),
# setting output and lines with the terminal's \r removed.
on_tty() {
	run -0 script -qec "$1" /dev/null
	output=${output//$'\r'/}
	mapfile -t lines <<<"$output"
}

# Every command path the binary knows ("pool", "pool add", ...), one a
# line, from the table that help and completions are made from.
command_paths() {
	pw __dump | sed -n 's/^command\t\([^\t]*\)\t.*/\1/p'
}

# ------------------------------------------------------------ version

@test "pw --version and -V print the version and nothing else" {
	for opt in --version -V; do
		run -0 --separate-stderr pw "$opt"
		[[ "$output" =~ ^pw\ [0-9]+\.[0-9]+\.[0-9]+$ ]]
		is "$stderr" ""
	done
	# Before a command, it wins; it needs no state file.
	run -0 --separate-stderr pw --version pool ls
	[[ "$output" =~ ^pw\ [0-9]+\.[0-9]+\.[0-9]+$ ]]
	[ ! -e "$PW_STATE" ]
}

# --------------------------------------------------------------- help

@test "pw --help: usage, commands, options and exit statuses on stdout" {
	run -0 --separate-stderr pw --help
	is "$stderr" ""
	is "${lines[0]}" "usage: pw [-c KEY=VALUE] [--state FILE] COMMAND [ARGS]"
	[[ "$output" == *$'\ncommands:\n'* ]]
	[[ "$output" == *$'\n  pool      manage the proxy pool\n'* ]]
	[[ "$output" == *$'\n  config    read and change settings\n'* ]]
	[[ "$output" == *$'\n  help      show help for a command\n\nglobal options:\n'* ]]
	# Long options line up whether or not they have a short form.
	[[ "$output" == *$'\n  -c, --config KEY=VALUE    set a config value for this run\n'* ]]
	[[ "$output" == *$'\n      --state FILE          state file'* ]]
	[[ "$output" == *$'\n      --show-secrets        show proxy credentials in clear\n'* ]]
	[[ "$output" == *$'\n  -q, --quiet               say less\n'* ]]
	local want=$output
	for args in -h help; do
		run -0 --separate-stderr pw $args
		is "$output" "$want"
		is "$stderr" ""
	done
	[ ! -e "$PW_STATE" ]
}

@test "pw with no command prints usage on stderr and exits 2" {
	run -2 --separate-stderr pw
	is "$output" ""
	[[ "$stderr" == "usage: pw [-c KEY=VALUE] [--state FILE] COMMAND [ARGS]"$'\n'* ]]
	run -2 --separate-stderr pw -q
	is "$output" ""
	[[ "$stderr" == "usage: pw "* ]]
	[ ! -e "$PW_STATE" ]
}

@test "pw --help: every command is listed, and every listed one exists" {
	run -0 pw --help
	local listed
	listed=$(printf '%s\n' "$output" |
	    sed -n '/^commands:$/,/^$/s/^  \([a-z]*\) .*/\1/p' | grep -vx help)
	is "$listed" "$(command_paths | grep -v ' ')"
	[[ $'\n'"$listed"$'\n' == *$'\npool\n'* ]]
	[[ $'\n'"$listed"$'\n' == *$'\nconfig\n'* ]]
}

@test "pw help CMD, pw CMD -h and --help agree for every command and verb" {
	local n=0 path
	while read -r path; do
		n=$((n + 1))
		# shellcheck disable=SC2086
		run -0 --separate-stderr pw help $path
		is "$stderr" ""
		[[ "${lines[0]}" == "usage: pw $path "* ]]
		local want=$output
		# shellcheck disable=SC2086
		run -0 --separate-stderr pw $path -h
		is "$output" "$want"
		is "$stderr" ""
		# shellcheck disable=SC2086
		run -0 --separate-stderr pw $path --help
		is "$output" "$want"
	done < <(command_paths)
	[ "$n" -ge 12 ]
	[ ! -e "$PW_STATE" ]
}

@test "pw help pool add: usage, options, output and common options" {
	run -0 --separate-stderr pw help pool add
	is "$stderr" ""
	is "${lines[0]}" "usage: pw pool add [options] URL...|-"
	is "${lines[1]}" "add proxies to the pool."
	[[ "$output" == *$'\noptions:\n      --country CC          ISO 3166-1 alpha-2 country code\n'* ]]
	[[ "$output" == *$'\n      --weight W            weight for the weighted strategy (0-1e9)\n'* ]]
	[[ "$output" == *$'\noutput:\n      --json                output a JSON array or object\n'* ]]
	[[ "$output" == *$'\ncommon options:\n'* ]]
	[[ "$output" == *$'\n  -h, --help                show this help' ]]
	# A unique prefix names the same verb.
	local want=$output
	run -0 --separate-stderr pw help pool a
	is "$output" "$want"
	run -0 --separate-stderr pw po ad -h
	is "$output" "$want"
	# -h wins over everything else on the line, and touches no state.
	run -0 --separate-stderr pw pool add -h http://bad.example:0
	is "$output" "$want"
	is "$stderr" ""
	[ ! -e "$PW_STATE" ]
}

@test "pw help pool, pw pool -h: the verbs" {
	run -0 --separate-stderr pw help pool
	is "$output" "$(lines "usage: pw pool VERB [options] [ARGS]" "" \
	    "manage the proxy pool." "" "verbs:" \
	    "  add         add proxies to the pool" \
	    "  rm          remove proxies" \
	    "  ls          list proxies" \
	    "  show        show everything about one proxy" \
	    "  set         change a proxy's metadata" \
	    "  clear       remove every proxy" \
	    "  next        choose a proxy and print its URL" \
	    "  report      record how a request through a proxy went" \
	    "  flush       send the outcomes queued for the service" \
	    "  sessions    list live sticky sessions" "" \
	    "See 'pw help pool VERB' for one verb.")"
	is "$stderr" ""
	local want=$output
	run -0 --separate-stderr pw pool -h
	is "$output" "$want"
	run -0 --separate-stderr pw pool --help
	is "$output" "$want"
	run -2 --separate-stderr pw pool
	is "$output" ""
	is "$stderr" "pw: pool: a verb is needed (see 'pw help pool')
$want"
	run -2 --separate-stderr pw pool --strategy random next
	is "$output" ""
	is "$stderr" "pw: pool: the verb comes before options (see 'pw help pool')
$want"
}

@test "pw help: an unknown command or verb is exit 2" {
	run -2 --separate-stderr pw help nope
	is "$output" ""
	is "$stderr" "pw: nope: unknown command (see 'pw --help')"
	run -2 --separate-stderr pw help pool nope
	is "$output" ""
	is "$stderr" "pw: nope: unknown verb (see 'pw --help')"
	run -2 --separate-stderr pw help pol
	is "$stderr" "pw: pol: unknown command; did you mean 'pool'?"
}

@test "pw __dump: the command table, one well-formed record a line" {
	pw __dump >"$BATS_TEST_TMPDIR/dump"
	# Text only: no NUL or other control bytes but tabs and newlines.
	run -1 grep -c -a -P '[\x00-\x08\x0b-\x1f\x7f]' "$BATS_TEST_TMPDIR/dump"
	run -0 awk -F'\t' '
	    $1 == "command" && NF == 3 && $2 != "" { next }
	    $1 == "option" && NF == 6 && $3 ~ /^--[a-z][a-z-]*$/ &&
		$4 ~ /^(-[a-zA-Z])?$/ { next }
	    { print "bad: " $0 }' "$BATS_TEST_TMPDIR/dump"
	is "$output" ""
	run -0 grep -c -P '^option\tpool add\t--weight\t\tW\tweight ' \
	    "$BATS_TEST_TMPDIR/dump"
	run -0 grep -c -P '^option\t\t--quiet\t-q\t\tsay less$' \
	    "$BATS_TEST_TMPDIR/dump"
}

# ---------------------------------------------------- command lookup

@test "pw: an unknown command gets 'did you mean' and exit 2" {
	while IFS='|' read -r word msg; do
		run -2 --separate-stderr pw "$word" ls
		is "$output" ""
		is "$stderr" "pw: $word: $msg"
	done <<-'EOF'
	pol|unknown command; did you mean 'pool'?
	pooll|unknown command; did you mean 'pool'?
	opol|unknown command; did you mean 'pool'?
	conifg|unknown command; did you mean 'config'?
	cnfig|unknown command; did you mean 'config'?
	xyzzy|unknown command (see 'pw --help')
	EOF
	[ ! -e "$PW_STATE" ]
}

@test "pw: an unknown verb gets 'did you mean' and exit 2" {
	while IFS='|' read -r cmd word msg; do
		run -2 --separate-stderr pw "$cmd" "$word"
		is "$output" ""
		is "$stderr" "pw: $word: $msg"
	done <<-'EOF'
	pool|lss|unknown verb; did you mean 'ls'?
	pool|dad|unknown verb; did you mean 'add'?
	pool|shwo|unknown verb; did you mean 'show'?
	pool|frobnicate|unknown verb (see 'pw --help')
	config|lst|unknown verb; did you mean 'list'?
	config|gte|unknown verb; did you mean 'get'?
	EOF
	[ ! -e "$PW_STATE" ]
}

@test "pw: a unique prefix runs the command; an ambiguous one is exit 2" {
	pw -q pool add http://a.example:1
	run -0 --separate-stderr pw po l
	is "$output" "1${T}http://a.example:1${T}unknown${T}-${T}-${T}-${T}0${T}0"
	run -0 --separate-stderr pw conf g fetch.retries
	is "$output" 3
	# Every verb of pool that starts with "s", in table order.
	local could
	could=$(command_paths | sed -n 's/^pool \(s.*\)/\1/p' | paste -sd, |
	    sed 's/,/, /g')
	[[ "$could" == *", "* ]]
	run -2 --separate-stderr pw pool s 1
	is "$output" ""
	is "$stderr" "pw: s: ambiguous verb, could be: $could"
}

# ----------------------------------------------------------- options

@test "pw: an unknown option is exit 2, before or after the command" {
	pw -q pool add http://a.example:1
	local before
	before=$(state_sum)
	while IFS='|' read -r msg args; do
		# shellcheck disable=SC2086
		run -2 --separate-stderr pw $args
		is "$output" ""
		is "$stderr" "pw: $msg"
		is "$(state_sum)" "$before"
	done <<-'EOF'
	unknown option '--bogus' before the command (see 'pw --help')|--bogus pool ls
	unknown option '-x' before the command (see 'pw --help')|-x pool ls
	pool ls: unknown option '--bogus'|pool ls --bogus
	pool ls: unknown option '-x'|pool ls -x
	pool add: unknown option '--yes'|pool add --yes http://b.example:2
	pool rm: unknown option '-c'|pool rm -c 1
	pool ls: option '--json' takes no value|pool ls --json=yes
	pool ls: option '--status' needs a value|pool ls --status
	pool add: option '--country' needs a value|pool add http://b.example:2 --country
	config get: unknown option '--json'|config get --json strategy
	EOF
}

@test "pw: missing or extra arguments are exit 2 with the usage" {
	pw -q pool add http://a.example:1
	local before
	before=$(state_sum)
	while IFS=';' read -r args msg; do
		# shellcheck disable=SC2086
		run -2 --separate-stderr pw $args
		is "$output" ""
		is "$stderr" "pw: $msg"
		is "$(state_sum)" "$before"
	done <<-'EOF'
	pool add;pool add: missing argument (usage: pw pool add [options] URL...|-)
	pool rm;pool rm: missing argument (usage: pw pool rm ID|URL...)
	pool show;pool show: missing argument (usage: pw pool show ID|URL)
	pool show 1 2;pool show: unexpected argument '2' (usage: pw pool show ID|URL)
	pool set;pool set: missing argument (usage: pw pool set ID|URL [options])
	pool ls 1;pool ls: unexpected argument '1' (usage: pw pool ls [options])
	pool clear now;pool clear: unexpected argument 'now' (usage: pw pool clear --yes)
	config get;config get: missing argument (usage: pw config get KEY)
	config get strategy fetch.retries;config get: unexpected argument 'fetch.retries' (usage: pw config get KEY)
	config set strategy;config set: missing argument (usage: pw config set KEY VALUE)
	config set strategy random x;config set: unexpected argument 'x' (usage: pw config set KEY VALUE)
	config unset;config unset: missing argument (usage: pw config unset KEY)
	config list x;config list: unexpected argument 'x' (usage: pw config list [options])
	EOF
}

@test "pw: option forms --opt=value, --opt value, -x, bundles and --" {
	run -0 --separate-stderr pw pool add --country=de --source src \
	    http://a.example:1 -q
	is "$output" ""
	run -0 --separate-stderr pw pool ls --country=DE --source=src
	is "$output" "1${T}http://a.example:1${T}unknown${T}DE${T}src${T}-${T}0${T}0"
	run -0 --separate-stderr pw pool clear -qy
	is "$stderr" ""
	# After --, a word that starts with '-' is an argument.
	run -2 --separate-stderr pw pool rm -- -1
	is "$stderr" "pw: pool rm: '-1': bad host name"
}

@test "pw: global options go before the command, common ones also after" {
	local alt=$BATS_TEST_TMPDIR/alt.db
	run -0 --separate-stderr pw --state "$alt" pool add http://a.example:1
	run -0 --separate-stderr pw pool ls --state "$alt"
	is "$output" "1${T}http://a.example:1${T}unknown${T}-${T}-${T}-${T}0${T}0"
	run -0 --separate-stderr pw --state="$alt" -q pool add http://b.example:2
	is "$output" ""
	run -0 --separate-stderr pw --state "$alt" --show-secrets pool ls
	is "${#lines[@]}" 2
	[ ! -e "$PW_STATE" ]
}

# ----------------------------------------------------------- formats

# Two proxies, one with credentials and metadata.
two() {
	pw -q pool add --country de --region berlin --source list1 \
	    --weight 2 'socks5://u:p@[2001:db8::1]:1080'
	pw -q pool add http://a.example:8080
}

@test "output: plain is the default when stdout is not a terminal" {
	two
	run -0 --separate-stderr pw pool ls
	is "$output" "$(lines \
	    "1${T}socks5://***:***@[2001:db8::1]:1080${T}unknown${T}DE${T}list1${T}-${T}0${T}0" \
	    "2${T}http://a.example:8080${T}unknown${T}-${T}-${T}-${T}0${T}0")"
	is "$stderr" ""
	run -0 --separate-stderr pw pool ls --plain
	is "${lines[1]}" "2${T}http://a.example:8080${T}unknown${T}-${T}-${T}-${T}0${T}0"
}

@test "output: --table aligns columns, numbers to the right" {
	two
	run -0 --separate-stderr pw pool ls --table
	is "$output" "$(lines \
	    "ID  URL                                  STATUS   COUNTRY  SOURCE  LATENCY_MS  SUCCEEDED  FAILED" \
	    " 1  socks5://***:***@[2001:db8::1]:1080  unknown  DE       list1            -          0       0" \
	    " 2  http://a.example:8080                unknown  -        -                -          0       0")"
	is "$stderr" ""
}

@test "output: --json is one array of objects with typed values" {
	two
	run -0 --separate-stderr pw pool ls --json
	is "$output" '[{"id":1,"url":"socks5://***:***@[2001:db8::1]:1080","scheme":"socks5","host":"2001:db8::1","port":1080,"credentials":true,"status":"unknown","country":"DE","region":"berlin","source":"list1","anonymity":null,"weight":2.0,"latency_ms":null,"started":0,"completed":0,"succeeded":0,"failed":0,"consec_fail":0,"added_at":"2023-11-14T22:13:20Z","updated_at":"2023-11-14T22:13:20Z","expires_at":null,"last_checked":null,"last_used":null,"cooldown_until":null},{"id":2,"url":"http://a.example:8080","scheme":"http","host":"a.example","port":8080,"credentials":false,"status":"unknown","country":null,"region":null,"source":null,"anonymity":null,"weight":null,"latency_ms":null,"started":0,"completed":0,"succeeded":0,"failed":0,"consec_fail":0,"added_at":"2023-11-14T22:13:20Z","updated_at":"2023-11-14T22:13:20Z","expires_at":null,"last_checked":null,"last_used":null,"cooldown_until":null}]'
	is "$stderr" ""
	run -0 python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert len(d) == 2' /dev/stdin <<<"$output"
}

@test "output: --jsonl is one object a line, the same objects" {
	two
	run -0 --separate-stderr pw pool ls --json
	local arr=$output
	run -0 --separate-stderr pw pool ls --jsonl
	is "${#lines[@]}" 2
	is "[${lines[0]},${lines[1]}]" "$arr"
	is "$stderr" ""
	local second=${lines[1]}
	run -0 --separate-stderr pw pool show 2 --jsonl
	is "$output" "$second"
}

@test "output: --csv has a header row and quotes what needs it" {
	two
	pw pool set 2 --region 'a, "b"'
	run -0 --separate-stderr pw pool ls --csv
	is "$output" "$(lines \
	    "id,url,scheme,host,port,credentials,status,country,region,source,anonymity,weight,latency_ms,started,completed,succeeded,failed,consec_fail,added_at,updated_at,expires_at,last_checked,last_used,cooldown_until" \
	    "1,socks5://***:***@[2001:db8::1]:1080,socks5,2001:db8::1,1080,1,unknown,DE,berlin,list1,,2.0,,0,0,0,0,0,1700000000,1700000000,,,," \
	    '2,http://a.example:8080,http,a.example,8080,0,unknown,,"a, ""b""",,,,,0,0,0,0,0,1700000000,1700000000,,,,')"
	is "$stderr" ""
	# An empty list is the header alone.
	run -0 --separate-stderr pw pool ls --csv --country FR
	is "$output" "id,url,scheme,host,port,credentials,status,country,region,source,anonymity,weight,latency_ms,started,completed,succeeded,failed,consec_fail,added_at,updated_at,expires_at,last_checked,last_used,cooldown_until"
}

@test "output: a table with colour on a terminal; NO_COLOR and --no-color" {
	two
	local bold=$'\e[1m' reset=$'\e[0m'
	on_tty 'pw pool ls'
	is "${lines[0]}" "${bold}ID  URL                                  STATUS   COUNTRY  SOURCE  LATENCY_MS  SUCCEEDED  FAILED${reset}"
	is "${lines[2]}" " 2  http://a.example:8080                unknown  -        -                -          0       0"
	local plain_header="ID  URL                                  STATUS   COUNTRY  SOURCE  LATENCY_MS  SUCCEEDED  FAILED"
	on_tty 'NO_COLOR=1 pw pool ls'
	is "${lines[0]}" "$plain_header"
	[[ "$output" != *$'\e'* ]]
	on_tty 'pw pool ls --no-color'
	is "${lines[0]}" "$plain_header"
	on_tty 'pw --no-color pool ls'
	is "${lines[0]}" "$plain_header"
	# On a terminal, --plain still gives plain lines.
	on_tty 'pw pool ls --plain'
	is "${lines[1]}" "2${T}http://a.example:8080${T}unknown${T}-${T}-${T}-${T}0${T}0"
	# Output options are refused where nothing is listed.
	run -2 --separate-stderr pw pool rm --json 1
	is "$stderr" "pw: pool rm: unknown option '--json'"
}

@test "output: config list in every format" {
	run -0 --separate-stderr pw config list --csv
	is "${lines[0]}" "key,value,origin,type,default,description"
	[[ "${lines[1]}" == strategy,round-robin,default,enum,round-robin,* ]]
	run -0 --separate-stderr pw config list --jsonl
	[[ "${lines[0]}" == '{"key":"strategy","value":"round-robin","origin":"default","type":"enum","default":"round-robin","description":'* ]]
	local n=${#lines[@]}
	run -0 --separate-stderr pw config list --json
	run -0 python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))))' /dev/stdin <<<"$output"
	is "$output" "$n"
	# the key column is as wide as the longest key
	local w
	w=$(pw config list --plain | cut -f1 | awk '{ if (length > m) m = length }
	    END { print m }')
	run -0 --separate-stderr pw config list --table
	[[ "${lines[0]}" =~ ^KEY\ +VALUE\ +ORIGIN$ ]]
}

# ------------------------------------------------------- -c overrides

@test "pw -c KEY=VALUE overrides a setting for one run only" {
	run -0 --separate-stderr pw -c fetch.retries=9 config get fetch.retries
	is "$output" 9
	is "$stderr" ""
	run -0 --separate-stderr pw -cfetch.retries=8 config get fetch.retries
	is "$output" 8
	run -0 --separate-stderr pw --config fetch.retries=7 -c \
	    fetch.timeout=2m config get fetch.timeout
	is "$output" 2m
	# The last one given wins.
	run -0 --separate-stderr pw -c fetch.retries=5 -c fetch.retries=6 \
	    config get fetch.retries
	is "$output" 6
	# Nothing persists, not even through a command that writes.
	run -0 pw -c fetch.retries=9 config set fetch.timeout 45
	run -0 --separate-stderr pw config get fetch.retries
	is "$output" 3
	run -0 sqlite3 "$PW_STATE" "SELECT key, value FROM config"
	is "$output" "fetch.timeout|45"
}

@test "pw -c: a bad override is exit 2 and changes nothing" {
	pw -q pool add http://a.example:1
	local before
	before=$(state_sum)
	while IFS=';' read -r kv msg; do
		run -2 --separate-stderr pw -c "$kv" pool add http://b.example:2
		is "$output" ""
		is "$stderr" "pw: $msg"
		is "$(state_sum)" "$before"
	done <<-'EOF'
	fetch.retries;-c fetch.retries: want KEY=VALUE
	fetch.retries=0;-c: fetch.retries: '0': want an integer from 1 to 100
	fetch.retries=;-c: fetch.retries: '': want an integer from 1 to 100
	fetch.timeout=1y;-c: fetch.timeout: '1y': want a duration from 1s to 3600s (like 90, 90s, 15m, 2h, 7d)
	EOF
	run -2 --separate-stderr pw -c nope=1 pool ls
	is "$output" ""
	[[ "$stderr" == "pw: -c: 'nope': unknown config key (valid: strategy, "*")" ]]
	is "$(state_sum)" "$before"
	# -c with no value at all.
	run -2 --separate-stderr pw -c
	is "$output" ""
	[[ "$stderr" == "usage: pw "* ]]
}

# -------------------------------------------------------- exit codes

@test "exit statuses: documented in --help, and the ones pool uses match" {
	run -0 pw --help
	local doc
	doc=$(printf '%s\n' "$output" | sed -n '/^exit status:$/,/^$/p')
	is "$doc" "$(lines "exit status:" "  0   success" "  1   error" \
	    "  2   usage error (bad option, argument or value)" \
	    "  3   no eligible proxy" "  4   every proxy tried failed" \
	    "  5   target error" "  75  busy: a lock is held by another run" \
	    "")"
	# 0 success, 1 error, 2 usage: what "pool" and "config" really return.
	run -0 pw -q pool add http://a.example:1
	run -1 pw pool rm 42
	run -1 pw pool show 42
	run -2 pw pool add http://a.example:0
	run -2 pw config set nope 1
	run -2 pw pool lss
	# An unusable state file is an error (1), not a usage error.
	printf 'not a database\n' >"$BATS_TEST_TMPDIR/junk.db"
	run -1 pw --state "$BATS_TEST_TMPDIR/junk.db" pool ls
}

@test "errors are one line on stderr, 'pw: <what>: <why>', nothing on stdout" {
	pw -q pool add http://a.example:1
	local args
	while IFS= read -r args; do
		# shellcheck disable=SC2086
		run --separate-stderr pw $args
		[ "$status" -ne 0 ]
		is "$output" ""
		is "${#stderr_lines[@]}" 1
		[[ "$stderr" =~ ^pw:\ [^:]+(:\ .+)+$ ]]
	done <<-'EOF'
	pool add http://a.example:0
	pool add ftp://a.example
	pool rm 42
	pool show http://nope.example:1
	pool set 42 --weight 1
	pool clear
	pool ls --status sick
	pool ls --bogus
	pool lss
	conifg
	config get nope
	config set fetch.retries 1000
	config unset nope
	-c fetch.retries=0 pool ls
	EOF
}
