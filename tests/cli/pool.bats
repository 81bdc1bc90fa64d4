#!/usr/bin/env bats
# pool.bats -- pw pool add / rm / ls / show / set / clear and every option.

bats_require_minimum_version 1.5.0

load helper

setup() {
	setup_pw
	export PW_NOW=1700000000	# 2023-11-14T22:13:20Z
}

T=$'\t'

# A state file with three proxies, and its digest.
three() {
	pw -q pool add http://a.example:8080 socks5://b.example \
	    https://c.example:8443
	before=$(state_sum)
}

# ----------------------------------------------------------------- add

@test "pool add: every scheme, with its default port made explicit" {
	run -0 --separate-stderr pw pool add http://h1.example \
	    https://h2.example socks4://h3.example socks4a://h4.example \
	    socks5://h5.example socks5h://h6.example
	is "$output" "$(lines \
	    "1${T}http://h1.example:80${T}added" \
	    "2${T}https://h2.example:443${T}added" \
	    "3${T}socks4://h3.example:1080${T}added" \
	    "4${T}socks4a://h4.example:1080${T}added" \
	    "5${T}socks5://h5.example:1080${T}added" \
	    "6${T}socks5h://h6.example:1080${T}added")"
	is "$stderr" ""
	run -0 sqlite3 "$PW_STATE" \
	    "SELECT id, scheme, host, port, url FROM proxies ORDER BY id"
	is "$output" "$(lines \
	    "1|http|h1.example|80|http://h1.example:80" \
	    "2|https|h2.example|443|https://h2.example:443" \
	    "3|socks4|h3.example|1080|socks4://h3.example:1080" \
	    "4|socks4a|h4.example|1080|socks4a://h4.example:1080" \
	    "5|socks5|h5.example|1080|socks5://h5.example:1080" \
	    "6|socks5h|h6.example|1080|socks5h://h6.example:1080")"
}

@test "pool add: IPv4, IPv6 in brackets, host names, explicit ports" {
	run -0 --separate-stderr pw pool add http://192.0.2.10:3128 \
	    'socks5://[2001:DB8:0:0::1]:1080' '[::1]:8080' \
	    proxy-1.Example.COM:3128 localhost:8118 'https://[fe80::1]'
	is "$output" "$(lines \
	    "1${T}http://192.0.2.10:3128${T}added" \
	    "2${T}socks5://[2001:db8::1]:1080${T}added" \
	    "3${T}http://[::1]:8080${T}added" \
	    "4${T}http://proxy-1.example.com:3128${T}added" \
	    "5${T}http://localhost:8118${T}added" \
	    "6${T}https://[fe80::1]:443${T}added")"
	is "$stderr" ""
	run -0 sqlite3 "$PW_STATE" "SELECT host FROM proxies WHERE id IN (2, 3)"
	is "$output" "$(lines 2001:db8::1 ::1)"
}

@test "pool add: host:port alone, and a host alone, mean http" {
	run -0 --separate-stderr pw pool add example.net:3128 example.org \
	    192.0.2.1:8080
	is "$output" "$(lines \
	    "1${T}http://example.net:3128${T}added" \
	    "2${T}http://example.org:80${T}added" \
	    "3${T}http://192.0.2.1:8080${T}added")"
	is "$stderr" ""
}

@test "pool add: normalised forms of one proxy are duplicates of it" {
	run -0 --separate-stderr pw pool add 'HTTP://Proxy.Example.COM:80/' \
	    http://proxy.example.com proxy.example.com:80 proxy.example.com \
	    'http://[2001:db8:0:0:0:0:0:1]' 'HTTP://[2001:DB8::1]:80/' \
	    https://s.example 'https://S.EXAMPLE:443/' \
	    socks5://k.example SOCKS5://k.example:1080 socks5h://k.example
	is "$output" "$(lines \
	    "1${T}http://proxy.example.com:80${T}added" \
	    "1${T}http://proxy.example.com:80${T}duplicate" \
	    "1${T}http://proxy.example.com:80${T}duplicate" \
	    "1${T}http://proxy.example.com:80${T}duplicate" \
	    "2${T}http://[2001:db8::1]:80${T}added" \
	    "2${T}http://[2001:db8::1]:80${T}duplicate" \
	    "3${T}https://s.example:443${T}added" \
	    "3${T}https://s.example:443${T}duplicate" \
	    "4${T}socks5://k.example:1080${T}added" \
	    "4${T}socks5://k.example:1080${T}duplicate" \
	    "5${T}socks5h://k.example:1080${T}added")"
	is "$stderr" ""
	run -0 sqlite3 "$PW_STATE" "SELECT count(*) FROM proxies"
	is "$output" 5
}

