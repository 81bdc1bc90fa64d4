#!/usr/bin/env bats
# state.bats -- the state file: where it is, how it is made, what pw
# refuses to open (and leaves untouched), and the credential sealing key.

bats_require_minimum_version 1.5.0

load helper

setup() {
	setup_pw
	# A directory of its own, so that listing it shows only pw's files.
	export PW_STATE=$BATS_TEST_TMPDIR/st/state.db
	mkdir "$BATS_TEST_TMPDIR/st"
	NB=
}

teardown() {
	if [ -n "$NB" ]; then
		chmod -R u+rwX "$NB" 2>/dev/null || true
		rm -rf "$NB"
	fi
}

T=$'\t'
KEY_A=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
KEY_B=f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff000102030405060708090a0b0c0d0e0f

mode() {
	stat -c %a "$1"
}

# A valid state file with two proxies at $1 (default $PW_STATE), alone:
# pw keeps an empty -wal and the -shm beside it, which the tests of one
# file's bytes do not want.
make_state() {
	local f=${1:-$PW_STATE}
	pw --state "$f" -q pool add http://a.example:1 socks5://b.example:2
	run -0 sqlite3 "$f" "PRAGMA wal_checkpoint(TRUNCATE)"
	is "$output" "0|0|0"
	rm -f "$f-wal" "$f-shm"
}

# pseudo_random N SEED: N reproducible bytes.
pseudo_random() {
	python3 -c 'import random, sys; r = random.Random(int(sys.argv[2]));
sys.stdout.buffer.write(bytes(r.randrange(256) for _ in range(int(sys.argv[1]))))' "$1" "$2"
}

# listing DIR: names, sizes and digests of what is in DIR.
listing() {
	(cd "$1" && for f in * .[!.]*; do
		[ -e "$f" ] || continue
		if [ -f "$f" ]; then
			printf '%s %s\n' "$f" "$(sha256sum <"$f" | cut -c1-16)"
		else
			printf '%s/\n' "$f"
		fi
	done)
}

# refuses FILE WHY: every command that opens FILE fails with exit 1 and
# the one line "pw: FILE: WHY", prints nothing, and leaves FILE and its
# directory exactly as they were.
refuses() {
	local f=$1 why=$2 dir sum ls args
	dir=$(dirname "$f")
	sum=$(file_sum "$f")
	ls=$(listing "$dir")
	while IFS= read -r args; do
		# shellcheck disable=SC2086
		run -1 --separate-stderr pw --state "$f" $args
		is "$output" ""
		is "$stderr" "pw: $f: $why"
		is "$(file_sum "$f")" "$sum"
		is "$(listing "$dir")" "$ls"
	done <<-'EOF'
	pool ls
	pool show 1
	config get fetch.retries
	config list
	pool add http://new.example:3
	pool rm 1
	pool set 1 --weight 2
	pool clear --yes
	config set fetch.retries 5
	config unset fetch.retries
	EOF
}

# A directory that pw, run as another user, can reach: root ignores
# permission bits, so as root the permission tests run pw as nobody
# (setpriv) from a copy of the binary that nobody can execute.
nobody_dir() {
	NB=$(mktemp -d /tmp/pw-bats.XXXXXX)
	chmod 755 "$NB"
	cp "$PW_BUILD/pw" "$NB/pw"
	chmod 755 "$NB/pw"
}

# as_user CMD...: run CMD as the unprivileged user of these tests.
as_user() {
	if [ "$(id -u)" -eq 0 ]; then
		setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
	else
		"$@"
	fi
}

# give_user FILE...: make FILE belong to that user.
give_user() {
	if [ "$(id -u)" -eq 0 ]; then
		chown 65534:65534 "$@"
	fi
}

# ------------------------------------------------------------ where

@test "path: --state beats \$PW_STATE" {
	local alt=$BATS_TEST_TMPDIR/alt.db
	run -0 pw --state "$alt" -q pool add http://a.example:1
	[ -f "$alt" ]
	[ ! -e "$PW_STATE" ]
	run -0 --separate-stderr pw pool ls --state "$alt"
	is "$output" "1${T}http://a.example:1${T}unknown${T}-${T}-${T}-${T}0${T}0"
	# After the command, too; the last --state given counts.
	run -0 pw pool add -q --state "$PW_STATE" --state "$alt" \
	    http://b.example:2
	[ ! -e "$PW_STATE" ]
}

