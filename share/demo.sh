#!/bin/sh
# demo.sh -- pw's main job end to end, on loopback and a throw-away state
# file: a local origin, real local proxies (tinyproxy, microsocks with a
# password) and one dead port; rotation, failover past the dead proxy,
# and what the pool learned.
set -eu
: "${PW_BUILD:?PW_BUILD must name the build directory}"
dir=$(mktemp -d "${TMPDIR:-/tmp}/pw-demo.XXXXXX")
pids=
cleanup() {
	# shellcheck disable=SC2086
	[ -z "$pids" ] || kill $pids 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT INT TERM
export PATH="$PW_BUILD:$PATH"
export PW_STATE="$dir/state.db" XDG_CONFIG_HOME="$dir/config"
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy

free_port() {
	python3 -c 'import socket; s = socket.socket()
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {
	i=0
	while ! python3 -c 'import socket, sys
socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$1" \
	    2>/dev/null; do
		i=$((i + 1))
		[ "$i" -lt 100 ] || { echo "demo: port $1 never opened" >&2; exit 1; }
		sleep 0.05
	done
}
say() { printf '\n$ %s\n' "$*"; "$@"; }

# The origin: a directory served by Python's http.server.
mkdir -p "$dir/www"
echo "hello from the origin" >"$dir/www/index.html"
origin=$(free_port)
python3 -m http.server "$origin" --bind 127.0.0.1 --directory "$dir/www" \
    >/dev/null 2>&1 &
pids="$pids $!"

# The proxies: two tinyproxies, a microsocks that wants a password.
for n in 1 2; do
	port=$(free_port)
	printf 'Port %s\nListen 127.0.0.1\nTimeout 30\nAllow 127.0.0.1\n' \
	    "$port" >"$dir/tinyproxy$n.conf"
	tinyproxy -d -c "$dir/tinyproxy$n.conf" >/dev/null 2>&1 &
	pids="$pids $!"
	eval "tp$n=$port"
done
socks=$(free_port)
microsocks -i 127.0.0.1 -p "$socks" -u demo -P s3cret >/dev/null 2>&1 &
pids="$pids $!"
dead=$(free_port)	# nothing listens here
for p in "$origin" "$tp1" "$tp2" "$socks"; do wait_port "$p"; done

url="http://127.0.0.1:$origin/"
echo "origin $url; proxies: tinyproxy :$tp1 :$tp2, microsocks :$socks," \
    "dead :$dead"

say pw pool add "http://127.0.0.1:$tp1" "http://127.0.0.1:$dead" \
    "127.0.0.1:$tp2" "socks5h://demo:s3cret@127.0.0.1:$socks"
say pw pool ls
say pw config set pool.failure_threshold 2

echo
echo "# Rotation: each fetch takes the next proxy; the dead one fails over."
for i in 1 2 3 4 5 6; do
	say pw fetch -s -w '  -> %{http_code} via %{proxy}, %{attempts} attempt(s)\n' \
	    "$url"
done

echo
echo "# The pool learned: the dead proxy is cooling down, latencies are known."
say pw pool ls
say pw pool show 2
say pw pool next --strategy performance
say pw fetch --json "$url"
