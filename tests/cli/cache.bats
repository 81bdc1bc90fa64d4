#!/usr/bin/env bats
# cache.bats -- pw cache warm / export / prune / stats: every list format
# and every kind of bad record, warming from a local URL and from the
# configured sources, round trips, TTL, eviction counts, corruption, a
# kill -9 during a large warm, --validate with a live proxy (tinyproxy),
# a refused port and a judge that never answers, and bad input that must
# change nothing.

bats_require_minimum_version 1.5.0

load helper
load ../helpers/peers

setup_file() {
	export FILES_DIR=$BATS_FILE_TMPDIR/www
	mkdir -p "$FILES_DIR"
	printf 'http://10.1.0.1:8080\nsocks5://10.1.0.2:1080\n' \
	    >"$FILES_DIR/a.txt"
	printf '[{"url":"http://10.2.0.1:3128","country":"de"},' \
	    >"$FILES_DIR/b.json"
	printf '"http://10.1.0.1:8080"]\n' >>"$FILES_DIR/b.json"
	printf 'host,port\n10.3.0.1,8000\n' >"$FILES_DIR/list"
	FILES_PORT=$(free_port)
	_peers_spawn files "$BATS_FILE_TMPDIR/files.log" /usr/bin/python3 \
	    -m http.server --bind 127.0.0.1 --directory "$FILES_DIR" \
	    "$FILES_PORT"
	wait_port "$FILES_PORT"
	export FILES_PORT FILES_URL=http://127.0.0.1:$FILES_PORT
	start_origin
	export JUDGE=$ORIGIN_URL/echo
	start_tinyproxy
	export LIVE=$TINYPROXY_URL
	refused_port >/dev/null
	export DEAD=http://127.0.0.1:$REFUSED_PORT
	start_blackhole
	export HANG_JUDGE=http://127.0.0.1:$BLACKHOLE_PORT/
}

teardown_file() {
	stop_peers
}

setup() {
	setup_pw
	cd "$BATS_TEST_TMPDIR"
}

T=$'\t'

urls() {
	sqlite3 "$PW_STATE" "SELECT url FROM proxies ORDER BY id"
}

# A pool of two, and the digest of the state file.
two() {
	pw -q pool add http://h1.example:8080 socks5://h2.example
	before=$(state_sum)
}

# ------------------------------------------------------------------ txt

@test "warm txt: comments, blank lines, CRLF, BOM, spaces; summary counts" {
	printf '\xef\xbb\xbf# a list\r\nhttp://10.0.0.1:8080\r\n\r\n  socks5://u:p@10.0.0.2:1080  \r\n10.0.0.3:3128\n# end' >l.txt
	run -0 --separate-stderr pw cache warm l.txt
	is "$output" "l.txt${T}ok${T}3${T}3${T}0${T}0${T}0${T}-"
	is "$stderr" ""
	is "$(urls)" "$(lines http://10.0.0.1:8080 socks5://10.0.0.2:1080 \
	    http://10.0.0.3:3128)"
	run -0 pw --show-secrets pool show 2 --json
	[[ $output == *'"url":"socks5://u:p@10.0.0.2:1080"'* ]]
}

@test "warm txt: every kind of bad line is skipped with file:line and why" {
	{
		printf 'http://10.0.0.1:8080\n'
		printf 'ftp://10.0.0.2:21\n'
		printf 'http://10.0.0.3:99999\n'
		printf 'http://10.0.0.4:80x\n'
		printf 'http://:8080\n'
		printf 'http://10.0.0.5:8080/path\n'
		printf 'http://10.0.0.6:80\0\n'
		printf 'http://%09000d.example:1\n' 0
		printf 'http://10.0.0.7:8080\n'
	} >bad.txt
	run -0 --separate-stderr pw cache warm bad.txt
	is "$output" "bad.txt${T}ok${T}2${T}2${T}0${T}0${T}7${T}-"
	is "$stderr" "$(lines \
	    "pw: cache warm: bad.txt:2: 'ftp://10.0.0.2:21': unsupported scheme 'ftp' (use http, https, socks4, socks4a, socks5 or socks5h)" \
	    "pw: cache warm: bad.txt:3: 'http://10.0.0.3:99999': port out of range (1-65535)" \
	    "pw: cache warm: bad.txt:4: 'http://10.0.0.4:80x': port is not a number" \
	    "pw: cache warm: bad.txt:5: 'http://:8080': missing host" \
	    "pw: cache warm: bad.txt:6: 'http://10.0.0.5:8080/path': a proxy URL has no path, query or fragment" \
	    "pw: cache warm: bad.txt:7: contains a NUL byte" \
	    "pw: cache warm: bad.txt:8: line too long (over 8192 bytes)")"
	is "$(urls)" "$(lines http://10.0.0.1:8080 http://10.0.0.7:8080)"
}

@test "warm: a password in a bad line never shows in the warning" {
	printf 'http://user:Sekr1tPw@10.0.0.1:99999\n' >l.txt
	run -0 --separate-stderr pw cache warm l.txt
	[[ $stderr == *"'http://***:***@10.0.0.1:99999': port out of range"* ]]
	[[ $stderr != *Sekr1tPw* ]]
}

@test "warm: a re-warm with a new password keeps the new one" {
	printf 'socks5://al:old@10.0.0.1:1080\n' >a.txt
	printf 'socks5://al:new@10.0.0.1:1080\n' >b.txt
	pw -q cache warm a.txt
	run -0 pw cache warm b.txt
	is "$output" "b.txt${T}ok${T}1${T}0${T}1${T}0${T}0${T}-"
	run -0 pw cache export --with-credentials -f txt
	is "$output" socks5://al:new@10.0.0.1:1080
}

@test "warm: duplicates in one run, and a re-warm updates" {
	printf 'http://10.0.0.1:8080\nhttp://10.0.0.1:8080/\n10.0.0.2:80\n' \
	    >l.txt
	run -0 pw cache warm l.txt
	is "$output" "l.txt${T}ok${T}3${T}2${T}0${T}1${T}0${T}-"
	run -0 pw cache warm --source again --ttl 1h l.txt
	is "$output" "again${T}ok${T}3${T}0${T}2${T}1${T}0${T}-"
	run -0 sqlite3 "$PW_STATE" "SELECT count(*), count(expires_at), \
	    min(source) FROM proxies"
	is "$output" "2|2|again"
}

# ------------------------------------------------------------------ csv

@test "warm csv: url column, quoting, extra columns, metadata, CRLF" {
	{
		printf 'note,URL,country,region,source,weight\r\n'
		printf '"a, b",http://10.0.0.1:8080,de,Berlin,s1,2.5\r\n'
		printf '"multi\nline ""x""",socks5://10.0.0.2:1080,FR,,,\r\n'
	} >l.csv
	run -0 --separate-stderr pw cache warm l.csv
	is "$output" "l.csv${T}ok${T}2${T}2${T}0${T}0${T}0${T}-"
	is "$stderr" ""
	run -0 sqlite3 "$PW_STATE" "SELECT url, country, region, source, \
	    weight FROM proxies ORDER BY id"
	is "$output" "$(lines "http://10.0.0.1:8080|DE|Berlin|s1|2.5" \
	    "socks5://10.0.0.2:1080|FR|||")"
}

