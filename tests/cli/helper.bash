# helper.bash -- loaded by every bats file: a sealed environment per test.
#
# Each test gets its own HOME, state file and key; no PW_* variable from
# the caller's environment leaks in; pw comes from $PW_BUILD.

setup_pw() {
	: "${PW_BUILD:?PW_BUILD must name the build directory}"
	for v in $(env | sed -n 's/^\(PW_[A-Za-z0-9_]*\)=.*/\1/p'); do
		[ "$v" = PW_BUILD ] || unset "$v"
	done
	export HOME="$BATS_TEST_TMPDIR/home"
	export XDG_CONFIG_HOME="$HOME/.config"
	export XDG_STATE_HOME="$HOME/.local/state"
	export PW_STATE="$BATS_TEST_TMPDIR/state.db"
	export PATH="$PW_BUILD:$PATH"
	export LC_ALL=C TZ=UTC
	unset NO_COLOR http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY \
	    all_proxy no_proxy NO_PROXY
	mkdir -p "$HOME"
}

# state_sum FILE: a digest of everything in a state file, for proving that
# a refused command changed nothing (schema, rows, pragmas).
state_sum() {
	local f=${1:-$PW_STATE}
	if [ ! -e "$f" ]; then
		echo absent
		return
	fi
	# A selection that finds no proxy (exit 3) counts a miss for pw cache
	# stats and changes nothing else: that one counter is left out.
	{
		sqlite3 -readonly "$f" .dump 2>&1 |
		    grep -v "^INSERT INTO stats VALUES('select.misses',"
		sqlite3 -readonly "$f" 'PRAGMA user_version; PRAGMA application_id;'
	} | sha256sum | cut -d' ' -f1
}

# file_sum FILE: the bytes of a file, for files pw must not touch at all.
file_sum() {
	sha256sum "$1" | cut -d' ' -f1
}

# is ACTUAL EXPECTED: exact comparison that shows both on failure.
is() {
	if [ "$1" != "$2" ]; then
		printf -- '--- expected\n%s\n--- actual\n%s\n---\n' "$2" "$1"
		return 1
	fi
}

# like ACTUAL PATTERN: a glob match that shows both on failure.
like() {
	# shellcheck disable=SC2053
	if [[ $1 != $2 ]]; then
		printf -- '--- expected like\n%s\n--- actual\n%s\n---\n' "$2" "$1"
		return 1
	fi
}

# lines LINE...: the arguments as newline-separated lines.
lines() {
	printf '%s\n' "$@"
}

# eventually CMD...: CMD succeeds within 3 s (tried every 0.1 s); for
# what pw serve writes in batches, at least once a second.
eventually() {
	local i
	for i in $(seq 30); do
		"$@" && return 0
		sleep 0.1
	done
	"$@"
}