@test "pool add: a duplicate is reported and skipped, the rest is added" {
	three
	run -0 --separate-stderr pw pool add http://new1.example:1 \
	    HTTP://A.EXAMPLE:8080/ http://new2.example:2 socks5://b.example:1080
	is "$output" "$(lines \
	    "4${T}http://new1.example:1${T}added" \
	    "1${T}http://a.example:8080${T}duplicate" \
	    "5${T}http://new2.example:2${T}added" \
	    "2${T}socks5://b.example:1080${T}duplicate")"
	is "$stderr" ""
	run -0 pw pool ls
	is "${#lines[@]}" 5
}

@test "pool add: only duplicates succeed and change nothing" {
	three
	run -0 --separate-stderr pw pool add a.example:8080
	is "$output" "1${T}http://a.example:8080${T}duplicate"
	is "$stderr" ""
	is "$(state_sum)" "$before"
}

@test "pool add: percent-encoded user and password, masked unless asked" {
	run -0 --separate-stderr pw pool add \
	    'socks5://us%40er:p%3ass%2Fw%25rd@gw.example:1080' \
	    'http://alice@gw.example:3128'
	is "$output" "$(lines \
	    "1${T}socks5://***:***@gw.example:1080${T}added" \
	    "2${T}http://***@gw.example:3128${T}added")"
	is "$stderr" ""
	run -0 --separate-stderr pw pool ls
	is "$output" "$(lines \
	    "1${T}socks5://***:***@gw.example:1080${T}unknown${T}-${T}-${T}-${T}0${T}0" \
	    "2${T}http://***:***@gw.example:3128${T}unknown${T}-${T}-${T}-${T}0${T}0")"
	is "$stderr" ""
	# (Sealed credentials list as ***:*** even without a password.)
	# Decoded on the way in, encoded again (upper-case hex) on the way out.
	run -0 --separate-stderr pw pool ls --show-secrets
	is "$output" "$(lines \
	    "1${T}socks5://us%40er:p%3Ass%2Fw%25rd@gw.example:1080${T}unknown${T}-${T}-${T}-${T}0${T}0" \
	    "2${T}http://alice@gw.example:3128${T}unknown${T}-${T}-${T}-${T}0${T}0")"
	is "$stderr" ""
	run -0 --separate-stderr pw --show-secrets pool add \
	    'socks5://us%40er:other@gw.example'
	is "$output" "1${T}socks5://us%40er:other@gw.example:1080${T}updated"
	run -0 --separate-stderr pw pool show 1 --show-secrets --json
	[[ "$output" == '{"id":1,"url":"socks5://us%40er:other@gw.example:1080","scheme":"socks5","host":"gw.example","port":1080,"credentials":true,'* ]]
	is "$stderr" ""
}

@test "pool add: the user name is part of a proxy's identity" {
	run -0 --separate-stderr pw pool add http://u1:p1@gw.example:3128 \
	    http://u1:p2@gw.example:3128 http://u2:p1@gw.example:3128 \
	    http://gw.example:3128
	is "$output" "$(lines \
	    "1${T}http://***:***@gw.example:3128${T}added" \
	    "1${T}http://***:***@gw.example:3128${T}updated" \
	    "2${T}http://***:***@gw.example:3128${T}added" \
	    "3${T}http://gw.example:3128${T}added")"
	is "$stderr" ""
}

@test "pool add: metadata --country --region --source --weight" {
	run -0 --separate-stderr pw pool add --country us --region us-east \
	    --source list1 --weight 2.5 http://m.example:1 http://n.example:2
	is "$output" "$(lines "1${T}http://m.example:1${T}added" \
	    "2${T}http://n.example:2${T}added")"
	is "$stderr" ""
	run -0 sqlite3 "$PW_STATE" "SELECT id, country, region, source, weight,
	    added_at, updated_at FROM proxies ORDER BY id"
	is "$output" "$(lines "1|US|us-east|list1|2.5|1700000000|1700000000" \
	    "2|US|us-east|list1|2.5|1700000000|1700000000")"
	run -0 --separate-stderr pw pool show 2
	is "${lines[7]}" "country${T}US"
	is "${lines[8]}" "region${T}us-east"
	is "${lines[9]}" "source${T}list1"
	is "${lines[11]}" "weight${T}2.5"
	# Without metadata, none is set.
	run -0 pw -q pool add http://o.example:3
	run -0 sqlite3 "$PW_STATE" "SELECT quote(country), quote(region),
	    quote(source), quote(weight) FROM proxies WHERE id = 3"
	is "$output" "NULL|NULL|NULL|NULL"
}