@test "warm csv: CR before LF in a quoted field is dropped too" {
	printf 'url,username,password,note\r\nhttp://127.0.0.1:80,u,"two\r\nlines","a\r\nb"\r\n' \
	    >cr.csv
	run -0 --separate-stderr pw cache warm cr.csv
	is "$output" "cr.csv${T}ok${T}1${T}1${T}0${T}0${T}0${T}-"
	is "$stderr" ""
	run -0 pw cache export --with-credentials -f txt
	is "$output" "http://u:two%0Alines@127.0.0.1:80"
}

@test "warm csv: host/port/scheme/username/password columns" {
	printf 'scheme,host,port,username,password\nsocks5,10.0.0.1,1080,al,"p,w"\n,10.0.0.2,,,\nhttps,::1,8443,,\n' >l.csv
	run -0 pw cache warm l.csv
	is "$(urls)" "$(lines socks5://10.0.0.1:1080 http://10.0.0.2:80 \
	    'https://[::1]:8443')"
	run -0 pw --show-secrets pool show 1 --json
	[[ $output == *'"url":"socks5://al:p%2Cw@10.0.0.1:1080"'* ]]
}

@test "warm csv/jsonl: a host or port column cannot add credentials or a host" {
	printf 'host,port\n127.0.0.1,80@127.0.0.9\nu@127.0.0.2,8080\n127.0.0.3,8080\n' \
	    >inj.csv
	run -0 --separate-stderr pw cache warm inj.csv
	is "$output" "inj.csv${T}ok${T}1${T}1${T}0${T}0${T}2${T}-"
	is "$stderr" "$(lines \
	    "pw: cache warm: inj.csv:2: port is not a number" \
	    "pw: cache warm: inj.csv:3: bad host: want a host name or an IP address")"
	printf '{"host":"127.0.0.1","port":"81@127.0.0.8"}\n' >inj.jsonl
	run -0 --separate-stderr pw cache warm inj.jsonl
	is "$output" "inj.jsonl${T}ok${T}0${T}0${T}0${T}0${T}1${T}-"
	is "$stderr" "pw: cache warm: inj.jsonl:1: port is not a number"
	# A user name or password column is a part, not pasted in.
	printf 'host,port,username,password\n127.0.0.4,80,u@127.0.0.9:1,p/w@x\n' \
	    >creds.csv
	run -0 pw cache warm creds.csv
	is "$(urls)" "$(lines http://127.0.0.3:8080 http://127.0.0.4:80)"
	run -0 pw cache export --with-credentials -f txt
	is "$output" "$(lines http://127.0.0.3:8080 \
	    http://u%40127.0.0.9%3A1:p%2Fw%40x@127.0.0.4:80)"
}

@test "warm csv: bad quoting, wrong field counts, bad values" {
	{
		printf 'url,country,weight\n'
		printf 'http://10.0.0.1:1,,\n'
		printf 'http://10.0.0.2:1"x",,\n'
		printf '"http://10.0.0.3:1"x,,\n'
		printf 'http://10.0.0.4:1,,,\n'
		printf 'http://10.0.0.5:1,XX,\n'
		printf 'http://10.0.0.6:1,,heavy\n'
		printf ',,\n'
		printf 'http://10.0.0.7:1,,1\n'
		printf '"http://10.0.0.8:1,,\n'
	} >l.csv
	run -0 --separate-stderr pw cache warm l.csv
	is "$output" "l.csv${T}ok${T}2${T}2${T}0${T}0${T}7${T}-"
	is "$stderr" "$(lines \
	    "pw: cache warm: l.csv:3: bad CSV quoting: quote inside an unquoted field" \
	    "pw: cache warm: l.csv:4: bad CSV quoting: junk after a closing quote" \
	    "pw: cache warm: l.csv:5: 4 fields, the header has 3" \
	    "pw: cache warm: l.csv:6: country 'XX': not an ISO 3166-1 alpha-2 country code" \
	    "pw: cache warm: l.csv:7: weight 'heavy': want a number from 0 to 1e9" \
	    "pw: cache warm: l.csv:8: missing url or host" \
	    "pw: cache warm: l.csv:10: bad CSV quoting: unterminated quoted field")"
}

@test "warm csv: a stray quote or an over-long quoted field is one bad row" {
	printf 'url,country,region\nhttp://127.0.0.1:81,US,a"b\nhttp://127.0.0.2:82,US,east\nhttp://127.0.0.3:83,DE,west\n' \
	    >q.csv
	run -0 --separate-stderr pw cache warm q.csv
	is "$output" "q.csv${T}ok${T}2${T}2${T}0${T}0${T}1${T}-"
	is "$stderr" "pw: cache warm: q.csv:2: bad CSV quoting: quote inside an unquoted field"
	# 300 KB in quotes, over a read's end, with "" and newlines in it.
	python3 -c 'import sys; sys.stdout.write("url,region\nhttp://127.0.0.4:84,\"" + "a \"\"b\"\", c\n" * 30000 + "\"\nhttp://127.0.0.5:85,east\n")' \
	    >long.csv
	run -0 --separate-stderr pw cache warm long.csv
	is "$output" "long.csv${T}ok${T}1${T}1${T}0${T}0${T}1${T}-"
	is "$stderr" "pw: cache warm: long.csv:2: line too long (over 8192 bytes)"
	is "$(urls)" "$(lines http://127.0.0.2:82 http://127.0.0.3:83 \
	    http://127.0.0.5:85)"
}

@test "warm csv: a header without url or host is refused, nothing added" {
	printf 'address,port\n10.0.0.1,80\n' >l.csv
	run -0 --separate-stderr pw cache warm l.csv
	is "$stderr" "pw: cache warm: l.csv:1: csv header names no url or host column; rest of the input ignored"
	is "$(urls)" ""
}

# ----------------------------------------------------------------- json

@test "warm json: objects and strings, metadata, unknown keys, unicode" {
	cat >l.json <<-'EOF'
	[
	  {"url": "http://10.0.0.1:8080", "country": "us", "region": "ny",
	   "weight": 3, "extra": {"nested": [1, 2, {"a": null}]}},
	  "socks5://10.0.0.2:1080",
	  {"host": "10.0.0.3", "port": "3128", "scheme": "https",
	   "source": "caf\u00e9 \ud83d\ude00", "expires_at": "2099-01-01T00:00:00Z"},
	  {"ip": "10.0.0.4", "port": 81, "protocol": "socks4", "user": "u",
	   "pass": "p\"w"}
	]
	EOF
	run -0 --separate-stderr pw cache warm l.json
	is "$output" "l.json${T}ok${T}4${T}4${T}0${T}0${T}0${T}-"
	is "$stderr" ""
	run -0 sqlite3 "$PW_STATE" "SELECT url, country, region, weight, \
	    source, expires_at FROM proxies ORDER BY id"
	is "$output" "$(lines "http://10.0.0.1:8080|US|ny|3.0||" \
	    "socks5://10.0.0.2:1080|||||" \
	    "https://10.0.0.3:3128||||café 😀|4070908800" \
	    "socks4://10.0.0.4:81|||||")"
	run -0 pw --show-secrets pool show 4 --json
	[[ $output == *'"url":"socks4://u:p%22w@10.0.0.4:81"'* ]]
}

