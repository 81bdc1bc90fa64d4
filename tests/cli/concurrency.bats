#!/usr/bin/env bats
# concurrency.bats -- many pw processes on one state file at once: no
# error, no "database is locked", no lost row, an intact database.

bats_require_minimum_version 1.5.0

load helper

setup() {
	setup_pw
	W=$BATS_TEST_TMPDIR/work
	mkdir "$W"
}

N=16		# processes at once
T=$'\t'

# all_ok: every worker exited 0 and wrote nothing to stderr.
all_ok() {
	local f bad=0
	for f in "$W"/*.rc; do
		if [ "$(cat "$f")" != 0 ]; then
			echo "${f##*/}: exit $(cat "$f")"
			bad=1
		fi
	done
	for f in "$W"/*.err; do
		if [ -s "$f" ]; then
			echo "${f##*/}:"
			cat "$f"
			bad=1
		fi
	done
	run -1 grep -rl "database is locked" "$W"
	return $bad
}

# intact: the database passes SQLite's own check.
intact() {
	run -0 sqlite3 "$PW_STATE" "PRAGMA integrity_check"
	is "$output" ok
	run -0 sqlite3 "$PW_STATE" "PRAGMA journal_mode"
	is "$output" wal
}

# worker I: adds its 12 proxies one command at a time, removes the odd
# ones (by URL and by id), lists and reads settings in between.
worker() {
	local i=$1 j rc=0 out
	for j in $(seq 1 12); do
		pw -q pool add --source "w$i" "http://w$i-$j.example:$((1000 + j))" \
		    || rc=$?
	done
	for j in 1 5 9; do
		pw pool rm "http://w$i-$j.example:$((1000 + j))" || rc=$?
	done
	pw pool ls --source "w$i" >/dev/null || rc=$?
	for j in 3 7 11; do
		out=$(pw pool show "http://w$i-$j.example:$((1000 + j))") ||
		    rc=$?
		out=${out%%$'\n'*}		# "id<TAB>N"
		pw pool rm "${out#"id$T"}" || rc=$?
	done
	pw config get fetch.retries >/dev/null || rc=$?
	return $rc
}

@test "$N processes add and remove proxies at once: nothing lost" {
	pw config set fetch.retries 4	# the file exists before the race
	local i
	for i in $(seq 1 $N); do
		(worker "$i" >"$W/$i.out" 2>"$W/$i.err"; echo $? >"$W/$i.rc") &
	done
	wait
	all_ok
	intact
	# Exactly the even-numbered proxies of every worker are left.
	local want
	want=$(for i in $(seq 1 $N); do for j in 2 4 6 8 10 12; do
		echo "http://w$i-$j.example:$((1000 + j))|w$i"
	done; done | sort)
	run -0 sqlite3 "$PW_STATE" "SELECT url || '|' || source FROM proxies"
	is "$(printf '%s\n' "$output" | sort)" "$want"
	is "${#lines[@]}" $((N * 6))
	run -0 sqlite3 "$PW_STATE" "SELECT count(DISTINCT id) FROM proxies"
	is "$output" $((N * 6))
}

@test "$N processes add the same URLs at once: each URL exactly once" {
	local i urls=()
	for i in $(seq 1 40); do
		urls+=("socks5://same$i.example:$((2000 + i))")
	done
	for i in $(seq 1 $N); do
		# Each process in its own order, half of them from stdin.
		if [ $((i % 2)) -eq 0 ]; then
			(printf '%s\n' "${urls[@]}" >"$W/$i.in"
			 pw pool add - <"$W/$i.in" >"$W/$i.out" 2>"$W/$i.err"
			 echo $? >"$W/$i.rc") &
		else
			local mine
			mapfile -t mine < <(printf '%s\n' "${urls[@]}" | shuf)
			(pw pool add "${mine[@]}" >"$W/$i.out" 2>"$W/$i.err"
			 echo $? >"$W/$i.rc") &
		fi
	done
	wait
	all_ok
	intact
	run -0 sqlite3 "$PW_STATE" "SELECT url FROM proxies ORDER BY url"
	is "$output" "$(printf '%s\n' "${urls[@]}" | sort)"
	# Every URL was "added" by exactly one process, and every process
	# saw the same id for it.
	run -0 bash -c "cat '$W'/*.out | awk -F'\t' '\$3 == \"added\"' | wc -l"
	is "$output" 40
	run -0 bash -c "cat '$W'/*.out | cut -f1,2 | sort -u | wc -l"
	is "$output" 40
}

@test "$N processes create a missing state file at once" {
	local round i
	for round in 1 2 3 4 5 6; do
		export PW_STATE=$BATS_TEST_TMPDIR/r$round/state.db
		rm -f "$W"/*
		for i in $(seq 1 $N); do
			(pw pool add "http://r$round-$i.example:1" http://same.example:1 \
			    >"$W/$i.out" 2>"$W/$i.err"; echo $? >"$W/$i.rc") &
		done
		wait
		all_ok
		intact
		run -0 sqlite3 "$PW_STATE" "SELECT count(*) FROM proxies"
		is "$output" $((N + 1))
	done
}

@test "$N processes seal credentials at once: one key, every row readable" {
	local i
	for i in $(seq 1 $N); do
		(pw -q pool add "socks5://user$i:pass$i@gw$i.example:1080" \
		    >"$W/$i.out" 2>"$W/$i.err"; echo $? >"$W/$i.rc") &
	done
	wait
	all_ok
	intact
	[ -f "$XDG_CONFIG_HOME/pw/key" ]
	run -0 --separate-stderr pw pool ls --show-secrets
	is "$stderr" ""
	is "$(printf '%s\n' "$output" | cut -f2 | sort)" \
	    "$(for i in $(seq 1 $N); do
		echo "socks5://user$i:pass$i@gw$i.example:1080"
	    done | sort)"
}

@test "a writer waits for another's transaction instead of failing" {
	pw -q pool add http://a.example:1
	# Hold the write lock for a while, as a long pw run would.
	sqlite3 "$PW_STATE" "BEGIN IMMEDIATE;
	    UPDATE proxies SET weight = 1 WHERE id = 1;" \
	    ".shell touch '$W/locked'" ".shell sleep 2" "COMMIT;" &
	local holder=$! i
	for i in $(seq 1 100); do
		[ -e "$W/locked" ] && break
		sleep 0.05
	done
	[ -e "$W/locked" ]
	run -0 --separate-stderr pw pool add http://b.example:2
	is "$output" "2${T}http://b.example:2${T}added"
	is "$stderr" ""
	wait "$holder"
	run -0 sqlite3 "$PW_STATE" "SELECT id, weight FROM proxies ORDER BY id"
	is "$output" "1|1.0
2|"
	intact
}