@test "pool add: a bad metadata value is refused and adds nothing" {
	three
	while IFS='|' read -r opt val msg; do
		run -2 --separate-stderr pw pool add "$opt" "$val" \
		    http://new.example:1
		is "$output" ""
		is "$stderr" "pw: pool add: $msg"
		is "$(state_sum)" "$before"
	done <<-'EOF'
	--country|XX|--country: 'XX': not an ISO 3166-1 alpha-2 country code
	--country|usa|--country: 'usa': not an ISO 3166-1 alpha-2 country code
	--country|1a|--country: '1a': not an ISO 3166-1 alpha-2 country code
	--country||--country: '': not an ISO 3166-1 alpha-2 country code
	--weight|-1|--weight: '-1': want a number from 0 to 1e9
	--weight|abc|--weight: 'abc': want a number from 0 to 1e9
	--weight|1e10|--weight: '1e10': want a number from 0 to 1e9
	--weight|nan|--weight: 'nan': want a number from 0 to 1e9
	--weight||--weight: '': want a number from 0 to 1e9
	--weight|0x10|--weight: '0x10': want a number from 0 to 1e9
	--weight|inf|--weight: 'inf': want a number from 0 to 1e9
	--source||--source: empty name
	--region||--region: empty name
	EOF
	run -2 --separate-stderr pw pool add --source $'a\tb' http://new.example:1
	is "$stderr" "pw: pool add: --source: contains a control character"
	run -2 --separate-stderr pw pool add --region $'\xff' http://new.example:1
	is "$stderr" "pw: pool add: --region: not valid UTF-8"
	is "$(state_sum)" "$before"
}

@test "pool add: -q prints nothing; output formats" {
	run -0 --separate-stderr pw pool add -q http://q.example:1
	is "$output" ""
	is "$stderr" ""
	run -0 --separate-stderr pw pool add --json http://q.example:1 \
	    http://r.example:2
	is "$output" '[{"id":1,"url":"http://q.example:1","result":"duplicate"},{"id":2,"url":"http://r.example:2","result":"added"}]'
	run -0 --separate-stderr pw pool add --jsonl http://q.example:1 \
	    http://s.example:3
	is "$output" "$(lines \
	    '{"id":1,"url":"http://q.example:1","result":"duplicate"}' \
	    '{"id":3,"url":"http://s.example:3","result":"added"}')"
	run -0 --separate-stderr pw pool add --csv http://u:p@t.example:4
	is "$output" "$(lines 'id,url,result' \
	    '4,http://***:***@t.example:4,added')"
	run -0 --separate-stderr pw pool add --table http://t.example:4
	is "$output" "$(lines 'ID  URL                 RESULT' \
	    ' 5  http://t.example:4  added')"
	is "$stderr" ""
}

# --------------------------------------------------------------- stdin

@test "pool add -: one URL a line; blank lines, comments and spaces skipped" {
	printf '%s\n' '# a list' '' '   http://a.example:1   ' \
	    "${T}socks5://b.example${T}" '   # indented comment' \
	    'http://a.example:1' >"$BATS_TEST_TMPDIR/list"
	printf 'https://c.example\r\nhttp://d.example:4' \
	    >>"$BATS_TEST_TMPDIR/list"	# CRLF, and no final newline
	run -0 --separate-stderr pw pool add - <"$BATS_TEST_TMPDIR/list"
	is "$output" "$(lines \
	    "1${T}http://a.example:1${T}added" \
	    "2${T}socks5://b.example:1080${T}added" \
	    "1${T}http://a.example:1${T}duplicate" \
	    "3${T}https://c.example:443${T}added" \
	    "4${T}http://d.example:4${T}added")"
	is "$stderr" ""
	# A byte order mark before the first line is not part of it.
	run -0 --separate-stderr pw pool add - <<<$'\xef\xbb\xbfhttp://e.example:5'
	is "$output" "5${T}http://e.example:5${T}added"
}