@test "warm json: wrong types are skipped, each with its element's line" {
	cat >l.json <<-'EOF'
	[
	  {"url": 8080},
	  42,
	  {"url": "http://10.0.0.1:1", "country": ["de"]},
	  {"host": "10.0.0.2", "port": true},
	  null,
	  {"url": "http://10.0.0.3:1"},
	  {}
	]
	EOF
	run -0 --separate-stderr pw cache warm l.json
	is "$output" "l.json${T}ok${T}1${T}1${T}0${T}0${T}6${T}-"
	is "$stderr" "$(lines \
	    'pw: cache warm: l.json:2: "url": wrong type (want a string)' \
	    'pw: cache warm: l.json:3: want an object or a URL string' \
	    'pw: cache warm: l.json:4: "country": wrong type (want a string)' \
	    'pw: cache warm: l.json:5: "port": wrong type (want a number or a string)' \
	    'pw: cache warm: l.json:6: want an object or a URL string' \
	    'pw: cache warm: l.json:8: missing url or host')"
}

@test "warm json: an expires_at that is no date is refused, not moved" {
	printf '[{"url":"http://127.0.0.1:1","expires_at":"2030-02-31T00:00:00Z"},\n{"url":"http://127.0.0.2:1","expires_at":"2030- 2- 1T00:00:00Z"},\n{"url":"http://127.0.0.3:1","expires_at":"2028-02-29T12:30:59Z"}]\n' \
	    >t.json
	run -0 --separate-stderr pw cache warm t.json
	is "$output" "t.json${T}ok${T}1${T}1${T}0${T}0${T}2${T}-"
	is "$stderr" "$(lines \
	    "pw: cache warm: t.json:1: expires_at '2030-02-31T00:00:00Z': want epoch seconds or YYYY-MM-DDTHH:MM:SSZ" \
	    "pw: cache warm: t.json:2: expires_at '2030- 2- 1T00:00:00Z': want epoch seconds or YYYY-MM-DDTHH:MM:SSZ")"
	run -0 sqlite3 "$PW_STATE" "SELECT url, expires_at FROM proxies"
	is "$output" "http://127.0.0.3:1|1835440259"
}

@test "warm json: a syntax error keeps what came before it" {
	printf '[\n"http://10.0.0.1:1",\n"http://10.0.0.2:1",\n{"url": "http://10.0.0.3:1",,}\n,"http://10.0.0.4:1"]\n' >l.json
	run -0 --separate-stderr pw cache warm l.json
	is "$output" "l.json${T}ok${T}2${T}2${T}0${T}0${T}1${T}-"
	is "$stderr" "pw: cache warm: l.json:4: JSON syntax error: want a key string; rest of the input ignored"
	for bad in '{"url": "http://10.0.0.1:1"}' '["http://10.0.0.1:1"' \
	    '["http://10.0.0.1:1",]' '["a\u0000b"]' '[] x' ''; do
		printf '%s' "$bad" >x.json
		run -0 --separate-stderr pw cache warm x.json
		[[ $stderr == "pw: cache warm: x.json:1: JSON syntax error: "* ]]
	done
	is "$(urls)" "$(lines http://10.0.0.1:1 http://10.0.0.2:1)"
}

@test "warm json: an element over the limit across a read is skipped, the rest read" {
	python3 -c 'print("[\"http://127.0.0.1:81\",\n{\"url\":\"http://127.0.0.2:82\",\"region\":\"%s\"},\n\"http://127.0.0.3:83\"]" % ("x\\\"]}," * 60000))' \
	    >big.json
	run -0 --separate-stderr pw cache warm big.json
	is "$output" "big.json${T}ok${T}2${T}2${T}0${T}0${T}1${T}-"
	is "$stderr" "pw: cache warm: big.json:2: element too long"
	is "$(urls)" "$(lines http://127.0.0.1:81 http://127.0.0.3:83)"
}

@test "warm jsonl: objects and strings a line; bad lines skipped" {
	{
		printf '{"url": "http://10.0.0.1:1", "source": "s"}\r\n'
		printf '"socks5://10.0.0.2:1080"\n'
		printf '\n'
		printf '{"url": "http://10.0.0.3:1"\n'
		printf '[1]\n'
		printf '{"url": 1}\n'
		printf '{"url": "http://10.0.0.4:1"} x\n'
		printf '{"host": "10.0.0.5", "port": 70000}\n'
		printf '{"url": "http://10.0.0.6:1"}'
	} >l.jsonl
	run -0 --separate-stderr pw cache warm l.jsonl
	is "$output" "l.jsonl${T}ok${T}3${T}3${T}0${T}0${T}5${T}-"
	is "$stderr" "$(lines \
	    "pw: cache warm: l.jsonl:4: JSON syntax error: unterminated object at the end of the line" \
	    "pw: cache warm: l.jsonl:5: want an object or a URL string" \
	    'pw: cache warm: l.jsonl:6: "url": wrong type (want a string)' \
	    "pw: cache warm: l.jsonl:7: JSON syntax error: junk after the value" \
	    "pw: cache warm: l.jsonl:8: 'http://10.0.0.5:70000': port out of range (1-65535)")"
}

@test "warm --format auto: extension first, then the content" {
	printf '{"url": "http://10.0.0.1:1"}\n' >jsonl-content.txt
	run -0 --separate-stderr pw cache warm jsonl-content.txt
	# .txt says txt: the line is not a URL.
	is "$output" "jsonl-content.txt${T}ok${T}0${T}0${T}0${T}0${T}1${T}-"
	cp jsonl-content.txt noext
	run -0 pw cache warm noext
	is "$output" "noext${T}ok${T}1${T}1${T}0${T}0${T}0${T}-"
	printf 'url,country\nhttp://10.0.0.2:1,de\n' >csvish
	run -0 pw cache warm --json csvish
	is "$output" '[{"source":"csvish","format":"csv","status":"ok","records":1,"added":1,"updated":0,"duplicate":0,"invalid":0,"error":null}]'
	printf '["http://10.0.0.3:1"]' | pw cache warm -
	printf 'http://10.0.0.4:1' | pw cache warm --format txt -
	is "$(urls)" "$(lines http://10.0.0.1:1 http://10.0.0.2:1 \
	    http://10.0.0.3:1 http://10.0.0.4:1)"
}