@test "path: \$PW_STATE, then \$XDG_STATE_HOME/pw/state.db, then ~/.local/state" {
	run -0 pw -q pool add http://a.example:1
	[ -f "$PW_STATE" ]
	unset PW_STATE
	export XDG_STATE_HOME=$BATS_TEST_TMPDIR/xdg
	run -0 pw -q pool add http://b.example:2
	[ -f "$XDG_STATE_HOME/pw/state.db" ]
	is "$(mode "$XDG_STATE_HOME")" 700
	is "$(mode "$XDG_STATE_HOME/pw")" 700
	is "$(mode "$XDG_STATE_HOME/pw/state.db")" 600
	run -0 sqlite3 "$XDG_STATE_HOME/pw/state.db" "SELECT url FROM proxies"
	is "$output" http://b.example:2
	# An empty PW_STATE is unset.
	run -0 env PW_STATE= pw pool ls
	is "$output" "1${T}http://b.example:2${T}unknown${T}-${T}-${T}-${T}0${T}0"
	unset XDG_STATE_HOME
	run -0 pw -q pool add http://c.example:3
	[ -f "$HOME/.local/state/pw/state.db" ]
	is "$(mode "$HOME/.local/state/pw")" 700
	# A relative XDG_STATE_HOME is ignored, as the XDG spec says.
	run -0 --separate-stderr env XDG_STATE_HOME=rel pw pool ls
	is "$output" "1${T}http://c.example:3${T}unknown${T}-${T}-${T}-${T}0${T}0"
	[ ! -e rel ]
}

@test "create: directory 0700 and file 0600 whatever the umask" {
	local u
	for u in 000 022 077; do
		local f=$BATS_TEST_TMPDIR/u$u/deep/er/state.db
		run -0 bash -c "umask $u && pw --state '$f' -q pool add \
		    http://a.example:1"
		is "$(mode "$BATS_TEST_TMPDIR/u$u")" 700
		is "$(mode "$BATS_TEST_TMPDIR/u$u/deep/er")" 700
		is "$(mode "$f")" 600
	done
}

@test "create: WAL journal, pw's application id, a schema version" {
	make_state
	run -0 sqlite3 "$PW_STATE" "PRAGMA journal_mode"
	is "$output" wal
	run -0 sqlite3 "$PW_STATE" "PRAGMA application_id"
	is "$output" $((0x70770001))
	run -0 sqlite3 "$PW_STATE" "PRAGMA user_version"
	[ "$output" -ge 1 ]
	run -0 sqlite3 "$PW_STATE" "PRAGMA integrity_check"
	is "$output" ok
	run -0 pw -q pool add http://c.example:3
	[ ! -e "$PW_STATE-wal" ] || is "$(mode "$PW_STATE-wal")" 600
}

@test "the WAL stays small across many short commands" {
	make_state
	local i max=0 size
	# Each add leaves its pages in the WAL (no checkpoint per process);
	# whoever finds it past 256 KiB on opening checkpoints and empties
	# it, before its own write.
	for i in $(seq 120); do
		pw -q pool add "http://w$i.example:$((1000 + i))" --source "s$i"
		size=$(stat -c %s "$PW_STATE-wal")
		[ "$size" -le "$max" ] || max=$size
	done
	echo "largest WAL: $max bytes"
	[ "$max" -le $((256 * 1024 + 64 * 1024)) ]
	run -0 sqlite3 "$PW_STATE" "SELECT count(*) FROM proxies"
	is "$output" 122
	run -0 sqlite3 "$PW_STATE" "PRAGMA integrity_check"
	is "$output" ok
}

@test "a command that wrote much empties the WAL on its way out" {
	make_state
	seq 20000 | sed 's|.*|http://p&.example:8080|' | pw -q pool add -
	is "$(stat -c %s "$PW_STATE-wal")" 0
	# A short command after it leaves its pages in the WAL.
	pw -q pool add http://c.example:3
	[ "$(stat -c %s "$PW_STATE-wal")" -gt 0 ]
	run -0 sqlite3 "$PW_STATE" "SELECT count(*) FROM proxies"
	is "$output" 20003
}