@test "pool add -: mixed with URL arguments, in argument order" {
	run -0 --separate-stderr pw pool add http://first.example:1 - \
	    http://last.example:3 <<<'http://middle.example:2'
	is "$output" "$(lines \
	    "1${T}http://first.example:1${T}added" \
	    "2${T}http://middle.example:2${T}added" \
	    "3${T}http://last.example:3${T}added")"
	is "$stderr" ""
}

@test "pool add -: empty input adds nothing and succeeds" {
	three
	run -0 --separate-stderr pw pool add - </dev/null
	is "$output" ""
	is "$stderr" ""
	is "$(state_sum)" "$before"
}

@test "pool add -: a bad line names the line and nothing is added" {
	three
	printf '%s\n' http://ok1.example:1 '' 'ftp://bad.example' \
	    http://ok2.example:2 >"$BATS_TEST_TMPDIR/list"
	run -2 --separate-stderr pw pool add - <"$BATS_TEST_TMPDIR/list"
	is "$output" ""
	is "$stderr" "pw: pool add: stdin:3: 'ftp://bad.example': unsupported scheme 'ftp' (use http, https, socks4, socks4a, socks5 or socks5h)"
	is "$(state_sum)" "$before"
	# A trailing comment is not a comment: the line has a space.
	run -2 --separate-stderr pw pool add - <<<'http://ok.example:1 # note'
	is "$stderr" "pw: pool add: stdin:1: 'http://ok.example:1 # note': contains a space"
	is "$(state_sum)" "$before"
}

@test "pool add -: given twice is a usage error" {
	three
	run -2 --separate-stderr pw pool add - - </dev/null
	is "$output" ""
	is "$stderr" "pw: pool add: '-' given twice"
	is "$(state_sum)" "$before"
}

# ------------------------------------------------------ malformed URLs

@test "pool add: every malformed URL is refused, exactly, changing nothing" {
	three
	local n=0
	while IFS='|' read -r url shown why; do
		url=$(printf '%b' "$url")	# \x01 etc. become bytes
		n=$((n + 1))
		run -2 --separate-stderr pw pool add "$url"
		is "$output" ""
		is "$stderr" "pw: pool add: '$shown': $why"
		is "$(state_sum)" "$before"
	done <<-'EOF'
	||empty proxy URL
	ftp://h.example:21|ftp://h.example:21|unsupported scheme 'ftp' (use http, https, socks4, socks4a, socks5 or socks5h)
	socks6://h.example|socks6://h.example|unsupported scheme 'socks6' (use http, https, socks4, socks4a, socks5 or socks5h)
	averyveryverylongscheme://h|averyveryverylongscheme://h|unsupported scheme (use http, https, socks4, socks4a, socks5 or socks5h)
	://h.example|://h.example|missing scheme before ://
	http://|http://|missing host
	http://:8080|http://:8080|missing host
	http://h.example:0|http://h.example:0|port out of range (1-65535)
	http://h.example:65536|http://h.example:65536|port out of range (1-65535)
	http://h.example:99999999999999999999|http://h.example:99999999999999999999|port out of range (1-65535)
	http://h.example:|http://h.example:|missing port after ':'
	http://h.example:80a|http://h.example:80a|port is not a number
	http://h.example:-1|http://h.example:-1|port is not a number
	http://h .example|http://h .example|contains a space
	 http://h.example| http://h.example|contains a space
	http://h.example:80 |http://h.example:80 |contains a space
	http://h\x01.example|http://h\x01.example|contains a control character
	http://h.example\t|http://h.example\x09|contains a control character
	http://h.example\x7f|http://h.example\x7f|contains a control character
	http://h.example\r|http://h.example\x0d|contains a control character
	http://h.example\n:80|http://h.example\x0a:80|contains a control character
	http://h.example/path|http://h.example/path|a proxy URL has no path, query or fragment
	http://h.example?q=1|http://h.example?q=1|a proxy URL has no path, query or fragment
	http://h.example#frag|http://h.example#frag|a proxy URL has no path, query or fragment
	http://-h.example|http://-h.example|bad host name
	http://h-.example|http://h-.example|bad host name
	http://h..example|http://h..example|bad host name
	http://h!.example|http://h!.example|bad host name
	http://256.1.1.1|http://256.1.1.1|bad IPv4 address
	http://1.2.3|http://1.2.3|bad IPv4 address
	http://[::1|http://[::1|unterminated '[' in IPv6 address
	http://[]:80|http://[]:80|bad IPv6 address
	http://[zz::1]:80|http://[zz::1]:80|bad IPv6 address
	http://[::1]x|http://[::1]x|junk after IPv6 address
	http://::1:80|http://::1:80|missing host
	http://@h.example|http://***@h.example|empty user name
	http://u:pa%zzss@h.example|http://***:***@h.example|bad percent-encoding in password
	http://u:pa%00ss@h.example|http://***:***@h.example|bad percent-encoding in password
	http://u%4@h.example|http://***@h.example|bad percent-encoding in user name
	EOF
	is "$n" 39
}