@test "warm --format auto: comment lines first are passed over; names match whole" {
	printf '# proxy list, updated hourly\n127.0.0.1:8080\n127.0.0.2:3128\n' \
	    >proxies
	run -0 --separate-stderr pw cache warm proxies
	is "$output" "proxies${T}ok${T}2${T}2${T}0${T}0${T}0${T}-"
	is "$stderr" ""
	printf '# Free proxies - host:port, one per line\n127.0.0.3:80\n' >free
	run -0 --separate-stderr pw cache warm free
	is "$output" "free${T}ok${T}1${T}1${T}0${T}0${T}0${T}-"
	is "$stderr" ""
	printf '# from example, daily\n\nurl,country\nhttp://127.0.0.4:1,de\n' \
	    >csvish
	run -0 --separate-stderr pw cache warm --json csvish
	is "$output" '[{"source":"csvish","format":"csv","status":"ok","records":1,"added":1,"updated":0,"duplicate":0,"invalid":0,"error":null}]'
	is "$stderr" ""
	is "$(urls)" "$(lines http://127.0.0.1:8080 http://127.0.0.2:3128 \
	    http://127.0.0.3:80 http://127.0.0.4:1)"
}

@test "warm: defaults --country/--region/--weight, --source overrides" {
	printf 'url,country,source\nhttp://10.0.0.1:1,fr,mine\nhttp://10.0.0.2:1,,\n' >l.csv
	run -0 pw cache warm --country de --region r --weight 5 --source s \
	    l.csv
	run -0 sqlite3 "$PW_STATE" "SELECT country, region, weight, source \
	    FROM proxies ORDER BY id"
	is "$output" "$(lines "FR|r|5.0|s" "DE|r|5.0|s")"
}

@test "warm: a source or region with a control character or bad UTF-8 is refused" {
	{
		printf 'url,region,source\n'
		printf 'http://127.0.0.1:1,"two\nlines",s\n'
		printf 'http://127.0.0.2:1,east,a\033[31mb\n'
		printf 'http://127.0.0.3:1,\xff\xfe,s\n'
		printf 'http://127.0.0.4:1,caf\xc3\xa9,s\n'
	} >l.csv
	run -0 --separate-stderr pw cache warm l.csv
	is "$output" "l.csv${T}ok${T}1${T}1${T}0${T}0${T}3${T}-"
	is "$stderr" "$(lines \
	    "pw: cache warm: l.csv:2: region: contains a control character" \
	    "pw: cache warm: l.csv:4: source: contains a control character" \
	    "pw: cache warm: l.csv:5: region: not valid UTF-8")"
	printf '{"url":"http://127.0.0.5:1","source":"a\\u0000b"}\n{"url":"http://127.0.0.6:1","source":"x\\ty"}\n' \
	    >l.jsonl
	run -0 --separate-stderr pw cache warm l.jsonl
	is "$output" "l.jsonl${T}ok${T}0${T}0${T}0${T}0${T}2${T}-"
	is "$stderr" "$(lines \
	    'pw: cache warm: l.jsonl:1: JSON syntax error: NUL (\u0000) in a string' \
	    "pw: cache warm: l.jsonl:2: source: contains a control character")"
	is "$(urls)" "http://127.0.0.4:1"
	before=$(state_sum)
	printf 'http://127.0.0.7:1\n' >l.txt
	run -2 --separate-stderr pw cache warm --source $'a\nb' l.txt
	is "$stderr" "pw: cache warm: --source: contains a control character"
	run -2 --separate-stderr pw cache warm --source $'\xc3' l.txt
	is "$stderr" "pw: cache warm: --source: not valid UTF-8"
	run -2 --separate-stderr pw cache warm --region $'\e[2J' l.txt
	is "$stderr" "pw: cache warm: --region: contains a control character"
	is "$(state_sum)" "$before"
}

# ------------------------------------------------------------ bad input

@test "bad input: one line, the documented exit code, nothing changed" {
	two
	printf 'http://10.0.0.1:1\n' >l.txt
	run -2 --separate-stderr pw cache warm --format yaml l.txt
	is "$stderr" "pw: cache warm: --format: 'yaml': want auto, txt, csv, json or jsonl"
	run -2 --separate-stderr pw cache warm --ttl soon l.txt
	is "$stderr" "pw: cache warm: --ttl: 'soon': want a duration (90, 90s, 15m, 2h, 7d) up to 10 years, 0 for never"
	run -2 --separate-stderr pw cache warm --ttl -5 l.txt
	[[ $stderr == "pw: cache warm: --ttl: '-5': want a duration"* ]]
	run -2 --separate-stderr pw cache warm --country XX l.txt
	is "$stderr" "pw: cache warm: --country: 'XX': not an ISO 3166-1 alpha-2 country code"
	run -2 --separate-stderr pw cache warm
	is "$stderr" "pw: cache warm: missing argument (usage: pw cache warm [options] FILE|URL|-|--sources)"
	run -2 --separate-stderr pw cache warm l.txt l.txt
	[[ $stderr == "pw: cache warm: unexpected argument 'l.txt'"* ]]
	run -1 --separate-stderr pw cache warm missing.txt
	is "$stderr" "pw: cache warm: missing.txt: No such file or directory"
	run -1 --separate-stderr pw cache warm .
	is "$stderr" "pw: cache warm: .: is a directory"
	run -2 --separate-stderr pw cache export --format yaml
	is "$stderr" "pw: cache export: --format: 'yaml': want txt, csv, json or jsonl"
	run -2 --separate-stderr pw cache export --format auto
	is "$stderr" "pw: cache export: --format: 'auto': want txt, csv, json or jsonl"
	run -2 --separate-stderr pw cache stats --format xml
	is "$stderr" "pw: cache stats: --format: 'xml': want text, json or prometheus"
	run -2 --separate-stderr pw cache frob
	[[ $stderr == "pw: frob: unknown verb"* ]]
	is "$(state_sum)" "$before"
}

# ------------------------------------------------------------------ URL

@test "warm from a URL: fetched, format from the URL or content" {
	run -0 --separate-stderr pw cache warm "$FILES_URL/a.txt"
	is "$output" "$FILES_URL/a.txt${T}ok${T}2${T}2${T}0${T}0${T}0${T}-"
	run -0 pw cache warm --source web "$FILES_URL/list"
	is "$output" "web${T}ok${T}1${T}1${T}0${T}0${T}0${T}-"
	is "$(urls)" "$(lines http://10.1.0.1:8080 socks5://10.1.0.2:1080 \
	    http://10.3.0.1:8000)"
}

@test "warm from a URL that fails: exit 1, why, nothing changed" {
	two
	run -1 --separate-stderr pw cache warm "$FILES_URL/nothing.txt"
	is "$stderr" "pw: cache warm: $FILES_URL/nothing.txt: HTTP status 404"
	run -1 --separate-stderr pw cache warm "http://127.0.0.1:$(refused_port)/l.txt"
	[[ $stderr == "pw: cache warm: http://127.0.0.1:"*"/l.txt: "*"onnect"* ]]
	run -1 --separate-stderr pw -c cache.max_size=1024 cache warm \
	    "$ORIGIN_URL/bytes/5000"
	is "$stderr" "pw: cache warm: $ORIGIN_URL/bytes/5000: larger than 1024 bytes (cache.max_size)"
	run -1 --separate-stderr pw -c fetch.timeout=1 cache warm \
	    "$ORIGIN_URL/slow/3000"
	[[ $stderr == "pw: cache warm: $ORIGIN_URL/slow/3000: "*"timed out"* ]]
	is "$(state_sum)" "$before"
}