@test "create: an existing empty file becomes a state file" {
	: >"$PW_STATE"
	run -0 --separate-stderr pw pool add http://a.example:1
	is "$stderr" ""
	run -0 sqlite3 "$PW_STATE" "PRAGMA application_id"
	is "$output" $((0x70770001))
}

@test "read-only commands on a missing state file create nothing" {
	unset PW_STATE
	local args
	while IFS= read -r args; do
		# shellcheck disable=SC2086
		run --separate-stderr pw $args
		is "$stderr" ""
	done <<-'EOF'
	pool ls
	pool ls --json
	config get fetch.retries
	config list
	EOF
	run -1 --separate-stderr pw pool show 1
	is "$stderr" "pw: pool show: 1: no such proxy"
	run -1 --separate-stderr pw pool show http://a.example:1
	is "$stderr" "pw: pool show: http://a.example:1: no such proxy"
	[ ! -e "$HOME/.local" ]
	export PW_STATE=$BATS_TEST_TMPDIR/sub/state.db
	run -0 pw pool ls
	run -0 pw config list
	[ ! -e "$BATS_TEST_TMPDIR/sub" ]
}

@test "refused commands on a missing state file create nothing" {
	export PW_STATE=$BATS_TEST_TMPDIR/sub/state.db
	local line code args
	while IFS='|' read -r code args line; do
		# shellcheck disable=SC2086
		run "-$code" --separate-stderr pw $args
		is "$output" ""
		is "$stderr" "$line"
		[ ! -e "$BATS_TEST_TMPDIR/sub" ]
	done <<-'EOF'
	2|pool add http://a.example:0|pw: pool add: 'http://a.example:0': port out of range (1-65535)
	2|pool add --weight -3 http://a.example:1|pw: pool add: --weight: '-3': want a number from 0 to 1e9
	2|pool add --country XXX http://a.example:1|pw: pool add: --country: 'XXX': not an ISO 3166-1 alpha-2 country code
	1|pool rm 7|pw: pool rm: 7: no such proxy
	1|pool set 7 --weight 2|pw: pool set: 7: no such proxy
	1|pool report 7 --ok|pw: pool report: 7: no such proxy
	2|config set fetch.retries lots|pw: config set: fetch.retries: 'lots': want an integer from 1 to 100
	2|fetch -w %{nope} http://127.0.0.1:1/|pw: fetch: -w: unknown variable '%{nope}'
	EOF
	# The first write makes it.
	run -0 pw -q pool add http://a.example:1
	[ -f "$PW_STATE" ]
	is "$(mode "$PW_STATE")" 600
}

# ----------------------------------------------------------- refusal

@test "refuse: random bytes" {
	pseudo_random 8192 1 >"$PW_STATE"
	refuses "$PW_STATE" "not a pw state file (not an SQLite database)"
}

@test "refuse: a text file, and a file shorter than a header" {
	printf 'proxy list\nhttp://a.example:1\n' >"$PW_STATE"
	refuses "$PW_STATE" "not a pw state file (not an SQLite database)"
	printf 'SQLite' >"$PW_STATE"
	refuses "$PW_STATE" "not a pw state file (not an SQLite database)"
}

@test "refuse: a truncated state file" {
	make_state
	head -c 4096 "$PW_STATE" >"$BATS_TEST_TMPDIR/t.db"
	mv "$BATS_TEST_TMPDIR/t.db" "$PW_STATE"
	refuses "$PW_STATE" "state file is corrupt: database disk image is malformed"
	make_state "$BATS_TEST_TMPDIR/s2.db"
	head -c 100 "$BATS_TEST_TMPDIR/s2.db" >"$PW_STATE"
	refuses "$PW_STATE" "state file is corrupt: database disk image is malformed"
}

@test "refuse: an SQLite header over damaged pages" {
	make_state
	{
		head -c 100 "$PW_STATE"
		pseudo_random $(($(stat -c %s "$PW_STATE") - 100)) 2
	} >"$BATS_TEST_TMPDIR/d.db"
	mv "$BATS_TEST_TMPDIR/d.db" "$PW_STATE"
	refuses "$PW_STATE" "state file is corrupt: database disk image is malformed"
}