@test "pool add: one bad URL in a batch means nothing in the batch is added" {
	three
	run -2 --separate-stderr pw pool add http://new1.example:1 \
	    http://new2.example:2 http://bad.example:0 http://new3.example:3
	is "$output" ""
	is "$stderr" "pw: pool add: 'http://bad.example:0': port out of range (1-65535)"
	is "$(state_sum)" "$before"
}

@test "pool add: a password never appears in an error message" {
	three
	run -2 --separate-stderr pw pool add 'http://user:S3cretPw@h.example:0'
	is "$stderr" "pw: pool add: 'http://***:***@h.example:0': port out of range (1-65535)"
	# A '/' the user forgot to encode still hides the password.
	run -2 --separate-stderr pw pool add 'http://user:S3cr/etPw@h.example'
	is "$output" ""
	is "$stderr" "pw: pool add: 'http://***:***@h.example': a proxy URL has no path, query or fragment"
	run -2 --separate-stderr pw pool add 'http://user:S3cr#t@h.example:0'
	is "$stderr" "pw: pool add: 'http://***:***@h.example:0': a proxy URL has no path, query or fragment"
	is "$(state_sum)" "$before"
}

@test "pool add: missing URL argument is a usage error" {
	three
	run -2 --separate-stderr pw pool add
	is "$output" ""
	is "$stderr" "pw: pool add: missing argument (usage: pw pool add [options] URL...|-)"
	is "$(state_sum)" "$before"
}

# ------------------------------------------------------------- secrets

@test "pool: a password is never stored in clear" {
	run -0 pw -q pool add 'socks5://Zuser:Zpassw0rdQ%21@gw.example:1080' \
	    'http://Yuser:Ypassw0rdQ@gw.example:3128'
	for f in "$PW_STATE" "$PW_STATE-wal"; do
		[ -e "$f" ] || continue
		run -1 grep -c -a -e Zpassw0rdQ -e Ypassw0rdQ -e Zuser -e Yuser \
		    "$f"
	done
	run -0 sqlite3 "$PW_STATE" .dump
	[[ "$output" == *"INSERT INTO proxies"* ]]
	[[ "$output" != *passw0rd* ]]
	[[ "$output" != *Zuser* && "$output" != *Yuser* ]]
	# The sealed columns are BLOBs of nonce + MAC + text.
	run -0 sqlite3 "$PW_STATE" "SELECT typeof(user), length(user),
	    typeof(pass), length(pass), url FROM proxies ORDER BY id"
	is "$output" "$(lines "blob|45|blob|51|socks5://gw.example:1080" \
	    "blob|45|blob|50|http://gw.example:3128")"
	# And never in output unless asked, in any format.
	for fmt in --plain --table --json --jsonl --csv; do
		run -0 --separate-stderr pw pool ls "$fmt"
		[[ "$output" != *passw0rd* && "$output" != *user* ]]
		is "$stderr" ""
		run -0 --separate-stderr pw pool show 2 "$fmt"
		[[ "$output" != *passw0rd* && "$output" != *user* ]]
		is "$stderr" ""
	done
	run -0 --separate-stderr pw -v -v pool add \
	    'http://Yuser:Ypassw0rdQ@gw.example:3128'
	[[ "$output$stderr" != *passw0rd* ]]
	run -0 --separate-stderr pw pool ls --show-secrets --jsonl
	[[ "$output" == *'"url":"http://Yuser:Ypassw0rdQ@gw.example:3128"'* ]]
}

# ----------------------------------------------------------------- ls

@test "pool ls: empty pool prints nothing" {
	three
	run -0 pw -q pool clear --yes
	run -0 --separate-stderr pw pool ls
	is "$output" ""
	is "$stderr" ""
	run -0 --separate-stderr pw pool ls --json
	is "$output" "[]"
}

@test "pool ls: lists every proxy in id order" {
	three
	run -0 --separate-stderr pw pool ls
	is "$output" "$(lines \
	    "1${T}http://a.example:8080${T}unknown${T}-${T}-${T}-${T}0${T}0" \
	    "2${T}socks5://b.example:1080${T}unknown${T}-${T}-${T}-${T}0${T}0" \
	    "3${T}https://c.example:8443${T}unknown${T}-${T}-${T}-${T}0${T}0")"
	is "$stderr" ""
}