@test "warming a file does not load libcurl; a URL does" {
	printf 'http://10.0.0.1:1\n' >l.txt
	LD_DEBUG=files pw cache warm l.txt >/dev/null 2>debug.log
	run -1 grep -c 'file=libcurl' debug.log
	is "$output" 0
	LD_DEBUG=files pw cache warm "$FILES_URL/a.txt" >/dev/null 2>debug.log
	run -0 grep -c 'file=libcurl' debug.log
}

@test "warm --sources: concurrent, a status line each, tagged, deduplicated" {
	cat >sources <<-EOF
	# test sources
	$FILES_URL/a.txt
	$FILES_URL/b.json json mine
	$FILES_URL/gone.txt
	EOF
	pw config set cache.sources "@$PWD/sources"
	run -1 --separate-stderr pw cache warm --sources
	is "$output" "$(lines \
	    "127.0.0.1:$FILES_PORT/a.txt${T}ok${T}2${T}2${T}0${T}0${T}0${T}-" \
	    "mine${T}ok${T}2${T}1${T}0${T}1${T}0${T}-" \
	    "127.0.0.1:$FILES_PORT/gone.txt${T}failed${T}0${T}0${T}0${T}0${T}0${T}HTTP status 404")"
	is "$stderr" "$(lines \
	    "pw: cache warm: $FILES_URL/gone.txt: HTTP status 404" \
	    "pw: cache warm: 1 of 3 sources failed")"
	run -0 sqlite3 "$PW_STATE" "SELECT url, source FROM proxies ORDER BY id"
	is "$output" "$(lines "http://10.1.0.1:8080|127.0.0.1:$FILES_PORT/a.txt" \
	    "socks5://10.1.0.2:1080|127.0.0.1:$FILES_PORT/a.txt" \
	    "http://10.2.0.1:3128|mine")"
	# Inline, comma-separated, through -c.
	run -0 pw -c "cache.sources=$FILES_URL/list csv, $FILES_URL/a.txt" \
	    cache warm --sources
	is "${lines[0]}" "127.0.0.1:$FILES_PORT/list${T}ok${T}1${T}1${T}0${T}0${T}0${T}-"
	is "${lines[1]}" "127.0.0.1:$FILES_PORT/a.txt${T}ok${T}2${T}0${T}2${T}0${T}0${T}-"
}

@test "warm --sources: unset or bad cache.sources is a usage error" {
	two
	run -2 --separate-stderr pw cache warm --sources
	is "$stderr" "pw: cache warm: cache.sources is not set (see pw-cache(1) and share/sources.example)"
	run -2 --separate-stderr pw -c cache.sources=ftp://x/l.txt cache warm \
	    --sources
	is "$stderr" "pw: cache warm: cache.sources: 'ftp://x/l.txt': not an http:// or https:// URL"
	run -2 --separate-stderr pw -c "cache.sources=$FILES_URL/a yaml" \
	    cache warm --sources
	is "$stderr" "pw: cache warm: cache.sources: 'yaml': unknown format (want auto, txt, csv, json or jsonl)"
	run -2 --separate-stderr pw cache warm --sources l.txt
	is "$stderr" "pw: cache warm: --sources and 'l.txt': give one"
	is "$(state_sum)" "$before"
}

@test "share/sources.example parses (its URLs are never fetched here)" {
	run -0 grep -c '^https://' "$BATS_TEST_DIRNAME/../../share/sources.example"
}

# --------------------------------------------------------------- export

# The pool as pw pool ls shows it, without ids and times.
pool_view() {
	pw --show-secrets pool ls --jsonl | sed -E \
	    -e 's/"id":[0-9]+,//' -e 's/"(added_at|updated_at)":"[^"]*",?//g'
}

@test "export then warm into an empty state: the same pool, every format" {
	cat >l.jsonl <<-'EOF'
	{"url":"http://10.0.0.1:8080","country":"DE","region":"Berlin, \"Mitte\"","source":"s,1","weight":2.5,"expires_at":"2099-01-01T00:00:00Z"}
	{"url":"socks5://al:p%40ss@10.0.0.2:1080","source":"s2"}
	{"url":"https://[::1]:8443","region":" lead"}
	"socks4://10.0.0.3:1080"
	EOF
	pw -q cache warm l.jsonl
	want=$(pool_view)
	for f in jsonl json csv; do
		pw cache export --format $f --with-credentials -o out.$f
		PW_STATE=$PWD/$f.db run -0 pw cache warm out.$f
		is "$(PW_STATE=$PWD/$f.db pool_view)" "$want"
	done
	# txt carries the URLs only.
	pw cache export --format txt --with-credentials >out.txt
	is "$(cat out.txt)" "$(lines http://10.0.0.1:8080 \
	    socks5://al:p%40ss@10.0.0.2:1080 'https://[::1]:8443' \
	    socks4://10.0.0.3:1080)"
	PW_STATE=$PWD/t.db run -0 pw cache warm out.txt
	is "$(PW_STATE=$PWD/t.db pw pool ls --plain | cut -f2)" \
	    "$(lines http://10.0.0.1:8080 'socks5://***:***@10.0.0.2:1080' \
	    'https://[::1]:8443' socks4://10.0.0.3:1080)"
}