@test "refuse: another application's SQLite database" {
	sqlite3 "$PW_STATE" "CREATE TABLE t(x); INSERT INTO t VALUES(1);
	    PRAGMA application_id = 1234"
	refuses "$PW_STATE" "not a pw state file (application id 0x4d2)"
	rm "$PW_STATE"
	sqlite3 "$PW_STATE" "CREATE TABLE proxies(url); INSERT INTO proxies
	    VALUES('http://a.example:1')"
	refuses "$PW_STATE" "not a pw state file (an SQLite database of something else)"
}

@test "refuse: a state file from a newer pw" {
	make_state
	local v
	v=$(sqlite3 "$PW_STATE" "PRAGMA user_version")
	sqlite3 "$PW_STATE" "PRAGMA user_version = $((v + 1))"
	refuses "$PW_STATE" "state file has schema version $((v + 1)), newer than this pw knows ($v): upgrade pw"
}

@test "upgrade: version 1's keys put a user's tag first; after it each proxy is still itself" {
	local k tag
	run -0 pw -q pool add http://alice:one@127.0.0.1:9 http://127.0.0.1:10 \
	    socks5://bob@[::1]:1080
	k=$(sqlite3 "$PW_STATE" "SELECT group_concat(key, ' ') FROM
	    (SELECT key FROM proxies ORDER BY id)")
	[[ $k =~ ^http://127\.0\.0\.1:9#[0-9a-f]{32}\ http://127\.0\.0\.1:10\ socks5://\[::1\]:1080#[0-9a-f]{32}$ ]]
	# The file as version 1 wrote it: scheme://TAG@host:port.
	sqlite3 "$PW_STATE" "UPDATE proxies SET key = substr(key, 1,
	    instr(key, '://') + 2) || substr(key, instr(key, '#') + 1) || '@' ||
	    substr(key, instr(key, '://') + 3, instr(key, '#') - instr(key,
	    '://') - 3) WHERE user IS NOT NULL; PRAGMA user_version = 1"
	run -0 sqlite3 "$PW_STATE" "SELECT key FROM proxies WHERE id = 1"
	[[ $output =~ ^http://[0-9a-f]{32}@127\.0\.0\.1:9$ ]]
	run -0 pw pool add http://alice:one@127.0.0.1:9 socks5://bob@[::1]:1080
	is "${lines[0]}" "1${T}http://***:***@127.0.0.1:9${T}duplicate"
	is "${lines[1]}" "3${T}socks5://***@[::1]:1080${T}duplicate"
	is "$(sqlite3 "$PW_STATE" "SELECT group_concat(key, ' ') FROM
	    (SELECT key FROM proxies ORDER BY id)")" "$k"
	is "$(sqlite3 "$PW_STATE" "PRAGMA user_version")" 3
	is "$(sqlite3 "$PW_STATE" "PRAGMA integrity_check")" ok
}

@test "upgrade: version 2's outbox, keyed by proxy, result and millisecond, keeps its outcomes and takes every new one" {
	run -0 pw -q pool add http://127.0.0.1:10
	sqlite3 "$PW_STATE" "DROP TABLE feedback_outbox;
	    CREATE TABLE feedback_outbox (id INTEGER PRIMARY KEY AUTOINCREMENT,
	    proxy_id INTEGER NOT NULL, success INTEGER NOT NULL, latency_ms REAL,
	    error TEXT, ts_ms INTEGER NOT NULL, lease_until INTEGER,
	    UNIQUE (proxy_id, success, ts_ms));
	    INSERT INTO feedback_outbox(proxy_id, success, latency_ms, ts_ms)
	    VALUES (7, 1, 12.5, 1800000000000), (7, 0, NULL, 1800000000000);
	    PRAGMA user_version = 2"
	run -0 pw pool ls
	is "$(sqlite3 "$PW_STATE" "PRAGMA user_version")" 3
	is "$(sqlite3 "$PW_STATE" "SELECT group_concat(id || ':' || success || ':' ||
	    ifnull(latency_ms, '-'), ' ') FROM feedback_outbox")" "1:1:12.5 2:0:-"
	sqlite3 "$PW_STATE" "INSERT INTO feedback_outbox(proxy_id, success, ts_ms)
	    VALUES (7, 1, 1800000000000)"
	is "$(sqlite3 "$PW_STATE" "SELECT max(id) || ' ' || count(*) FROM feedback_outbox")" "3 3"
	is "$(sqlite3 "$PW_STATE" "PRAGMA integrity_check")" ok
}

@test "refuse: a directory where the state file should be" {
	mkdir "$PW_STATE"
	run -1 --separate-stderr pw pool add http://a.example:1
	is "$output" ""
	is "$stderr" "pw: $PW_STATE: not a regular file"
	run -1 --separate-stderr pw pool ls
	is "$stderr" "pw: $PW_STATE: not a regular file"
	[ -d "$PW_STATE" ]
	is "$(listing "$PW_STATE")" ""
}

@test "refuse: a path through a regular file" {
	: >"$BATS_TEST_TMPDIR/file"
	local f=$BATS_TEST_TMPDIR/file/state.db
	run -1 --separate-stderr pw --state "$f" pool add http://a.example:1
	is "$output" ""
	is "$stderr" "pw: $f: cannot open: Not a directory"
	run -1 --separate-stderr pw --state "$f" pool ls
	is "$stderr" "pw: $f: cannot open: Not a directory"
	is "$(file_sum "$BATS_TEST_TMPDIR/file")" "$(file_sum /dev/null)"
}

@test "refuse: an unreadable state file" {
	nobody_dir
	mkdir "$NB/d" && chmod 777 "$NB/d"
	local f=$NB/d/state.db
	make_state "$f"
	chmod 600 "$f"		# root's, or ours with no read bit
	[ "$(id -u)" -eq 0 ] || chmod 200 "$f"
	local sum
	sum=$(file_sum "$f")
	for args in "pool ls" "config get fetch.retries" \
	    "pool add http://new.example:3" "config set fetch.retries 5"; do
		# shellcheck disable=SC2086
		run -1 --separate-stderr as_user "$NB/pw" --state "$f" $args
		is "$output" ""
		is "$stderr" "pw: $f: cannot open: Permission denied"
		is "$(file_sum "$f")" "$sum"
	done
	is "$(ls "$NB/d")" state.db
}

@test "refuse: a state file in a directory the user cannot enter" {
	nobody_dir
	mkdir "$NB/d"
	local f=$NB/d/state.db
	make_state "$f"
	give_user "$f"
	chmod 700 "$NB/d"	# root's, or ours with no search bit
	[ "$(id -u)" -eq 0 ] || chmod 600 "$NB/d"
	local sum
	sum=$(file_sum "$f")
	# Not an empty pool: the file is there, pw just cannot see it.
	for args in "pool ls" "config list" "pool add http://new.example:3"; do
		# shellcheck disable=SC2086
		run -1 --separate-stderr as_user "$NB/pw" --state "$f" $args
		is "$output" ""
		is "$stderr" "pw: $f: cannot open: Permission denied"
	done
	chmod 700 "$NB/d"
	is "$(file_sum "$f")" "$sum"
}

@test "refuse: a read-only state directory" {
	nobody_dir
	mkdir "$NB/d"
	local f=$NB/d/state.db
	make_state "$f"
	give_user "$f"
	chmod 600 "$f"
	chmod 555 "$NB/d"
	local sum
	sum=$(file_sum "$f")
	for args in "pool add http://new.example:3" "pool rm 1" \
	    "config set fetch.retries 5" "pool clear --yes"; do
		# shellcheck disable=SC2086
		run -1 --separate-stderr as_user "$NB/pw" --state "$f" $args
		is "$output" ""
		is "$stderr" "pw: $NB/d: state directory is not writable: Permission denied"
		is "$(file_sum "$f")" "$sum"
	done
	# Even reading a WAL database needs its directory.
	for args in "pool ls" "config get fetch.retries"; do
		# shellcheck disable=SC2086
		run -1 --separate-stderr as_user "$NB/pw" --state "$f" $args
		is "$output" ""
		is "$stderr" "pw: $f: state directory is not writable (WAL needs it even to read)"
		is "$(file_sum "$f")" "$sum"
	done
	is "$(ls -A "$NB/d")" state.db
	# Unless an earlier run left its -wal and -shm there, as pw does.
	chmod 777 "$NB/d"
	run -0 as_user "$NB/pw" --state "$f" pool ls
	chmod 555 "$NB/d"
	is "$(ls -A "$NB/d" | tr '\n' ' ')" "state.db state.db-shm state.db-wal "
	run -0 --separate-stderr as_user "$NB/pw" --state "$f" pool ls
	is "$output" "1${T}http://a.example:1${T}unknown${T}-${T}-${T}-${T}0${T}0
2${T}socks5://b.example:2${T}unknown${T}-${T}-${T}-${T}0${T}0"
	is "$stderr" ""
	run -1 --separate-stderr as_user "$NB/pw" --state "$f" pool rm 1
	is "$stderr" "pw: $NB/d: state directory is not writable: Permission denied"
	is "$(file_sum "$f")" "$sum"
}

@test "refuse: a new state file in a read-only directory" {
	nobody_dir
	mkdir "$NB/d"
	chmod 555 "$NB/d"
	give_user "$NB/d"
	local f=$NB/d/state.db
	run -1 --separate-stderr as_user "$NB/pw" --state "$f" pool add \
	    http://a.example:1
	is "$output" ""
	is "$stderr" "pw: $NB/d: state directory is not writable: Permission denied"
	is "$(ls -A "$NB/d")" ""
	# Reading it is an empty pool, as for any missing state file.
	run -0 --separate-stderr as_user "$NB/pw" --state "$f" pool ls
	is "$output" ""
	is "$stderr" ""
}

@test "a read-only state file can be read, not written" {
	nobody_dir
	mkdir "$NB/d"
	chmod 777 "$NB/d"
	local f=$NB/d/state.db
	make_state "$f"
	chmod 644 "$f"		# root's: nobody may read it, not write it
	[ "$(id -u)" -eq 0 ] || chmod 444 "$f"
	local sum
	sum=$(file_sum "$f")
	run -1 --separate-stderr as_user "$NB/pw" --state "$f" pool add \
	    http://new.example:3
	is "$output" ""
	is "$stderr" "pw: $f: state file is read-only"
	run -0 --separate-stderr as_user "$NB/pw" --state "$f" pool ls
	is "$output" "1${T}http://a.example:1${T}unknown${T}-${T}-${T}-${T}0${T}0
2${T}socks5://b.example:2${T}unknown${T}-${T}-${T}-${T}0${T}0"
	is "$stderr" ""
	is "$(file_sum "$f")" "$sum"
}

# --------------------------------------------------------------- key

@test "key: a key file is made 0600 under \$XDG_CONFIG_HOME/pw when needed" {
	# No credentials, no key.
	run -0 pw -q pool add http://a.example:1
	[ ! -e "$XDG_CONFIG_HOME/pw/key" ]
	run -0 pw -q pool add http://u:p@b.example:2
	local k=$XDG_CONFIG_HOME/pw/key
	is "$(mode "$XDG_CONFIG_HOME/pw")" 700
	is "$(mode "$k")" 600
	run -0 cat "$k"
	[[ "$output" =~ ^[0-9a-f]{64}$ ]]
	is "$(stat -c %s "$k")" 65
	# Kept, and used again.
	local sum
	sum=$(file_sum "$k")
	run -0 pw -q pool add http://v:q@c.example:3
	is "$(file_sum "$k")" "$sum"
	run -0 --separate-stderr pw pool ls --show-secrets --scheme http
	is "$output" "1${T}http://a.example:1${T}unknown${T}-${T}-${T}-${T}0${T}0
2${T}http://u:p@b.example:2${T}unknown${T}-${T}-${T}-${T}0${T}0
3${T}http://v:q@c.example:3${T}unknown${T}-${T}-${T}-${T}0${T}0"
	is "$stderr" ""
}

@test "key: without \$XDG_CONFIG_HOME it is ~/.config/pw/key" {
	unset XDG_CONFIG_HOME
	run -0 pw -q pool add http://u:p@b.example:2
	[ -f "$HOME/.config/pw/key" ]
	is "$(mode "$HOME/.config/pw/key")" 600
}

@test "key: \$PW_SECRET_KEY is used instead of a key file" {
	export PW_SECRET_KEY=$KEY_A
	run -0 pw -q pool add http://u:p@b.example:2
	[ ! -e "$XDG_CONFIG_HOME/pw" ]
	run -0 --separate-stderr pw pool show 1 --show-secrets
	is "${lines[1]}" "url${T}http://u:p@b.example:2"
	is "$stderr" ""
	# Upper-case hex is the same key.
	run -0 --separate-stderr env PW_SECRET_KEY="${KEY_A^^}" pw pool show 1 \
	    --show-secrets
	is "${lines[1]}" "url${T}http://u:p@b.example:2"
	is "$stderr" ""
}

@test "key: a bad \$PW_SECRET_KEY is a clear error and changes nothing" {
	make_state
	local before bad
	before=$(state_sum)
	for bad in abc "${KEY_A%?}" "${KEY_A}0" "${KEY_A%??}zz" \
	    "$KEY_A $KEY_A"; do
		run -2 --separate-stderr env PW_SECRET_KEY="$bad" pw pool add \
		    http://u:p@c.example:3
		is "$output" ""
		is "$stderr" "pw: PW_SECRET_KEY: not a key (want 64 hex digits)"
		is "$(state_sum)" "$before"
		run -2 --separate-stderr env PW_SECRET_KEY="$bad" pw pool ls \
		    --show-secrets
		is "$output" ""
		is "$stderr" "pw: PW_SECRET_KEY: not a key (want 64 hex digits)"
	done
	[ ! -e "$XDG_CONFIG_HOME/pw" ]
}

@test "key: a bad key file is a clear error and changes nothing" {
	make_state
	mkdir -p "$XDG_CONFIG_HOME/pw"
	local k=$XDG_CONFIG_HOME/pw/key before
	printf 'not a key\n' >"$k"
	before=$(state_sum)
	run -2 --separate-stderr pw pool add http://u:p@c.example:3
	is "$output" ""
	is "$stderr" "pw: $k: not a key (want 64 hex digits)"
	is "$(state_sum)" "$before"
	is "$(cat "$k")" "not a key"
}

@test "key: the wrong key cannot unseal; pw says so and shows ***" {
	PW_SECRET_KEY=$KEY_A pw -q pool add http://u:p@b.example:2
	export PW_SECRET_KEY=$KEY_B
	local before
	before=$(state_sum)
	run -0 --separate-stderr pw pool ls --show-secrets
	is "$output" "1${T}http://***:***@b.example:2${T}unknown${T}-${T}-${T}-${T}0${T}0"
	is "$stderr" "pw: warning: proxy 1: cannot unseal credential (wrong key or damaged row)"
	run -0 --separate-stderr pw pool show 1 --show-secrets
	is "${lines[1]}" "url${T}http://***:***@b.example:2"
	is "$stderr" "pw: warning: proxy 1: cannot unseal credential (wrong key or damaged row)"
	# Without --show-secrets no key is needed: no warning.
	run -0 --separate-stderr pw pool ls
	is "$stderr" ""
	is "$(state_sum)" "$before"
}

@test "key: a lost key file is reported, not silently ignored" {
	run -0 pw -q pool add http://u:p@b.example:2 http://c.example:3
	local k=$XDG_CONFIG_HOME/pw/key
	rm "$k"
	local before
	before=$(state_sum)
	run -0 --separate-stderr pw pool ls --show-secrets
	is "$output" "1${T}http://***:***@b.example:2${T}unknown${T}-${T}-${T}-${T}0${T}0
2${T}http://c.example:3${T}unknown${T}-${T}-${T}-${T}0${T}0"
	is "$stderr" "pw: warning: proxy 1: $k: key file missing: cannot unseal credentials (set PW_SECRET_KEY or restore the file)"
	# A proxy with credentials cannot be named by URL without the key.
	run -1 --separate-stderr pw pool rm http://u:p@b.example:2
	is "$output" ""
	is "$stderr" "pw: pool rm: $k: key file missing: cannot unseal credentials (set PW_SECRET_KEY or restore the file)"
	is "$(state_sum)" "$before"
	[ ! -e "$k" ]
	# By id it can.
	run -0 pw pool rm 1
}