# A pool with metadata; statuses set the way pw health will set them.
mixed() {
	pw -q pool add --country DE --region berlin --source list1 \
	    http://de1.example:1 socks5://de2.example:2
	pw -q pool add --country fr --region paris --source list2 \
	    http://fr1.example:3 socks5h://fr2.example:4
	pw -q pool add https://none.example:5
	sqlite3 "$PW_STATE" "UPDATE proxies SET status = 'healthy'
	    WHERE id IN (1, 3); UPDATE proxies SET status = 'unhealthy'
	    WHERE id = 4"
	before=$(state_sum)
}

# ids_of ARGS...: the ids "pw pool ls ARGS" prints, space-separated.
ids_of() {
	pw pool ls "$@" | cut -f1 | tr '\n' ' '
}

@test "pool ls: --status --scheme --source --country --region filter" {
	mixed
	is "$(ids_of --status healthy)" "1 3 "
	is "$(ids_of --status UNHEALTHY)" "4 "
	is "$(ids_of --status unknown)" "2 5 "
	is "$(ids_of --status degraded)" ""
	is "$(ids_of --scheme socks5)" "2 "
	is "$(ids_of --scheme socks5h)" "4 "
	is "$(ids_of --scheme http)" "1 3 "
	is "$(ids_of --scheme https)" "5 "
	is "$(ids_of --source list2)" "3 4 "
	is "$(ids_of --source nope)" ""
	is "$(ids_of --country de)" "1 2 "
	is "$(ids_of --country FR)" "3 4 "
	is "$(ids_of --country US)" ""
	is "$(ids_of --region paris)" "3 4 "
	is "$(ids_of --region PARIS)" "3 4 "
	is "$(ids_of --region pari)" ""
	is "$(ids_of --country DE --status healthy)" "1 "
	is "$(ids_of --source list1 --scheme socks5 --region berlin)" "2 "
	is "$(state_sum)" "$before"
	run -0 --separate-stderr pw pool ls --country fr
	is "$output" "$(lines \
	    "3${T}http://fr1.example:3${T}healthy${T}FR${T}list2${T}-${T}0${T}0" \
	    "4${T}socks5h://fr2.example:4${T}unhealthy${T}FR${T}list2${T}-${T}0${T}0")"
}

@test "pool ls: a bad filter value is a usage error" {
	mixed
	while IFS='|' read -r opt val msg; do
		run -2 --separate-stderr pw pool ls "$opt" "$val"
		is "$output" ""
		is "$stderr" "pw: pool ls: $msg"
	done <<-'EOF'
	--status|sick|--status: 'sick': want unknown, healthy, degraded, unhealthy or pending
	--scheme|ftp|--scheme: 'ftp': want http, https, socks4, socks4a, socks5 or socks5h
	--country|XX|--country: 'XX': not an ISO 3166-1 alpha-2 country code
	EOF
	run -2 --separate-stderr pw pool ls --status
	is "$stderr" "pw: pool ls: option '--status' needs a value"
	run -2 --separate-stderr pw pool ls extra
	is "$stderr" "pw: pool ls: unexpected argument 'extra' (usage: pw pool ls [options])"
	is "$(state_sum)" "$before"
}

# --------------------------------------------------------------- show

@test "pool show: by id and by URL, as written or normalised" {
	three
	run -0 --separate-stderr pw pool show 2
	is "$output" "$(lines "id${T}2" "url${T}socks5://b.example:1080" \
	    "scheme${T}socks5" "host${T}b.example" "port${T}1080" \
	    "credentials${T}no" "status${T}unknown" "country${T}-" \
	    "region${T}-" "source${T}-" "anonymity${T}-" "weight${T}-" \
	    "latency_ms${T}-" "started${T}0" "completed${T}0" \
	    "succeeded${T}0" "failed${T}0" "consec_fail${T}0" \
	    "added_at${T}2023-11-14T22:13:20Z" \
	    "updated_at${T}2023-11-14T22:13:20Z" "expires_at${T}-" \
	    "last_checked${T}-" "last_used${T}-" "cooldown_until${T}-")"
	is "$stderr" ""
	local want=$output
	for arg in socks5://b.example:1080 socks5://b.example \
	    'SOCKS5://B.Example:1080/'; do
		run -0 --separate-stderr pw pool show "$arg"
		is "$output" "$want"
		is "$stderr" ""
	done
	run -0 --separate-stderr pw pool show a.example:8080 --json
	[[ "$output" == '{"id":1,"url":"http://a.example:8080",'* ]]
}