@test "export: no secret leaves without --with-credentials" {
	printf 'socks5://alice:Zq9xSECRET@10.0.0.2:1080\nhttp://10.0.0.1:1\n' \
	    >l.txt
	pw -q cache warm l.txt
	for f in jsonl json csv txt; do
		run -0 pw cache export --format $f
		[[ $output != *Zq9xSECRET* ]]
		[[ $output != *alice* ]]
		[[ $output == *socks5://10.0.0.2:1080* ]]
	done
	run -0 pw cache export -f json --with-credentials
	[[ $output == *socks5://alice:Zq9xSECRET@10.0.0.2:1080* ]]
	run -0 sqlite3 "$PW_STATE" .dump
	[[ $output != *Zq9xSECRET* ]]
}

@test "export: formats, -o replaces atomically, json of nothing" {
	run -0 pw cache export --format json
	is "$output" "[]"
	run -0 pw cache export --format csv
	is "$output" "url,country,region,source,weight,expires_at"
	pw -q pool add http://10.0.0.1:1
	run -0 --separate-stderr pw cache export -o out.jsonl
	is "$stderr" "exported 1 proxy to out.jsonl"
	is "$(cat out.jsonl)" '{"url":"http://10.0.0.1:1"}'
	run -0 ls
	[[ $output != *.tmp.* ]]
	run -1 --separate-stderr pw cache export -o nodir/out.jsonl
	is "$stderr" "pw: cache export: nodir/out.jsonl: No such file or directory"
}

@test "export -o a link: the target gets the list, the link stays a link" {
	pw -q pool add http://10.0.0.1:1
	echo keep >target
	ln -s target link
	run -0 --separate-stderr pw cache export -f txt -o link
	is "$stderr" "exported 1 proxy to link"
	[ -L link ]
	is "$(readlink link)" target
	is "$(cat target)" http://10.0.0.1:1
	# A chain of relative links into another directory: the file is
	# replaced there, and no temporary is left anywhere.
	mkdir -p d/e
	echo keep >d/e/t
	ln -s e/t d/l1
	ln -s d/l1 l2
	run -0 --separate-stderr pw cache export -f txt -o l2
	[ -L l2 ] && [ -L d/l1 ] && [ -f d/e/t ] && [ ! -L d/e/t ]
	is "$(cat d/e/t)" http://10.0.0.1:1
	is "$(ls -A d/e)" t
	is "$(ls -A d)" "$(lines e l1)"
	# A link to nothing is not written through.
	ln -s nowhere dangling
	run -1 --separate-stderr pw cache export -o dangling
	is "$stderr" "pw: cache export: dangling: not writing through a dangling symbolic link"
	[ -L dangling ] && [ ! -e nowhere ]
	run -1 --separate-stderr pw cache export -o d
	is "$stderr" "pw: cache export: d: Is a directory"
	[[ $(ls -A) != *.tmp.* ]]
}

@test "export -o a FIFO or a device: written as it is, never replaced" {
	pw -q pool add http://10.0.0.1:1 http://10.0.0.2:2
	want=$(lines http://10.0.0.1:1 http://10.0.0.2:2)
	mkfifo fifo
	timeout 10 cat fifo >got &
	reader=$!
	run -0 --separate-stderr pw cache export -f txt -o fifo
	is "$stderr" "exported 2 proxies to fifo"
	# Checked first: a run that replaced the FIFO never reaches the
	# devices below.
	[ -p fifo ]
	wait "$reader"
	is "$(cat got)" "$want"
	[[ $(ls -A) != *.tmp.* ]]
	# A null device of our own first, when we may make one.
	if mknod null c 1 3 2>/dev/null && { : >null; } 2>/dev/null; then
		run -0 --separate-stderr pw cache export -f txt -o null
		[ -c null ]
	fi
	run -0 --separate-stderr pw cache export -f txt -o /dev/null
	is "$output" ""
	is "$stderr" "exported 2 proxies to /dev/null"
	[ -c /dev/null ]
	# /dev/stdout (a pipe here) writes to standard output.
	run -0 --separate-stderr pw cache export -f txt -o /dev/stdout
	is "$output" "$want"
	[ -L /dev/stdout ] || [ -c /dev/stdout ]
	# A link to the regular file open on standard output writes there,
	# as -o - would, appending with >>, not replacing the file.
	echo first >so.txt
	pw -q cache export -f txt -o /dev/stdout >>so.txt
	is "$(cat so.txt)" "$(lines first "$want")"
}

@test "export -o a device that fails: exit 1, why, the device stays" {
	pw -q pool add http://10.0.0.1:1
	# A full device of our own first, when we may make one: a run that
	# replaced it fails here, before /dev/full is tried.
	if mknod full c 1 7 2>/dev/null && { : >full; } 2>/dev/null; then
		run -1 --separate-stderr pw cache export -f txt -o full
		is "$output" ""
		is "$stderr" "pw: cache export: full: No space left on device"
		[ -c full ]
		[[ $(ls -A) != *.tmp.* ]]
	fi
	[ -c /dev/full ] || skip "/dev/full is not a character device"
	run -1 --separate-stderr pw cache export -f txt -o /dev/full
	is "$output" ""
	is "$stderr" "pw: cache export: /dev/full: No space left on device"
	[ -c /dev/full ]
}

@test "export -o keeps the mode of the file it replaces; with credentials, private" {
	pw -q pool add socks5://u:p@10.0.0.2:1080
	umask 022
	echo old >out
	chmod 640 out
	run -0 pw cache export -o out
	is "$(stat -c %a out)" 640
	chmod 604 out
	run -0 pw cache export -o out
	is "$(stat -c %a out)" 604
	# Never group or world readable with the secrets in it.
	run -0 pw cache export --with-credentials -o out
	is "$(stat -c %a out)" 600
	[[ $(cat out) == *socks5://u:p@10.0.0.2:1080* ]]
	chmod 755 out
	run -0 pw cache export --with-credentials -o out
	is "$(stat -c %a out)" 700
	# Through a link, the target's.
	chmod 660 out
	ln -s out link
	run -0 pw cache export -o link
	is "$(stat -c %a out)" 660
	[ -L link ]
	# A new file: 0644 as the umask allows, 0600 with credentials.
	run -0 pw cache export -o new
	is "$(stat -c %a new)" 644
	run -0 pw cache export --with-credentials -o new-creds
	is "$(stat -c %a new-creds)" 600
	umask 077
	run -0 pw cache export -o new-private
	is "$(stat -c %a new-private)" 600
}

# ------------------------------------------------------------------ TTL

@test "TTL: an expired proxy is never selected, prune removes and counts it" {
	printf 'http://10.0.0.1:1\n' >short.txt
	printf 'http://10.0.0.2:1\n' >long.txt
	pw -q cache warm --ttl 1 short.txt
	pw -q cache warm --ttl 1h long.txt
	sleep 2
	for i in 1 2 3; do
		run -0 pw pool next
		is "$output" http://10.0.0.2:1
	done
	run -0 pw cache stats --json
	[[ $output == *'"expired":1,'* ]]
	[[ $output == *'"hits":3,"misses":0,'* ]]
	run -0 pw cache prune
	is "$output" "$(lines "ttl${T}1" "health${T}0" "corruption${T}0")"
	is "$(urls)" http://10.0.0.2:1
	run -0 pw cache stats --json
	[[ $output == *'"expired":0,'* ]]
	[[ $output == *'"evictions":{"ttl":1,"health":0,"manual":0,"corruption":0}'* ]]
}

@test "TTL: cache.ttl is the default, --ttl 0 never expires; misses counted" {
	printf 'http://10.0.0.1:1\n' >l.txt
	pw config set cache.ttl 1
	pw -q cache warm l.txt
	sleep 2
	run -3 pw pool next
	run -0 pw cache warm --ttl 0 l.txt
	is "$output" "l.txt${T}ok${T}1${T}0${T}1${T}0${T}0${T}-"
	run -0 pw pool next
	run -0 pw cache stats --json
	[[ $output == *'"hits":1,"misses":1,'* ]]
}

@test "prune: unhealthy proxies are health evictions; rm and clear manual" {
	printf 'http://10.0.0.%d:1\n' 1 2 3 4 5 >l.txt
	pw -q cache warm l.txt
	sqlite3 "$PW_STATE" "UPDATE proxies SET status = 'unhealthy', \
	    consec_fail = 3 WHERE id IN (1, 2)"
	run -0 pw cache prune --json
	is "$output" '{"ttl":0,"health":2,"corruption":0}'
	pw pool rm 3
	pw -q pool clear --yes
	run -0 pw cache stats --json
	[[ $output == *'"evictions":{"ttl":0,"health":2,"manual":3,"corruption":0}'* ]]
}

# ----------------------------------------------------------- corruption

@test "corruption: unreadable rows are evicted with a warning and counted" {
	printf 'socks5://u:p@10.0.0.1:1080\nsocks5://v:q@10.0.0.2:1080\nhttp://10.0.0.3:1\nhttp://10.0.0.4:1\n' >l.txt
	pw -q cache warm l.txt
	sqlite3 "$PW_STATE" "UPDATE proxies SET pass = x'00112233' WHERE id = 1;
	    UPDATE proxies SET url = 'http://:1' WHERE id = 3;
	    UPDATE proxies SET scheme = 'socks5' WHERE id = 4"
	run -0 --separate-stderr pw cache export --with-credentials
	is "$output" '{"url":"socks5://v:q@10.0.0.2:1080"}'
	is "$stderr" "$(lines \
	    "pw: warning: proxy 1: its credentials cannot be unsealed: evicting it (corruption)" \
	    "pw: warning: proxy 3: its URL does not parse: evicting it (corruption)" \
	    "pw: warning: proxy 4: its URL and its columns disagree: evicting it (corruption)")"
	run -0 pw cache stats --json
	[[ $output == *'"corruption":3}'* ]]
	is "$(urls)" socks5://10.0.0.2:1080
	run -0 pw cache prune
	is "$output" "$(lines "ttl${T}0" "health${T}0" "corruption${T}0")"
}

@test "corruption: prune finds it too; a wrong key evicts nothing" {
	printf 'socks5://u:p@10.0.0.1:1080\nhttp://10.0.0.2:1\n' >l.txt
	pw -q cache warm l.txt
	sqlite3 "$PW_STATE" "UPDATE proxies SET url = '' WHERE id = 2"
	before=$(state_sum)
	PW_SECRET_KEY=$(printf '%064d' 7) run -1 --separate-stderr pw cache prune
	[[ $stderr == *"pw: cache prune: the key opens none of the 1 sealed credentials: wrong \$PW_SECRET_KEY or key file? (nothing evicted)" ]]
	is "$(state_sum)" "$before"
	run -0 --separate-stderr pw cache prune
	is "$output" "$(lines "ttl${T}0" "health${T}0" "corruption${T}1")"
	is "$stderr" "pw: warning: proxy 2: its URL does not parse: evicting it (corruption)"
}

# ---------------------------------------------------------------- stats

@test "stats: text, json and prometheus" {
	printf 'url,source\nhttp://10.0.0.1:1,a\nhttp://10.0.0.2:1,a\nhttp://10.0.0.3:1,\n' >l.csv
	PW_NOW=1700000000 pw -q cache warm l.csv
	sqlite3 "$PW_STATE" "UPDATE proxies SET status = 'healthy' WHERE id = 1"
	run -0 pw cache stats --json
	[[ $output == '{"entries":3,"by_status":{"unknown":2,"healthy":1,"degraded":0,"unhealthy":0,"pending":0},"expired":0,"by_source":[{"source":null,"count":1},{"source":"a","count":2}],"hits":0,"misses":0,"evictions":{"ttl":0,"health":0,"manual":0,"corruption":0},"last_warm":"2023-11-14T22:13:20Z","last_health":null,"file_bytes":'[0-9]*'}' ]]
	run -0 pw cache stats
	[[ ${lines[0]} == "entries                3" ]]
	[[ $output == *"last warm              2023-11-14T22:13:20Z"* ]]
	run -0 pw cache stats --format prometheus
	[[ $output == *'pw_proxies{status="healthy"} 1'* ]]
	[[ $output == *'pw_proxies_by_source{source="a"} 2'* ]]
	[[ $output == *'pw_proxies_by_source{source=""} 1'* ]]
	[[ $output == *'pw_last_warm_timestamp_seconds 1700000000'* ]]
	[[ $output == *'pw_evictions_total{reason="ttl"} 0'* ]]
	# Every sample line is NAME{LABELS} VALUE after its HELP and TYPE.
	printf '%s\n' "$output" | awk '
	/^# HELP / { help[$3] = 1; next }
	/^# TYPE / { if (!help[$3] || ($4 != "gauge" && $4 != "counter")) exit 1
		type[$3] = 1; next }
	{ name = $1; sub(/\{.*/, "", name)
	  if (!type[name] || $0 !~ /^[a-z_]+(\{[a-z_]+="([^"\\]|\\.)*"\})? -?[0-9]+$/) exit 1 }'
	if command -v promtool >/dev/null; then
		printf '%s\n' "$output" | promtool check metrics
	fi
}

@test "stats: a label with quotes and backslashes is escaped" {
	printf '{"url":"http://10.0.0.1:1","source":"a\\"b\\\\c"}\n' >l.jsonl
	pw -q cache warm l.jsonl
	run -0 pw cache stats --format prometheus
	[[ $output == *'pw_proxies_by_source{source="a\"b\\c"} 1'* ]]
}

# ------------------------------------------------------------- kill -9

@test "kill -9 during a large warm leaves a consistent committed prefix" {
	awk 'BEGIN { for (i = 0; i < 500000; i++)
	    printf "http://10.%d.%d.%d:%d\n", int(i / 65536) % 256,
	    int(i / 256) % 256, i % 256, 1024 + i % 60000 }' >big.txt
	pw -q pool add http://seed.example:1
	pw -c cache.batch=1000 cache warm big.txt >/dev/null 2>&1 &
	pid=$!
	n=0
	for i in $(seq 300); do
		n=$(sqlite3 "$PW_STATE" "SELECT count(*) FROM proxies" \
		    2>/dev/null || echo 0)
		[ "$n" -gt 20000 ] && break
		sleep 0.05
	done
	kill -9 "$pid"
	wait "$pid" || true
	run -0 sqlite3 "$PW_STATE" "PRAGMA integrity_check"
	is "$output" ok
	n=$(sqlite3 "$PW_STATE" "SELECT count(*) - 1 FROM proxies")
	echo "committed: $n" >&3
	[ "$n" -gt 0 ]
	[ $((n % 1000)) -eq 0 ]
	# The prefix: exactly the first n lines, in order.
	is "$(sqlite3 "$PW_STATE" "SELECT url FROM proxies WHERE id > 1 \
	    ORDER BY id" | md5sum)" "$(head -n "$n" big.txt | md5sum)"
	# And the pool works on.
	run -0 pw cache warm big.txt
	[[ $output == *"${T}500000${T}$((500000 - n))${T}$n${T}0${T}0${T}-" ]]
}

# ------------------------------------------------------------ validate

# statuses: "id status" of every proxy, in id order.
statuses() {
	sqlite3 "$PW_STATE" "SELECT id || ' ' || status FROM proxies ORDER BY id"
}

@test "warm: a list that brings no proxy is no warm: last_warm stays, no state file made" {
	printf '%s\n' '# nothing valid' 'ftp://x.example:1' 'not a proxy' >bad.txt
	: >empty.txt
	for f in bad.txt empty.txt; do
		run -0 --separate-stderr pw cache warm "$f"
		[ ! -e "$PW_STATE" ]
	done
	printf '%s\n' http://a.example:1 >good.txt
	run -0 --separate-stderr pw cache warm good.txt
	run -0 pw cache stats --json
	when=$(jq -r .last_warm <<<"$output")
	[ "$when" != null ]
	sleep 1
	run -0 --separate-stderr pw cache warm bad.txt
	run -0 pw cache stats --json
	is "$(jq -r .last_warm <<<"$output")" "$when"
}

@test "warm --validate: the live proxy is healthy and selected, the dead one never" {
	printf '%s\n' "$LIVE" "$DEAD" >l.txt
	run -0 --separate-stderr pw cache warm --validate --url "$JUDGE" \
	    --timeout 5 l.txt
	is "$output" "l.txt${T}ok${T}2${T}2${T}0${T}0${T}0${T}-${T}2${T}1${T}1"
	is "$(statuses)" "$(lines '1 healthy' '2 unhealthy')"
	for i in 1 2 3 4; do
		run -0 pw pool next --strategy round-robin
		is "$output" "$LIVE"
	done
	run -0 pw cache stats --json
	[[ $output == *'"last_warm":"'*'"last_health":"'* ]]
}

@test "warm --validate --evict --json: counts in the summary, the dead one removed" {
	printf '%s\n' "$LIVE" "$DEAD" "$LIVE" >l.txt
	run -0 --separate-stderr pw cache warm --validate --evict \
	    --url "$JUDGE" --timeout 5 --concurrency 1 --json l.txt
	is "$output" '[{"source":"l.txt","format":"txt","status":"ok","records":3,"added":2,"updated":0,"duplicate":1,"invalid":0,"error":null,"validated":2,"healthy":1,"failed":1}]'
	is "$(statuses)" "1 healthy"
	is "$(sqlite3 "$PW_STATE" "SELECT value FROM stats WHERE name = 'evict.health'")" 1
}

@test "warm --validate: known proxies keep their status; the judge from config" {
	pw -q pool add "$LIVE"
	pw -q config set health.url "$JUDGE"
	printf '%s\n' "$LIVE" "$DEAD" >l.txt
	# An ordinary warm adds a proxy that is selectable at once.
	run -0 pw cache warm l.txt
	is "$(statuses)" "$(lines '1 unknown' '2 unknown')"
	pw -q pool rm 2
	run -0 pw cache warm --validate --timeout 5 l.txt
	is "$output" "l.txt${T}ok${T}2${T}1${T}1${T}0${T}0${T}-${T}2${T}1${T}1"
	is "$(statuses)" "$(lines '1 healthy' '3 unhealthy')"
	# Failing again, an unhealthy proxy stays unhealthy.
	run -0 pw health --url "$JUDGE" --timeout 5
	is "$(statuses)" "$(lines '1 healthy' '3 unhealthy')"
}

@test "warm --validate: nothing new is selected before its check; killed, pw health checks it" {
	printf '%s\n' "$LIVE" "$DEAD" >l.txt
	# A judge that never answers holds the live proxy's check.
	pw cache warm --validate --url "$HANG_JUDGE" --timeout 60 l.txt \
	    >/dev/null 2>&1 &
	pid=$!
	n=0
	for i in $(seq 200); do
		n=$(sqlite3 "$PW_STATE" "SELECT count(*) FROM proxies" \
		    2>/dev/null || echo 0)
		[ "$n" = 2 ] && break
		sleep 0.05
	done
	is "$n" 2
	run -3 --separate-stderr pw pool next
	[[ $stderr == "pw: pool next: no eligible proxy: 2 in pool, "*", 1 pending validation" ||
	    $stderr == "pw: pool next: no eligible proxy: 2 in pool, "*", 2 pending validation" ]]
	kill -9 "$pid"
	wait "$pid" || true
	is "$(sqlite3 "$PW_STATE" "SELECT status FROM proxies WHERE id = 1")" pending
	run -3 pw fetch "$ORIGIN_URL/"
	# The next pw health checks what was left pending.
	run -0 pw health --url "$JUDGE" --timeout 5
	is "$(statuses)" "$(lines '1 healthy' '2 unhealthy')"
	run -0 pw pool next
	is "$output" "$LIVE"
}

@test "warm --sources --validate: a source that fails does not stop the check of the others" {
	printf '%s\n' "$LIVE" "$DEAD" >"$FILES_DIR/validate.txt"
	pw -q config set cache.sources \
	    "$FILES_URL/validate.txt txt good, $FILES_URL/missing.txt txt bad"
	run -1 --separate-stderr pw cache warm --sources --validate \
	    --url "$JUDGE" --timeout 5
	is "$output" "$(lines \
	    "good${T}ok${T}2${T}2${T}0${T}0${T}0${T}-${T}2${T}1${T}1" \
	    "bad${T}failed${T}0${T}0${T}0${T}0${T}0${T}HTTP status 404${T}0${T}0${T}0")"
	is "$stderr" "$(lines \
	    "pw: cache warm: $FILES_URL/missing.txt: HTTP status 404" \
	    "pw: cache warm: 1 of 2 sources failed")"
	is "$(statuses)" "$(lines '1 healthy' '2 unhealthy')"
	run -0 pw pool next
	is "$output" "$LIVE"
	# Every source failed: nothing to check, still exit 1.
	pw -q config set cache.sources "$FILES_URL/missing.txt txt bad"
	run -1 --separate-stderr pw cache warm --sources --validate \
	    --url "$JUDGE" --timeout 5
	is "$stderr" "$(lines \
	    "pw: cache warm: $FILES_URL/missing.txt: HTTP status 404" \
	    "pw: cache warm: 1 of 1 sources failed")"
}

@test "warm --validate: bad options are refused before anything is imported" {
	two
	printf '%s\n' "$LIVE" >l.txt
	for o in "--url $JUDGE" "--timeout 5" "--concurrency 5" --evict; do
		run -2 --separate-stderr pw cache warm $o l.txt
		is "$stderr" "pw: cache warm: ${o%% *} needs --validate"
	done
	run -2 --separate-stderr pw cache warm --validate l.txt
	is "$stderr" "pw: cache warm: --validate: no judge URL (set health.url or health.urls, or give --url)"
	run -2 --separate-stderr pw cache warm --validate --url ftp://127.0.0.1/ l.txt
	is "$stderr" "pw: cache warm: --validate: judge 'ftp://127.0.0.1/': want an http:// or https:// URL"
	run -2 --separate-stderr pw cache warm --validate --url "$JUDGE" \
	    --timeout 0 l.txt
	is "$stderr" "pw: cache warm: --timeout: '0': want seconds from 0.001 to 3600"
	run -2 --separate-stderr pw cache warm --validate --url "$JUDGE" \
	    --concurrency 0 l.txt
	is "$stderr" "pw: cache warm: --concurrency: '0': want an integer from 1 to 10000"
	is "$(state_sum)" "$before"
	# Without a state file, none is made.
	rm -f "$PW_STATE"*
	run -2 pw cache warm --validate l.txt
	[ ! -e "$PW_STATE" ]
}