@test "pool show: a proxy with credentials, by its URL" {
	run -0 pw -q pool add http://u:p@gw.example:3128 http://gw.example:3128
	run -0 --separate-stderr pw pool show http://u:other@gw.example:3128
	is "${lines[0]}" "id${T}1"
	is "${lines[1]}" "url${T}http://***:***@gw.example:3128"
	is "${lines[5]}" "credentials${T}yes"
	run -0 --separate-stderr pw pool show http://u@gw.example:3128 \
	    --show-secrets
	is "${lines[1]}" "url${T}http://u:p@gw.example:3128"
	run -0 --separate-stderr pw pool show http://gw.example:3128
	is "${lines[0]}" "id${T}2"
	run -1 --separate-stderr pw pool show http://v@gw.example:3128
	is "$stderr" "pw: pool show: http://***@gw.example:3128: no such proxy"
}

@test "pool show: an unknown proxy is an error that changes nothing" {
	three
	while IFS='|' read -r arg msg; do
		run -1 --separate-stderr pw pool show "$arg"
		is "$output" ""
		is "$stderr" "pw: pool show: $msg"
	done <<-'EOF'
	42|42: no such proxy
	0|0: no such proxy
	99999999999999999999|99999999999999999999: no such proxy
	http://a.example|http://a.example:80: no such proxy
	socks4://b.example|socks4://b.example:1080: no such proxy
	EOF
	run -2 --separate-stderr pw pool show http://a.example:0
	is "$stderr" "pw: pool show: 'http://a.example:0': port out of range (1-65535)"
	run -2 --separate-stderr pw pool show
	is "$stderr" "pw: pool show: missing argument (usage: pw pool show ID|URL)"
	run -2 --separate-stderr pw pool show 1 2
	is "$stderr" "pw: pool show: unexpected argument '2' (usage: pw pool show ID|URL)"
	is "$(state_sum)" "$before"
}

# ----------------------------------------------------------------- rm

@test "pool rm: by id and by URL, several at once" {
	three
	run -0 --separate-stderr pw pool rm 1 'SOCKS5://B.EXAMPLE/'
	is "$output" ""
	is "$stderr" ""
	is "$(ids_of)" "3 "
	run -0 --separate-stderr pw pool rm https://c.example:8443
	is "$(ids_of)" ""
}

@test "pool add: a new password for the same account replaces the old" {
	pw -q pool add socks5://alice:wrong@10.0.0.1:1080 \
	    socks5://alice@10.0.0.2:1080
	run -0 --separate-stderr pw pool add socks5://alice:Right-Pw9@10.0.0.1:1080 \
	    socks5://alice@10.0.0.1:1080 socks5://alice:New-Pw7@10.0.0.2:1080 \
	    socks5://alice:New-Pw7@10.0.0.2:1080
	is "$output" "$(lines \
	    "1	socks5://***:***@10.0.0.1:1080	updated" \
	    "1	socks5://***@10.0.0.1:1080	duplicate" \
	    "2	socks5://***:***@10.0.0.2:1080	updated" \
	    "2	socks5://***:***@10.0.0.2:1080	duplicate")"
	is "$stderr" ""
	run -0 pw pool ls --show-secrets
	is "$(cut -f1,2 <<<"$output")" "$(lines \
	    "1	socks5://alice:Right-Pw9@10.0.0.1:1080" \
	    "2	socks5://alice:New-Pw7@10.0.0.2:1080")"
	# Never in clear in the file.
	! cat "$PW_STATE"* | grep -a -q -e Right-Pw9 -e New-Pw7
}

@test "pool rm: an id is never given again, not even after clear" {
	pw -q pool add http://a.example:1 http://b.example:2
	pw -q pool rm 2
	run -0 pw pool add http://c.example:3
	is "$output" "3	http://c.example:3	added"
	pw -q pool clear --yes
	run -0 pw pool add http://b.example:2
	is "$output" "4	http://b.example:2	added"
}

@test "pool rm: one proxy named twice is removed once" {
	three
	run -0 --separate-stderr pw pool rm 2 2 socks5://b.example 1
	is "$output" ""
	is "$stderr" ""
	is "$(ids_of)" "3 "
}

@test "pool rm: an unknown proxy is an error and nothing is removed" {
	three
	while IFS='|' read -r args msg; do
		# shellcheck disable=SC2086
		run -1 --separate-stderr pw pool rm $args
		is "$output" ""
		is "$stderr" "pw: pool rm: $msg"
		is "$(state_sum)" "$before"
	done <<-'EOF'
	42|42: no such proxy
	1 2 42|42: no such proxy
	1 http://zz.example:1 3|http://zz.example:1: no such proxy
	0|0: no such proxy
	EOF
	run -2 --separate-stderr pw pool rm 1 http://bad.example:0
	is "$stderr" "pw: pool rm: 'http://bad.example:0': port out of range (1-65535)"
	run -2 --separate-stderr pw pool rm
	is "$stderr" "pw: pool rm: missing argument (usage: pw pool rm ID|URL...)"
	is "$(state_sum)" "$before"
}

# ---------------------------------------------------------------- set

@test "pool set: changes metadata and nothing else" {
	three
	run -0 --separate-stderr env PW_NOW=1700000100 pw pool set 2 \
	    --country nl --region ams --source manual --weight 7
	is "$output" ""
	is "$stderr" ""
	run -0 sqlite3 "$PW_STATE" "SELECT id, url, country, region, source,
	    weight, added_at, updated_at FROM proxies ORDER BY id"
	is "$output" "$(lines \
	    "1|http://a.example:8080|||||1700000000|1700000000" \
	    "2|socks5://b.example:1080|NL|ams|manual|7.0|1700000000|1700000100" \
	    "3|https://c.example:8443|||||1700000000|1700000000")"
	# Only the options given change; a URL names the proxy as well.
	run -0 pw pool set socks5://b.example:1080 --weight 0.5
	run -0 sqlite3 "$PW_STATE" "SELECT country, region, source, weight
	    FROM proxies WHERE id = 2"
	is "$output" "NL|ams|manual|0.5"
}

@test "pool set: bad input is refused and changes nothing" {
	three
	while IFS=';' read -r code args msg; do
		# shellcheck disable=SC2086
		run -"$code" --separate-stderr pw pool set $args
		is "$output" ""
		is "$stderr" "pw: pool set: $msg"
		is "$(state_sum)" "$before"
	done <<-'EOF'
	2;1;nothing to set (give --weight, --country, --region or --source)
	1;42 --weight 1;42: no such proxy
	1;http://zz.example --weight 1;http://zz.example:80: no such proxy
	2;1 --weight -3;--weight: '-3': want a number from 0 to 1e9
	2;1 --country ZZ;--country: 'ZZ': not an ISO 3166-1 alpha-2 country code
	2;1 2 --weight 1;unexpected argument '2' (usage: pw pool set ID|URL [options])
	2;http://zz.example:0 --weight 1;'http://zz.example:0': port out of range (1-65535)
	EOF
}

# -------------------------------------------------------------- clear

@test "pool clear: needs --yes; without it nothing is removed" {
	three
	run -2 --separate-stderr pw pool clear
	is "$output" ""
	is "$stderr" "pw: pool clear: this removes every proxy; add --yes to confirm"
	is "$(state_sum)" "$before"
	run -2 --separate-stderr pw pool clear yes
	is "$stderr" "pw: pool clear: unexpected argument 'yes' (usage: pw pool clear --yes)"
	is "$(state_sum)" "$before"
}

@test "pool clear --yes: removes every proxy and says how many" {
	three
	run -0 --separate-stderr pw pool clear --yes
	is "$output" ""
	is "$stderr" "removed 3 proxies"
	is "$(ids_of)" ""
	run -0 pw -q pool add http://x.example:1
	run -0 --separate-stderr pw pool clear -y
	is "$stderr" "removed 1 proxy"
	run -0 --separate-stderr pw pool clear --yes
	is "$stderr" "removed 0 proxies"
	run -0 pw -q pool add http://x.example:1
	run -0 --separate-stderr pw -q pool clear --yes
	is "$output" ""
	is "$stderr" ""
	is "$(ids_of)" ""
}

@test "pool: no verb prints the verbs and is a usage error" {
	run -2 --separate-stderr pw pool
	is "$output" ""
	[[ "${stderr}" == "pw: pool: a verb is needed (see 'pw help pool')
usage: pw pool VERB [options] [ARGS]"* ]]
	[[ "${stderr}" == *$'\n  add         add proxies to the pool\n'* ]]
	[ ! -e "$PW_STATE" ]
}
